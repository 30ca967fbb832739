"""The shared training toolkit: schedules, checkpoints, devices and kvstore."""
import os

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon.errors import UsageError
from igcv3_gluon.train import CheckpointManager, LRSchedule, RunLog, make_cluster
from igcv3_gluon.train.cli import contexts_from_args, parse_steps
from igcv3_gluon.train.optim import SGDConfig, make_trainer


def test_step_schedule_of_the_paper():
    s = LRSchedule(0.1, "step", 400, parse_steps("200,300,350"), 0.1)
    assert [round(s(e), 8) for e in (0, 199.9, 200, 300, 350, 399)] == \
        [0.1, 0.1, 0.01, 0.001, 0.0001, 0.0001]


def test_exponential_and_cosine_and_warmup():
    e = LRSchedule(0.045, "exp", 480, factor=0.98)
    assert e(0.5) == pytest.approx(0.045) and e(10.2) == pytest.approx(0.045 * 0.98 ** 10)
    c = LRSchedule(0.1, "cosine", 10)
    assert c(0) == pytest.approx(0.1) and c(5) == pytest.approx(0.05) and c(10) < 1e-12
    w = LRSchedule(0.1, "step", 10, [5], 0.1, warmup_epochs=2)
    assert w(0.5) == pytest.approx(0.025) and w(2) == pytest.approx(0.1)
    assert parse_steps("60,120,180") == [60, 120, 180] and parse_steps("") == []
    with pytest.raises(UsageError, match="--lr-steps"):
        parse_steps("60,x")
    # the library speaks of values; the command line names the flags
    with pytest.raises(ValueError, match="must increase") as err:
        LRSchedule(0.1, "step", 10, [300, 200])
    assert "--" not in str(err.value)
    with pytest.raises(ValueError, match="learning rate must be positive") as err:
        LRSchedule(-1.0)
    assert "--" not in str(err.value)


def _tiny_net():
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=[1] * 7)
    net.initialize(mx.init.Xavier())
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd",
                               {"learning_rate": 0.1, "momentum": 0.9})
    with mx.autograd.record():
        loss = net(mx.nd.random.uniform(shape=(2, 3, 32, 32))).sum()
    loss.backward()
    trainer.step(2)
    return net, trainer


def test_checkpoint_roundtrip_and_fallback_on_corruption(tmp_path):
    net, trainer = _tiny_net()
    ckpts = CheckpointManager(str(tmp_path), keep=3)
    ckpts.save(net, trainer, 1, 0, best={"val_acc": 0.5})
    first = {k: v.data().asnumpy().copy() for k, v in net.collect_params().items()}
    trainer.step(2, ignore_stale_grad=True)          # momentum moves the weights again
    ckpts.save(net, trainer, 2, 0)
    assert ckpts.latest()["epochs_done"] == 2
    # a kill between files: the newest checkpoint's params are cut short
    newest = ckpts.latest()
    path = os.path.join(str(tmp_path), newest["files"]["params"])
    open(path, "r+b").truncate(100)
    messages = []
    record = ckpts.latest(log=messages.append)
    assert record["epochs_done"] == 1 and record["best"] == {"val_acc": 0.5}
    assert "corrupted" in messages[0]
    ckpts.load(record, net, trainer)
    for k, v in net.collect_params().items():
        np.testing.assert_array_equal(v.data().asnumpy(), first[k])
    # a checkpoint whose .json never got written does not exist
    os.remove(os.path.join(str(tmp_path), record["_path"]))
    assert ckpts.latest() is None
    assert not [f for f in os.listdir(str(tmp_path)) if ".tmp" in f]


def test_checkpoint_order_and_pruning(tmp_path):
    net, trainer = _tiny_net()
    ckpts = CheckpointManager(str(tmp_path), keep=2)
    ckpts.save(net, trainer, 1, 0)
    ckpts.save(net, trainer, 1, 7)                   # Ctrl-C 7 batches into epoch 2
    assert (ckpts.latest()["epochs_done"], ckpts.latest()["batch"]) == (1, 7)
    ckpts.save(net, trainer, 2, 0)
    ckpts.save(net, trainer, 3, 0)
    names = sorted(f for f in os.listdir(str(tmp_path)) if f.endswith(".json"))
    assert names == ["ckpt-0002-00000.json", "ckpt-0003-00000.json"]


