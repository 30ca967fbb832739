"""INT8 that computes the same on every x86 CPU: the CPU-kind detection, 7-bit weights (the
overflow rule for CPUs without VNNI), the accuracy gate that never lets a broken model pass,
and the warning for a VNNI-only IR on a CPU without VNNI. Every test here runs on any CPU:
the kinds are simulated with oneDNN's ISA caps or given as flag sets."""
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest

from igcv3_gluon import get_model
from igcv3_gluon.deploy import export
from igcv3_gluon.deploy.cpu import has_vnni, isa_label
from igcv3_gluon.deploy.int8 import (
    float_convolutions,
    quantize_ir,
    warn_if_vnni_ir_on_this_cpu,
    weight_levels,
)
from igcv3_gluon.deploy.openvino import to_openvino

from conftest import ROOT, randomize

AVX2 = {"fpu", "sse4_2", "avx", "avx2", "fma"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl"}
VNNI = AVX512 | {"avx512_vnni"}


def test_cpu_kind_follows_the_flags_and_the_isa_caps(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert not has_vnni(flags=AVX2) and not has_vnni(flags=AVX512)
    assert has_vnni(flags=VNNI) and has_vnni(flags=AVX2 | {"avx_vnni"})
    assert has_vnni(flags=AVX512 | {"amx_int8", "avx512_vnni"})
    assert isa_label(flags=AVX2) == "AVX2 without VNNI"
    assert isa_label(flags=AVX512) == "AVX-512 without VNNI"
    assert isa_label(flags=VNNI) == "AVX-512 VNNI"
    # a cap below VNNI makes a VNNI CPU an AVX2 one, for the runtime it is read by
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not has_vnni("openvino", flags=VNNI) and has_vnni("mxnet", flags=VNNI)
    assert isa_label("openvino", flags=VNNI) == "AVX2 (capped by ONEDNN_MAX_CPU_ISA)"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert not has_vnni(flags=VNNI)
    for cap in ("AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert has_vnni(flags=VNNI), cap
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert not has_vnni("mxnet", flags=VNNI)


@pytest.fixture(scope="module")
def small_ir(tmp_path_factory):
    """igcv3_d_1.0 at quarter width on 32x32 inputs, as a float IR (+ its ONNX)."""
    net = randomize(get_model("igcv3_d_1.0", multiplier=0.25, classes=10), 0, (4, 3, 32, 32))
    folder = tmp_path_factory.mktemp("int8")
    export(net, str(folder / "m"), (1, 3, 32, 32))
    to_openvino(str(folder / "m"), str(folder / "ir"))
    rng = np.random.RandomState(0)
    calib = [rng.uniform(-1, 1, (16, 3, 32, 32)).astype(np.float32)]
    return str(folder / "ir.onnx"), calib


@pytest.fixture(scope="module")
def quantized(small_ir, tmp_path_factory):
    """The small IR quantized for any CPU (7-bit) and for VNNI (8-bit), no gate (random
    weights), once for the tests below."""
    onnx_path, calib = small_ir
    folder = tmp_path_factory.mktemp("q")
    return {target: quantize_ir(onnx_path, str(folder / target), calib, target=target,
                                max_drop=100.0, max_restore=0) for target in ("any", "vnni")}


@pytest.mark.parametrize("target, top", [("any", 64), ("vnni", 127)])
def test_weights_use_7_bits_for_any_cpu_and_8_for_vnni(quantized, target, top):
    result = quantized[target]
    assert result.accepted and result.weight_bits == (7 if target == "any" else 8)
    levels = weight_levels(onnx.load(result.xml[:-len(".xml")] + ".onnx"))
    # every convolution (stem, 3 in each of the 32 blocks, the last 1x1) has INT8 weights,
    # NNCF's and the grouped projections we quantize ourselves alike
    assert len(levels) == 1 + 32 * 3 + 1
    assert sum(dw for _, dw in levels.values()) == 32
    summing = [q for q, dw in levels.values() if not dw]       # stem, expansions, projections
    depthwise = [q for q, dw in levels.values() if dw]
    assert max(summing) == top and max(depthwise) == 127  # depthwise kernels cannot saturate
    if target == "any":
        # 255 * 64 * 2 = 32,640 fits the 16-bit pairwise sums of AVX2 / AVX-512 kernels
        assert all(q <= 64 for q in summing)
    else:
        assert all(q >= 120 for q in summing)


def test_without_labels_the_gate_measures_agreement_with_the_float_model(quantized):
    result = quantized["any"]
    assert not result.labelled and result.images == 16 and result.fp32_accuracy == 1.0
    assert 0.0 <= result.int8_accuracy <= 1.0
    from igcv3_gluon.deploy.export import read_meta
    record = read_meta(result.xml[:-len(".xml")])["int8"]
    assert record["target"] == "any" and record["weight_bits"] == 7 and record["images"] == 16


def test_a_vnni_ir_warns_on_a_cpu_without_vnni(quantized, monkeypatch):
    vnni, portable = quantized["vnni"], quantized["any"]
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.warns(RuntimeWarning, match="quantize it again for any CPU"):
        assert warn_if_vnni_ir_on_this_cpu(vnni.xml)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_vnni_ir_on_this_cpu(portable.xml)
    # compile_ir is where a user meets it, in a process whose OpenVINO is capped to AVX2
    code = ("import warnings, sys; warnings.simplefilter('always');"
            "from igcv3_gluon.deploy.openvino import compile_ir; compile_ir(sys.argv[1])")
    proc = subprocess.run([sys.executable, "-c", code, vnni.xml], cwd=ROOT, text=True,
                          capture_output=True, env=dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2"),
                          timeout=300)
    assert proc.returncode == 0 and "quantized for VNNI CPUs" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    """A 4-convolution classifier on 16x16 inputs as a float IR: NNCF's accuracy control
    ranks every quantizer, so its test needs a network with few of them."""
    import mxnet as mx
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1, activation="relu"),
            nn.Conv2D(16, 3, strides=2, padding=1, activation="relu"),
            nn.Conv2D(16, 1, activation="relu"), nn.Conv2D(16, 3, padding=1, groups=16),
            nn.GlobalAvgPool2D(), nn.Dense(10))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier(magnitude=3), ctx=mx.cpu())
    net(mx.nd.zeros((1, 3, 16, 16)))
    folder = tmp_path_factory.mktemp("tiny")
    export(net, str(folder / "m"), (1, 3, 16, 16))
    to_openvino(str(folder / "m"), str(folder / "ir"), optimize_first=False)
    return str(folder / "ir.onnx")


