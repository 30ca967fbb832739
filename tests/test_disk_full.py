"""A full disk: one line naming the folder and the space needed; nothing half-written left,
earlier checkpoints intact. Simulated everywhere (MXNet's own 'Write incomplete' error with
no space left), and really full: a 256 KB tmpfs where the test may mount one, else
/dev/full."""
import collections
import errno
import os
import subprocess

import mxnet as mx
import pytest

from igcv3_gluon.errors import exit_on_usage_error
from igcv3_gluon.train.checkpoint import CheckpointManager
from igcv3_gluon.utils import DiskFull, atomic_write


def _net(units=256):
    net = mx.gluon.nn.Dense(units, in_units=512)            # 131,328 parameters: 513 KB
    net.initialize()
    return net


def test_mxnet_write_incomplete_on_a_full_device_is_one_line_with_the_space_needed(
        tmp_path, monkeypatch, capsys):
    import shutil
    ckpts = CheckpointManager(str(tmp_path / "checkpoints"))
    net = _net()
    ckpts.save(net, None, 1)
    before = sorted(os.listdir(ckpts.directory))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 20, 10 << 20, 4096))

    def full(path):
        with open(path, "wb") as fh:
            fh.write(b"\0" * 4096)
        raise mx.MXNetError("[10:00:00] src/io/local_filesys.cc:45: Check failed: "
                            "std::fwrite(ptr, 1, size, fp_) == size: FileStream.Write incomplete")
    monkeypatch.setattr(type(net), "save_parameters", lambda self, path, *a, **k: full(path))

    @exit_on_usage_error
    def main():
        ckpts.save(net, None, 2)
    assert main() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "no space left on the device of %s" % ckpts.directory in err[0]
    assert "ckpt-0002-00000.params needs at least 513.1 KB, 4.0 KB free" in err[0], err[0]
    assert sorted(os.listdir(ckpts.directory)) == before      # nothing half-written


def _mount_tmpfs(folder, size):
    if os.geteuid() != 0:
        return False
    os.makedirs(folder, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", folder],
                          capture_output=True).returncode == 0


def test_a_real_full_device(tmp_path):
    """A write the kernel refuses with ENOSPC: on a 256 KB tmpfs where the machine lets the
    test mount one (MXNet's own 'Write incomplete'), else through /dev/full, which refuses
    every write with ENOSPC on any Linux, no root needed. Either way one DiskFull, nothing
    half-written."""
    folder = str(tmp_path / "small")
    mounted = _mount_tmpfs(folder, "256k")
    os.makedirs(folder, exist_ok=True)
    net = _net()

    def to_dev_full(path):
        with open(path, "wb") as fh:
            fh.write(b"\0" * 1024)                    # the start of the file, then the full
        with open("/dev/full", "wb") as full:          # device refuses the rest
            full.write(b"\0" * (300 << 10))
            full.flush()
    try:
        with pytest.raises(DiskFull) as err:
            atomic_write(os.path.join(folder, "w.params"),
                         net.save_parameters if mounted else to_dev_full)
        assert err.value.errno == errno.ENOSPC
        if mounted:
            assert err.value.needed >= 200 << 10 and err.value.free < 64 << 10
        else:
            assert err.value.needed == 1024
        assert os.listdir(folder) == []
    finally:
        if mounted:
            subprocess.run(["umount", folder])


def test_a_file_size_limit_is_one_line_too(tmp_path):
    """`ulimit -f` (or a quota) stops MXNet's write with the same 'Write incomplete' while the
    device has room: one line naming the limit, nothing half-written."""
    import resource
    import sys
    script = ("import mxnet as mx\n"
              "from igcv3_gluon.errors import exit_on_usage_error\n"
              "from igcv3_gluon.utils import atomic_write\n"
              "net = mx.gluon.nn.Dense(256, in_units=512)\n"
              "net.initialize()\n"
              "exit_on_usage_error(lambda: atomic_write(%r, net.save_parameters))()\n"
              "raise SystemExit(exit_on_usage_error(lambda: atomic_write(%r, "
              "net.save_parameters))())\n" % (str(tmp_path / "ok.params"),
                                             str(tmp_path / "w.params")))

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 << 10, 200 << 10))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          preexec_fn=limit, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "cannot write %s: the write stopped after" % (tmp_path / "w.params") in lines[-1]
    assert "a file-size limit such as `ulimit -f`, or a quota" in lines[-1]
    assert os.listdir(str(tmp_path)) == []


def test_every_deploy_writer_under_a_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """``ulimit -f`` below the size of what ``deploy export``, ``onnx`` and ``quantize``
    write (quantize: MXNet saves the float model to a temporary folder first): exit 1, one
    line naming the file and the limit, no traceback, nothing under the outputs' names, and
    an earlier export of the same name kept whole."""
    import resource
    import sys

    import numpy as np

    import igcv3_gluon
    from igcv3_gluon.deploy import export

    from conftest import ROOT
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=(1,) * 7)
    net.initialize()
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 32, 32), meta=dict(mean=[0, 0, 0], std=[1, 1, 1]))
    before = {name: open(str(tmp_path / name), "rb").read() for name in os.listdir(str(tmp_path))}
    calib = str(tmp_path / "calib.npy")
    np.save(calib, np.random.RandomState(0).uniform(-1, 1, (32, 3, 32, 32)).astype(np.float32))

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 << 10, 20 << 10))
    for argv in (["export", "cifar_igcv3_d_0.5", "--multiplier", "0.25", "--depths",
                  "1,1,1,1,1,1,1", "--out", prefix],
                 ["onnx", prefix, str(tmp_path / "m.onnx")],
                 ["quantize", prefix, str(tmp_path / "q"), "--calib-npy", calib]):
        proc = subprocess.run([sys.executable, "-m", "igcv3_gluon.deploy"] + argv, cwd=ROOT,
                              capture_output=True, text=True, preexec_fn=limit, timeout=300)
        lines = [line for line in proc.stderr.splitlines() if "error" in line]
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert len(lines) == 1 and "cannot write " in lines[0] and \
            "a file-size limit such as `ulimit -f`" in lines[0], lines
        assert {n: open(str(tmp_path / n), "rb").read() for n in os.listdir(str(tmp_path))
                if n != "calib.npy"} == before, argv