def test_runlog_truncates_on_resume_and_plots(tmp_path):
    log = RunLog(str(tmp_path))
    for epoch in (1, 2, 3):
        log.append(dict(epoch=epoch, train_loss=1.0 / epoch, train_acc=0.3 * epoch,
                        val_acc=0.3 * epoch))
    with open(log.path, "a") as fh:
        fh.write('{"epoch": 4, "trai')                  # a line cut by SIGKILL
    assert [r["epoch"] for r in log.records()] == [1, 2, 3]
    log.truncate(2)
    assert [r["epoch"] for r in log.records()] == [1, 2]
    png = log.plot()
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_devices_and_batch_split_errors():
    from argparse import Namespace
    assert contexts_from_args(Namespace(gpus=None, cpus=2)) == [mx.cpu(0), mx.cpu(1)]
    assert contexts_from_args(Namespace(gpus=None, cpus=None)) == [mx.cpu(0)]
    if mx.context.num_gpus() == 0:
        with pytest.raises(UsageError, match="no GPU is visible"):
            contexts_from_args(Namespace(gpus="0,1", cpus=None))
    with pytest.raises(UsageError, match="--gpus"):
        contexts_from_args(Namespace(gpus="zero", cpus=None))
    two = make_cluster("device", [mx.cpu(0), mx.cpu(1)])
    assert two.worker_batch(64) == 64 and two.kv is not None
    with pytest.raises(ValueError, match="does not split over 3"):
        make_cluster("device", [mx.cpu(i) for i in range(3)]).worker_batch(64)
    with pytest.raises(ValueError, match="needs MXNet's parameter-server"):
        make_cluster("dist_sync", [mx.cpu(0)])
    with pytest.raises(ValueError, match="nccl kvstore needs GPUs"):
        make_cluster("nccl", [mx.cpu(0)])
    with pytest.raises(ValueError, match="unknown kvstore 'dist_async'"):
        make_cluster("dist_async", [mx.cpu(0)])
    assert make_cluster("local", [mx.cpu(0)]).kv is None
    # Horovod averages over ranks, the kvstores sum: the step divisor accounts for it
    from igcv3_gluon.train.context import Cluster
    assert Cluster("horovod", [mx.cpu()], rank=0, num_workers=4).gradient_divisor(64) == 16
    assert Cluster("dist_sync", [mx.cpu()], rank=0, num_workers=4).gradient_divisor(64) == 64


def test_two_cpu_contexts_with_device_kvstore_stay_identical():
    contexts = [mx.cpu(0), mx.cpu(1)]
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", classes=4, multiplier=0.25, depths=[1] * 7)
    net.initialize(mx.init.Xavier(), ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd",
                               {"learning_rate": 0.5, "momentum": 0.9},
                               kvstore=make_cluster("device", contexts).kv)
    start = {k: v.data(contexts[0]).asnumpy().copy() for k, v in net.collect_params().items()}
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.RandomState(0)
    for _ in range(2):
        x = mx.nd.array(rng.randn(8, 3, 32, 32))
        y = mx.nd.array(rng.randint(0, 4, 8))
        xs = mx.gluon.utils.split_and_load(x, contexts)
        ys = mx.gluon.utils.split_and_load(y, contexts)
        with mx.autograd.record():
            losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
        mx.autograd.backward(losses)
        trainer.step(8)
    moved = 0
    for name, param in net.collect_params().items():
        if param.grad_req == "null":
            continue
        a, b = (param.data(c).asnumpy() for c in contexts)
        np.testing.assert_array_equal(a, b, err_msg=name)
        moved += not np.allclose(a, start[name])
    assert moved > 20


def test_label_smoothing_loss():
    from igcv3_gluon.train.classifier import SmoothedLoss as _SmoothedLoss
    pred = mx.nd.array(np.random.RandomState(0).randn(4, 5))
    label = mx.nd.array([0, 1, 4, 2])
    plain = mx.gluon.loss.SoftmaxCrossEntropyLoss()(pred, label).asnumpy()
    np.testing.assert_allclose(_SmoothedLoss(5, 0.0)(pred, label).asnumpy(), plain, rtol=1e-5)
    logp = mx.nd.log_softmax(pred).asnumpy()
    target = np.full((4, 5), 0.1 / 5)
    target[np.arange(4), label.asnumpy().astype(int)] += 0.9
    np.testing.assert_allclose(_SmoothedLoss(5, 0.1)(pred, label).asnumpy(),
                               -(logp * target).sum(1), rtol=1e-5)


