#!/usr/bin/env python
"""ImageNet-size throughput, side by side in one process. Prints images/s and
ratios to GluonCV's MobileNetV2; never asserts a time.

    python benchmarks/imagenet_throughput.py [--batch-sizes 1,32] [--rounds 5] [--threads 1,2]

Rows:
* training (forward + backward + SGD step) and inference (forward) images/s at 224x224 of
  ``igcv3_d_1.0``, our ``mobilenetv2_1.0`` and GluonCV's ``mobilenetv2_1.0``, hybridized with
  static alloc/shape, timed in interleaved rounds;
* the RecordIO pipeline (``ImageRecordIter`` with the training augmentation to 224x224) on
  generated JPEGs of ImageNet's typical size (500x375, packed short side 480 as the authors
  did), images/s for each ``--threads`` value and per thread.
"""
import os
import sys
import tempfile
import time

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

import igcv3_gluon  # noqa: E402
from igcv3_gluon.deploy.bench import (  # noqa: E402
    gluoncv_mobilenetv2,
    interleaved_medians,
    mxnet_inference,
    mxnet_training,
)

from common import command_line  # noqa: E402 (puts the project on sys.path)


def networks():
    nets = {}
    for name in ("igcv3_d_1.0", "mobilenetv2_1.0"):
        net = igcv3_gluon.get_model(name)
        net.initialize(mx.init.Xavier())
        nets[name] = net
    nets["gluoncv mobilenetv2_1.0"] = gluoncv_mobilenetv2()
    return nets


def model_rows(batch, rounds, train):
    nets = networks()
    make = mxnet_training if train else mxnet_inference
    fns = {name: make(net, batch) for name, net in nets.items()}
    medians = interleaved_medians(fns, rounds=rounds, warmup=2)
    return {name: batch / t for name, t in medians.items()}


def make_records(folder, count=192, seed=0):
    """``count`` 500x375 JPEGs (smooth random content, like photos compress) packed with
    ``igcv3_gluon.im2rec`` at short side 480."""
    import cv2

    from igcv3_gluon.data.im2rec import pack_folder
    rng = np.random.RandomState(seed)
    for c in range(4):
        os.makedirs(os.path.join(folder, "img", "c%d" % c))
    for i in range(count):
        small = (rng.rand(24, 32, 3) * 255).astype(np.uint8)
        img = cv2.resize(small, (500, 375), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.randint(-12, 12, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, "img", "c%d" % (i % 4), "%d.jpg" % i), img)
    prefix = os.path.join(folder, "rec", "train")
    pack_folder(os.path.join(folder, "img"), prefix, resize=480, progress=False)
    return prefix


def decode_rate(prefix, threads, batch=32, epochs=3):
    from igcv3_gluon.data.recordio import RecordImages
    loader = RecordImages(prefix + ".rec", prefix + ".idx", batch, True, threads=threads)
    rates = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        tic, seen = time.perf_counter(), 0
        for data, _ in loader:
            data.wait_to_read()
            seen += data.shape[0]
        rates.append(seen / (time.perf_counter() - tic))
    return max(rates[1:] or rates)


def main():
    args = command_line(__doc__, batch_sizes="1,32", rounds=5, threads="1,2")
    base = "gluoncv mobilenetv2_1.0"
    print("| what | batch | igcv3_d_1.0 | mobilenetv2_1.0 (ours) | %s | igcv3_d / %s |"
          % (base, base))
    print("|---|---|---|---|---|---|")
    for train in (False, True):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            rates = model_rows(batch, args.rounds, train)
            print("| %s img/s | %d | %.1f | %.1f | %.1f | %.2fx the speed |" % (
                "training" if train else "inference", batch, rates["igcv3_d_1.0"],
                rates["mobilenetv2_1.0"], rates[base], rates["igcv3_d_1.0"] / rates[base]))
            sys.stdout.flush()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = make_records(tmp)
        print("\n| RecordIO pipeline (decode + random resized crop + jitter + flip, 224) | "
              "img/s | img/s per thread |")
        print("|---|---|---|")
        for threads in [int(t) for t in args.threads.split(",")]:
            rate = decode_rate(prefix, threads)
            print("| %d thread(s) | %.0f | %.0f |" % (threads, rate, rate / threads))


if __name__ == "__main__":
    main()
