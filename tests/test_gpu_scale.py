"""Issue 15: mixed precision, the GPU graph, Horovod and the self-check, tested with what
this machine has (CPU contexts; bfloat16 where the CPU runs it)."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import ROOT, small_digits

PY = sys.executable
TINY = ["--model", "cifar_igcv3_d_0.5", "--multiplier", "0.5", "--depths", "1,1,1,1,1,1,1",
        "--batch-size", "32", "--lr", "0.05", "--lr-mode", "cosine", "--warmup-epochs", "1",
        "--no-progress", "--workers", "0"]


def run(*args, timeout=600, env=None):
    return subprocess.run([PY] + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def bfloat16_runs_here():
    from igcv3_gluon.train.precision import check_dtype
    try:
        check_dtype("bfloat16", [mx.cpu()])
        return True
    except ValueError:
        return False


def log(out):
    return [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if line.strip()]


def test_bfloat16_trains_like_float32_with_float32_master_weights(tmp_path):
    """Where the CPU runs bfloat16 (oneDNN): a short digits run trains (loss falls, accuracy
    close to float32's), its parameters and checkpoints stay float32, its export is a plain
    float32 graph, and a float32 run resumes under bfloat16. A CPU without bfloat16 (any CPU
    with MXNet's oneDNN capped to AVX2) gets one line, on every machine."""
    out16 = str(tmp_path / "bf16")
    proc = run("train_cifar.py", *TINY, "--epochs", "1", "--dtype", "bfloat16",
               "--out-dir", out16, env=dict(os.environ, DNNL_MAX_CPU_ISA="AVX2"))
    assert proc.returncode == 2 and "cannot train in bfloat16" in proc.stderr
    assert "Traceback" not in proc.stderr and not os.path.exists(out16)
    if not bfloat16_runs_here():
        print("this CPU has no bfloat16 for oneDNN (lscpu: no avx512_bf16 / amx_bf16): "
              "checked the refusal only")
        return
    out32 = str(tmp_path / "fp32")
    for out, dtype in ((out32, "float32"), (out16, "bfloat16")):
        proc = run("train_cifar.py", *TINY, "--epochs", "2", "--dtype", dtype, "--out-dir", out)
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows32, rows16 = log(out32), log(out16)
    assert rows16[-1]["train_loss"] < 0.7 * rows16[0]["train_loss"]
    assert rows16[-1]["val_acc"] >= rows32[-1]["val_acc"] - 0.10, (rows16, rows32)
    assert json.load(open(os.path.join(out16, "config.json")))["dtype"] == "bfloat16"
    for name in ("final.params", "best.params"):
        params = mx.nd.load(os.path.join(out16, name))
        assert {v.dtype for v in params.values()} == {np.float32}
    nodes = json.load(open(os.path.join(out16, "export", "cifar_igcv3_d_0.5-w0.5-symbol.json")))
    assert not [n for n in nodes["nodes"] if "amp" in n["op"] or "cast" in n["op"].lower()]
    # a float32 run continued in bfloat16: the checkpoint is float32 whatever the dtype
    proc = run("train_cifar.py", *TINY, "--epochs", "3", "--dtype", "bfloat16",
               "--out-dir", out32)
    assert proc.returncode == 0 and "resuming" in proc.stderr, proc.stderr[-2000:]
    assert [r["epoch"] for r in log(out32)] == [1, 2, 3]


def test_mixed_precision_that_cannot_run_is_one_line(tmp_path):
    from igcv3_gluon.train.precision import check_dtype
    proc = run("train_cifar.py", *TINY, "--epochs", "1", "--dtype", "float16",
               "--out-dir", str(tmp_path / "x"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "float16 needs GPUs" in proc.stderr
    # a CPU whose oneDNN cannot run bfloat16 (the probe fails in its child process)
    with pytest.raises(ValueError, match="this CPU cannot train in bfloat16"):
        check_dtype("bfloat16", [mx.cpu()], probe="raise SystemExit('no avx512_bf16')")
    with pytest.raises(ValueError, match="bfloat16 is MXNet's CPU"):
        check_dtype("bfloat16", [mx.gpu(0)])


def test_float16_symbol_is_cast_as_the_module_api_expects():
    """MXNet's example/image-classification calls get_symbol(**vars(args)) with dtype and
    its other flags: float16 convolutions and FC, float32 BatchNorm parameters and output."""
    from symbols import igcv3, mobilenetv2
    for module in (igcv3, mobilenetv2):
        sym = module.get_symbol(num_classes=10, multiplier=0.25, dtype="float16",
                                image_shape="3,32,32", num_layers=50, batch_size=8, cifar=True)
        args, outs, _ = sym.infer_type(data=np.float32)
        types = dict(zip(sym.list_arguments(), args))
        convs = [t for n, t in types.items() if n.endswith("_weight")]
        gammas = [t for n, t in types.items() if n.endswith("_gamma")]
        assert outs == [np.float32] and set(convs) == {np.float16} and set(gammas) == {np.float32}
        casts = [n for n in json.loads(sym.tojson())["nodes"] if n["op"] == "Cast"]
        assert len(casts) == 2
        plain = module.get_symbol(num_classes=10, multiplier=0.25, cifar=True)
        assert set(plain.infer_type(data=np.float32)[0]) == {np.float32}


def test_syncbn_needs_gpus_and_builds_sync_batchnorm_for_them():
    from mxnet.gluon.contrib.nn import SyncBatchNorm

    from igcv3_gluon import get_model
    from igcv3_gluon.nn import norm_layer_for
    kwargs = norm_layer_for([mx.gpu(0), mx.gpu(1)], sync=True)
    assert kwargs == {"norm_layer": SyncBatchNorm, "norm_kwargs": {"num_devices": 2}}
    net = get_model("ssdlite_320_igcv3_w_coco", multiplier=0.5, **kwargs)
    found, every = [], []
    net.apply(lambda b: found.append(b) if isinstance(b, SyncBatchNorm) else None)
    net.apply(lambda b: every.append(b) if isinstance(b, mx.gluon.nn.BatchNorm) else None)
    # backbone, 3 in each of the 4 extras, 2 in each of the 12 heads (their 1x1 ends with one)
    assert len(found) == len(every) == 90
    proc = run("train_ssdlite.py", "--syncbn", "--cpus", "2", timeout=120)
    assert proc.returncode == 2 and "--syncbn synchronises BatchNorm over several GPUs" \
        in proc.stderr


def test_horovod_ranks_equal_one_process_at_the_same_global_batch(tmp_path):
    """horovodrun -np 2 (Gloo on loopback): the two ranks end identical, and equal to one
    process with two devices at the same global batch (each step: the same images, split
    the same way; Horovod averages, the divisor accounts for it)."""
    import importlib
    importlib.import_module("horovod.mxnet")      # make test installs it (Makefile, extra)
    horovodrun = os.path.join(os.path.dirname(PY), "horovodrun")
    out, single = str(tmp_path / "hvd"), str(tmp_path / "single")
    proc = subprocess.run([horovodrun, "--gloo", "-np", "2", "-H", "localhost:2", PY,
                           "train_cifar.py", *TINY, "--data-dir", small_digits(), "--epochs",
                           "1", "--kvstore", "horovod",
                           "--out-dir", out], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    proc = run("train_cifar.py", *TINY, "--data-dir", small_digits(), "--epochs", "1", "--cpus",
               "2", "--out-dir", single)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [mx.nd.load(os.path.join(out, "final-rank%d.params" % r)) for r in (0, 1)]
    one = mx.nd.load(os.path.join(single, "final.params"))
    trained = [k for k in one if "running" not in k]
    assert len(trained) > 50
    for key in trained:
        np.testing.assert_array_equal(ranks[0][key].asnumpy(), ranks[1][key].asnumpy(), key)
        np.testing.assert_allclose(ranks[0][key].asnumpy(), one[key].asnumpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=key)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["num_workers"] == 2 and config["kvstore"] == "horovod"
    assert log(out)[0]["images"] == (320 // 32) * 16          # each rank: half of each batch


def test_horovod_needs_horovodrun():
    proc = run("train_cifar.py", "--kvstore", "horovod", "--cpus", "2", "--epochs", "1",
               timeout=120)
    assert proc.returncode == 2 and "start it with horovodrun -np 2" in proc.stderr


def test_selfcheck_passes_on_two_cpu_contexts_and_fails_when_a_device_is_wrong(monkeypatch):
    proc = run("-m", "igcv3_gluon.selfcheck", "--cpus", "2", timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    mixed = 2 if bfloat16_runs_here() else 1
    assert len(lines) == 2 * mixed and all(line.startswith("ok ") for line in lines), proc.stdout
    assert "classifier igcv3_d_1.0 float32 kvstore=device on cpu(0),cpu(1): loss" in proc.stdout
    assert "img/s" in lines[0] and proc.stdout.strip().endswith("all checks passed")
    # a device that computes something else is caught
    import igcv3_gluon.selfcheck as selfcheck
    real = selfcheck._step
    calls = []

    def wrong(task, net, data, contexts):
        loss, grads = real(task, net, data, contexts)
        calls.append(1)
        if len(calls) == 2:                      # the devices' step, not the reference
            grads = {k: g * 1.01 for k, g in grads.items()}
        return loss, grads
    monkeypatch.setattr(selfcheck, "_step", wrong)
    result = selfcheck.run_check("classifier", "float32", "device", [mx.cpu(0), mx.cpu(1)],
                                 32, 0.25, 4, 1)
    assert not result["ok"] and result["grad_diff"] > 5e-3
