#!/usr/bin/env python
"""Training throughput of the CIFAR models and of the data pipeline, side by side in one
process. Prints images/s and ratios; never asserts a time.

    python benchmarks/train_throughput.py [--batch-size 64] [--iters 10] [--workers 2]

Rows:
* training images/s (forward + backward + SGD step, hybridized, static alloc/shape) of
  ``cifar_igcv3_d_1.0`` and ``cifar_mobilenetv2_1.0``, and of ``cifar_igcv3_d_1.0`` with
  oneDNN's BatchNorm instead of ``FlatBatchNorm`` (the fix for oneDNN's reference BatchNorm);
* the DataLoader alone (pad + random crop + flip + normalise, ``--workers`` processes) on
  CIFAR-sized uint8 images; it must run at least 3x the fastest model.
"""
import time

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

import igcv3_gluon  # noqa: E402
from igcv3_gluon.data import channel_stats, make_loader  # noqa: E402
from igcv3_gluon.nn import layers  # noqa: E402

from common import command_line  # noqa: E402 (puts the project on sys.path)


def train_rate(name, batch, iters, onednn_bn=False):
    flat = layers.FlatBatchNorm
    if onednn_bn:
        layers.FlatBatchNorm = gluon.nn.BatchNorm
    try:
        net = igcv3_gluon.get_model(name)
    finally:
        layers.FlatBatchNorm = flat
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01,
                                                          "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.uniform(shape=(batch, 3, 32, 32))
    y = mx.nd.array(np.random.randint(0, 10, batch))
    times = []
    for i in range(iters + 2):
        tic = time.time()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
        if i >= 2:
            times.append(time.time() - tic)
    return batch / float(np.median(times))


def loader_rate(batch, workers, images=10000, epochs=2):
    rng = np.random.RandomState(0)
    data = rng.randint(0, 256, (images, 32, 32, 3)).astype(np.uint8)
    labels = rng.randint(0, 10, images)
    mean, std = channel_stats(data)
    loader, sampler = make_loader(data, labels, mean, std, batch, True, workers=workers)
    rates = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        tic, seen = time.time(), 0
        for x, _ in loader:
            seen += x.shape[0]
        rates.append(seen / (time.time() - tic))
    return max(rates)


def main():
    args = command_line(__doc__, batch_size=64, iters=10, workers=2)
    rows = [("cifar_igcv3_d_1.0", train_rate("cifar_igcv3_d_1.0", args.batch_size, args.iters)),
            ("cifar_mobilenetv2_1.0",
             train_rate("cifar_mobilenetv2_1.0", args.batch_size, args.iters)),
            ("cifar_igcv3_d_1.0, oneDNN BatchNorm",
             train_rate("cifar_igcv3_d_1.0", args.batch_size, args.iters, onednn_bn=True))]
    data = loader_rate(args.batch_size, args.workers)
    base = rows[1][1]
    print("| what | images/s | vs cifar_mobilenetv2_1.0 |")
    print("|---|---|---|")
    for name, rate in rows:
        print("| train %s (batch %d) | %.1f | %.2fx |" % (name, args.batch_size, rate, rate / base))
    print("| DataLoader alone (%d workers) | %.0f | %.1fx |" % (args.workers, data, data / base))
    fastest = max(rate for _, rate in rows)
    print("\ndata pipeline / fastest model: %.1fx (must be >= 3x)" % (data / fastest))
    print("FlatBatchNorm speed-up on cifar_igcv3_d_1.0 training: %.2fx"
          % (rows[0][1] / rows[2][1]))


if __name__ == "__main__":
    main()
