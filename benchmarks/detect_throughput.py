#!/usr/bin/env python
"""Detector inference throughput at 320x320, side by side in one process. Prints
images/s and ratios; never asserts a time.

    python benchmarks/detect_throughput.py [--batch-sizes 1,16] [--rounds 10]

Rows: ``ssdlite_320_igcv3_w_coco`` (SSDLite2) and ``ssdlite_320_mobilenetv2_coco`` (81
classes, random weights), each hybridized as trained (static alloc/shape, NMS included) and
exported + ``igcv3_gluon.deploy.optimize``d (BatchNorms and shuffles folded), timed in
interleaved rounds.
"""
import os
import sys
import tempfile
import warnings

from common import command_line  # noqa: E402 (puts the project on sys.path)

warnings.simplefilter("ignore", UserWarning)

import mxnet as mx  # noqa: E402
from mxnet import autograd  # noqa: E402

import igcv3_gluon  # noqa: E402
from igcv3_gluon.deploy import export, load_symbolblock  # noqa: E402
from igcv3_gluon.deploy.bench import interleaved_medians  # noqa: E402
from igcv3_gluon.deploy.optimize import optimize_files  # noqa: E402

DETECTORS = ("ssdlite_320_igcv3_w_coco", "ssdlite_320_mobilenetv2_coco")


def detector(name):
    net = igcv3_gluon.get_model(name)
    net.initialize(mx.init.Xavier())
    with autograd.train_mode():                 # finish deferred shapes
        net(mx.nd.zeros((1, 3, 320, 320)))
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def main():
    args = command_line(__doc__, batch_sizes="1,16", rounds=10)
    with tempfile.TemporaryDirectory() as tmp:
        nets = {}
        for name in DETECTORS:
            net = detector(name)
            nets[name] = net
            prefix = os.path.join(tmp, name)
            net(mx.nd.zeros((1, 3, 320, 320)))
            export(net, prefix, (1, 3, 320, 320))
            _, report = optimize_files(prefix, prefix + "-opt")
            opt = load_symbolblock(prefix + "-opt")
            opt.hybridize(static_alloc=True, static_shape=True)
            nets[name + " optimised"] = opt
            print("%s: folded %d BatchNorms and %d shuffles" % (
                name, report["batchnorms_folded"], report["shuffles_folded"]))
        base = DETECTORS[1]
        print("\n| detector | batch | img/s | speed vs %s |" % base)
        print("|---|---|---|---|")
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, 320, 320))
            fns = {name: (lambda n=net: [o.wait_to_read() for o in n(x)])
                   for name, net in nets.items()}
            medians = interleaved_medians(fns, rounds=args.rounds, warmup=2)
            for name, t in medians.items():
                print("| %s | %d | %.1f | %.2fx |" % (name, batch, batch / t,
                                                     medians[base] / t))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