def test_interrupts_wait_for_the_plot_and_a_broken_plot_does_not_stop_the_run(tmp_path,
                                                                              monkeypatch):
    import os
    import signal

    from igcv3_gluon.train import logbook
    log = logbook.RunLog(str(tmp_path))
    log.append({"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5})
    real = logbook.plot_curves

    def interrupted_plot(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)            # Ctrl-C in the middle of drawing
        return real(*args, **kwargs)
    monkeypatch.setattr(logbook, "plot_curves", interrupted_plot)
    with pytest.raises(KeyboardInterrupt):
        log.plot()
    assert os.path.getsize(str(tmp_path / "curves.png")) > 1000    # finished first

    def broken_plot(*args, **kwargs):
        raise AttributeError("'Line2D' object has no attribute 'eventson'")
    monkeypatch.setattr(logbook, "plot_curves", broken_plot)
    assert log.plot() is None                            # said so, did not raise


def test_a_second_stage_restores_the_fresh_optimizer_state():
    """ImageNet retraining reuses the first stage's Trainer (a dist kvstore cannot initialise
    its keys twice) but starts with fresh momentum, as a restart of the authors' Module would."""
    from igcv3_gluon.train.engine import _optimizer_snapshot, _restore
    net = igcv3_gluon.get_model("cifar_igcv3_d_0.5", multiplier=0.25, depths=[1] * 7)
    net.initialize(mx.init.Xavier())
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd",
                               {"learning_rate": 0.1, "momentum": 0.9})
    fresh = _optimizer_snapshot(trainer)
    with mx.autograd.record():
        loss = net(mx.nd.random.uniform(shape=(2, 3, 32, 32))).sum()
    loss.backward()
    trainer.step(2)
    states = trainer._updaters[0].states
    assert states and max(float(mx.nd.abs(m).max().asscalar()) for m in states.values()) > 0
    trainer.set_learning_rate(0.01)
    _restore(trainer, fresh)
    assert trainer._updaters[0].states == {}             # momentum starts again from zero
    assert trainer.learning_rate == 0.1 and trainer._optimizer.momentum == 0.9


def test_float16_weights_are_updated_through_float32_master_copies():
    """``multi_precision`` as the authors' ``common/fit.py:215`` (homles11/IGCV3) sets it:
    an update of 1e-4 is below float16's resolution at 1.0 (2**-10), so a float16 weight
    updated in float16 stays 1.0 for ever; with the float32 master copy the steps add up."""
    class Scale(mx.gluon.Block):         # one weight (MXNet's CPU has no float16 Dense)
        def __init__(self):
            super().__init__()
            self.weight = self.params.get("weight", shape=(1,), init=mx.init.One())

        def forward(self, x):
            return x * self.weight.data()
    net = Scale()
    net.initialize()
    net.cast("float16")
    trainer = make_trainer(net, make_cluster("local", [mx.cpu(0)]),
                           SGDConfig(1e-4, 0.0, 0.0, "all"))
    one = mx.nd.ones((1,), dtype="float16")
    for _ in range(20):
        with mx.autograd.record():
            loss = -net(one)                    # gradient -1: each step adds lr * 1 = 1e-4
        loss.backward()
        trainer.step(1)
    weight = net.weight.data()
    assert weight.dtype == np.float16
    assert abs(float(weight.asscalar()) - 1.002) < 5e-4      # 1.00195, the float16 of 1.002


def test_a_damaged_jsonl_reads_as_its_good_rows(tmp_path):
    """NUL bytes, bytes that are not UTF-8, a JSON value that is no row, a line cut short:
    each dropped, the rows around them kept (logs, batch rows, reports read through it)."""
    from igcv3_gluon.utils import read_jsonl
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"epoch": 1}\n\x00\x00\x00\n\xff\xfe\xfd\n[1, 2]\n7\n'
                     b'\x00\x00{"epoch": 2, "note": "caf\xc3\xa9"}\n{"epoch": 3, "acc')
    assert read_jsonl(str(path)) == [{"epoch": 1}, {"epoch": 2, "note": "café"}]
