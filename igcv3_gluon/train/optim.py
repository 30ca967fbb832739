"""The optimiser every recipe of the paper uses: SGD with momentum, weight decay on a chosen
set of parameters, over the run's cluster (kvstore or Horovod), with AMP where asked."""
from dataclasses import dataclass

from mxnet import gluon

from . import precision

__all__ = ["SGDConfig", "WD_RULES", "apply_wd_rule", "make_trainer"]

# Which parameters weight decay applies to (``--wd-on``):
WD_RULES = {
    # Gluon's Trainer: every trainable parameter (conv/FC weights, FC bias, BN gamma, beta)
    "all": lambda name: True,
    # MXNet's Module API, which the authors trained with: ``Optimizer.set_wd_mult`` gives
    # wd_mult 0 to every name not ending in ``_weight`` or ``_gamma`` (BN beta, FC bias)
    "module": lambda name: name.endswith(("_weight", "_gamma")),
    # conv/FC weights only (no decay on BatchNorm or biases; GluonCV's --no-wd)
    "weights": lambda name: name.endswith("_weight"),
}


@dataclass
class SGDConfig:
    lr: float
    momentum: float = 0.9
    wd: float = 0.0
    wd_on: str = "all"


def apply_wd_rule(net, rule):
    """Set ``wd_mult`` of every parameter of ``net`` by ``WD_RULES[rule]`` (read on the
    parameter names, as MXNet's optimiser reads them); returns the names left undecayed."""
    if rule not in WD_RULES:
        raise ValueError("unknown weight-decay rule %r: choose one of %s"
                         % (rule, ", ".join(WD_RULES)))
    spared = []
    for name, param in net.collect_params().items():
        if param.grad_req == "null":
            continue
        param.wd_mult = 1.0 if WD_RULES[rule](name) else 0.0
        if not param.wd_mult:
            spared.append(name)
    return spared


def make_trainer(net, cluster, sgd, dtype="float32"):
    """A Gluon Trainer (Horovod's ``DistributedTrainer`` under Horovod) for ``net``.

    ``multi_precision`` as the authors set it (it keeps float32 copies of float16 weights;
    under AMP the weights are float32 already). The kvstores aggregate only (``update_on_
    kvstore=False``): every worker applies the same update itself, which keeps the optimizer
    state on the worker, where checkpoints can save it."""
    apply_wd_rule(net, sgd.wd_on)
    params = {"learning_rate": sgd.lr, "momentum": sgd.momentum, "wd": sgd.wd,
              "multi_precision": True}
    if cluster.horovod:
        import horovod.mxnet as hvd
        trainer = hvd.DistributedTrainer(net.collect_params(), "sgd", params)
    else:
        trainer = gluon.Trainer(net.collect_params(), "sgd", params, kvstore=cluster.kv,
                                update_on_kvstore=False if cluster.kv is not None else None)
    precision.init_trainer(trainer, dtype)
    return trainer
