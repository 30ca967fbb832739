"""What kind of x86 CPU the INT8 kernels will run on.

INT8 convolutions multiply unsigned 8-bit activations by signed 8-bit weights. CPUs with VNNI
(AVX512_VNNI, AVX_VNNI, AMX) accumulate the products in 32 bits in one instruction. Without
it (AVX2, AVX-512 without VNNI), oneDNN's kernels use ``vpmaddubsw``, which adds pairs of
products into a *saturating 16-bit* lane: 255 * 127 * 2 = 64,770 > 32,767, so large pairs are
clipped. Weights in 7 bits (|w| <= 63: 255 * 63 * 2 = 32,130) cannot overflow (NNCF's
``OverflowFix``; oneDNN's "int8 computation on CPUs without VNNI" notes).

Both runtimes honour a cap on the instruction sets they use: ``ONEDNN_MAX_CPU_ISA`` (OpenVINO)
and ``DNNL_MAX_CPU_ISA`` (MXNet's oneDNN), e.g. ``AVX2``; a cap below VNNI makes a VNNI CPU
behave like an AVX2 one, which is how the tests exercise both kinds on any machine.
"""
import os

__all__ = ["cpu_flags", "has_vnni", "isa_label", "VNNI_FLAGS"]

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# oneDNN's ISA names (dnnl::cpu_isa) that include a VNNI-class int8 dot product
_VNNI_ISAS = ("VNNI", "BF16", "AMX", "FP16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (``lscpu``'s Flags line), an empty set where unreadable."""
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _isa_cap(runtime):
    name = "DNNL_MAX_CPU_ISA" if runtime == "mxnet" else "ONEDNN_MAX_CPU_ISA"
    cap = os.environ.get(name, "").strip().upper()
    return None if cap in ("", "ALL", "DEFAULT") else cap


def has_vnni(runtime="openvino", flags=None):
    """Whether ``runtime``'s int8 kernels use VNNI here: the CPU has it and no ISA cap
    (``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA``) keeps them below it."""
    flags = cpu_flags() if flags is None else flags
    if not any(f in flags for f in VNNI_FLAGS):
        return False
    cap = _isa_cap(runtime)
    return cap is None or any(k in cap for k in _VNNI_ISAS)


def isa_label(runtime="openvino", flags=None):
    """A short name of the int8 kernel kind, for reports: 'AVX-512 VNNI', 'AVX2 (capped)'..."""
    flags = cpu_flags() if flags is None else flags
    cap = _isa_cap(runtime)
    if cap is not None and not has_vnni(runtime, flags):
        return "%s (capped by %s)" % (cap, "DNNL_MAX_CPU_ISA" if runtime == "mxnet"
                                      else "ONEDNN_MAX_CPU_ISA")
    if "amx_int8" in flags:
        return "AMX"
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI"
    if "avx_vnni" in flags:
        return "AVX-VNNI"
    if "avx512f" in flags:
        return "AVX-512 without VNNI"
    if "avx2" in flags:
        return "AVX2 without VNNI"
    return "no AVX2"
