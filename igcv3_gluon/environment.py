"""What a run ran on, recorded with its results (a run's ``config.json``, an export's
``-meta.json``): reproduction disputes end on exactly these (a cuDNN upgrade changed
ResNet-50's speed by 17%, apache/mxnet#14838; imgclsmob's scripts log their packages with
``--log-packages``).

``environment()`` is cheap (no package is imported that is not already; versions are read
from the installed distributions, MXNet's build features from ``mx.runtime.Features``, GPU
names from ``nvidia-smi`` when there is one) and returns plain JSON values.
``changed(old, new)`` lists what differs between two records, for a run resumed elsewhere.
"""
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata

__all__ = ["environment", "changed", "PACKAGES", "COMPARED"]

# the distributions whose versions decide what a run computes and how fast
PACKAGES = ("mxnet", "mxnet-cu112", "gluoncv", "numpy", "opencv-python-headless",
            "opencv-python", "horovod", "onnx", "onnxruntime", "openvino", "nncf",
            "tensorboardX", "igcv3-gluon")
# MXNet's build features worth recording (``mx.runtime.Features``)
FEATURES = ("CUDA", "CUDNN", "NCCL", "TENSORRT", "MKLDNN", "OPENMP", "BLAS_OPEN", "BLAS_MKL",
            "DIST_KVSTORE", "INT64_TENSOR_SIZE", "SIGNAL_HANDLER")
# what a resumed run compares (the command line and the time of day do not change results)
COMPARED = ("python", "packages", "mxnet_features", "cpu", "gpus", "host", "git")


def _versions():
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _mxnet_features():
    """The enabled build features of the MXNet in this process (imported by the caller)."""
    mx = sys.modules.get("mxnet")
    if mx is None:
        return None
    try:
        features = mx.runtime.Features()
        return sorted(name for name in FEATURES if features.is_enabled(name))
    except Exception:                           # noqa: BLE001 - a record, never a failure
        return None


def _cpu():
    """The CPU's model name and the instruction sets that decide its kernels."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    kinds = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8")
             if f in flags]
    return dict(name=name, isa=kinds, cores=os.cpu_count())


def _gpus():
    """GPU names from nvidia-smi (one per GPU), or [] without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _git():
    """The commit of the code that runs and whether its tree had changes, or None when the
    package is not a git checkout (an installed wheel)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", here, "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(commit=commit.stdout.strip(), changed=bool(status.stdout.strip()))


def environment():
    """This process's environment as JSON values: Python, package versions, MXNet's build
    features, CPU, GPUs, host, the command line and working folder, the code's git commit."""
    return dict(python=platform.python_version(), platform=platform.platform(),
                packages=_versions(), mxnet_features=_mxnet_features(), cpu=_cpu(),
                gpus=_gpus(), host=socket.gethostname(), command=list(sys.argv),
                cwd=os.getcwd(), git=_git())


def changed(old, new):
    """``{key: [old, new]}`` of the ``COMPARED`` parts that differ between two records
    (package by package for the versions); {} when ``old`` is no record."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return {}
    diff = {}
    for key in COMPARED:
        a, b = old.get(key), new.get(key)
        if key == "packages" and isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    diff[name] = [a.get(name), b.get(name)]
        elif a != b:
            diff[key] = [a, b]
    return diff