def test_accuracy_control_returns_layers_to_float_until_the_drop_fits(tiny_ir, tmp_path):
    """Calibrated on images 50x too dark, INT8 clips the real ones: plain quantization is
    rejected by name; NNCF's accuracy control returns layers to float, names them, and the
    result fits the limit."""
    from igcv3_gluon.deploy.openvino import compile_ir
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (64, 3, 16, 16)).astype(np.float32)
    labels = compile_ir(tiny_ir[:-len(".onnx")] + ".xml", "f32")(x)[0].argmax(1)
    calib = [x[:32] * 0.02]
    plain = quantize_ir(tiny_ir, str(tmp_path / "plain"), calib, validation=(x, labels),
                        max_drop=5.0, max_restore=0)
    assert plain.fp32_accuracy == 1.0 and plain.drop > 5.0 and not plain.accepted
    assert plain.xml.endswith("plain-REJECTED.xml") and plain.float_layers == []
    assert not os.path.exists(str(tmp_path / "plain.xml"))
    controlled = quantize_ir(tiny_ir, str(tmp_path / "ac"), calib, validation=(x, labels),
                             max_drop=5.0)
    assert controlled.accepted and controlled.drop <= 5.0, controlled
    assert controlled.xml == str(tmp_path / "ac.xml") and os.path.isfile(controlled.xml)
    assert 1 <= len(controlled.float_layers) <= 4
    assert all(name.endswith("_weight") for name in controlled.float_layers)
    assert controlled.float_layers == float_convolutions(onnx.load(str(tmp_path / "ac.onnx")))


def test_a_model_that_loses_too_much_exits_1_under_a_rejected_name(digits_run, tmp_path):
    """Calibrated on images 50x too dark, INT8 clips every real input: the command says so
    in one line, exits 1, and nothing is left under the good model's name."""
    from igcv3_gluon.data.digits import digits_arrays
    prefix = os.path.join(digits_run, "export", "cifar_igcv3_d_0.5-w0.5")
    (train_x, _), (test_x, test_y) = digits_arrays(os.path.join(digits_run, "config.json"))
    np.save(str(tmp_path / "dark.npy"), train_x[:128] * 0.02)
    np.savez(str(tmp_path / "val.npz"), x=test_x, y=test_y)
    out = str(tmp_path / "ov" / "digits")
    proc = subprocess.run(
        [sys.executable, "-m", "igcv3_gluon.deploy", "openvino", prefix, out, "--int8",
         "--calib-npy", str(tmp_path / "dark.npy"), "--val-npz", str(tmp_path / "val.npz"),
         "--max-restore", "0"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert re.match(r"python -m igcv3_gluon.deploy: error: INT8 lost [\d.]+ points "
                    r"\(> --max-drop 1.00\)", lines[-1])
    assert "digits-int8-REJECTED.xml" in lines[-1]
    assert os.path.isfile(out + "-int8-REJECTED.xml") and not os.path.exists(out + "-int8.xml")
    fp32, int8 = map(float, re.search(r"top-1 in OpenVINO \(360 images\): fp32 ([\d.]+)%, "
                                      r"int8 ([\d.]+)%", proc.stdout).groups())
    assert fp32 >= 90.0 and int8 < fp32 - 1.0
    # bad gate arguments are refused before any conversion
    for args, message in ((["--max-drop", "-1"], "--max-drop must be a number of points"),
                          (["--max-drop", "nan"], "--max-drop must be a number of points"),
                          (["--max-restore", "-1"], "--max-restore must be >= 0"),
                          (["--val-npz", str(tmp_path / "dark.npy")], "is not an .npz")):
        proc = subprocess.run(
            [sys.executable, "-m", "igcv3_gluon.deploy", "openvino", prefix,
             str(tmp_path / "o"), "--int8", "--calib-npy", str(tmp_path / "dark.npy")] + args,
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not os.path.exists(str(tmp_path / "o.xml"))
