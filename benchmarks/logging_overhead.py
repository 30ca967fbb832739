#!/usr/bin/env python
"""What watching a run costs: training images/s of the same digits run with the progress log
(a line, a batch row and TensorBoard scalars every ``--log-interval`` batches, the default
50, and every batch) and without any (``--log-interval 0 --log-seconds 0
--no-tensorboard``), in one process, the variants interleaved over ``--rounds`` rounds.
Prints the median images/s of each and its ratio to the silent run; never asserts a time.

    python benchmarks/logging_overhead.py [--rounds 5] [--epochs 2]

Each run trains ``train_cifar.py``'s demo model (cifar_igcv3_d_0.5, half width) on the
embedded digits set, one CPU context; images/s is the engine's own figure for an epoch
(``log.jsonl``'s ``img_per_s``: the images of the epoch over its training time).
"""
import json
import os
import tempfile

import numpy as np  # noqa: E402

from igcv3_gluon import cifar  # noqa: E402

from common import command_line  # noqa: E402 (puts the project on sys.path)

VARIANTS = {
    "silent": ["--log-interval", "0", "--log-seconds", "0", "--no-tensorboard"],
    "every 50 batches (default)": ["--log-interval", "50"],
    "every batch": ["--log-interval", "1"],
}


def images_per_second(folder, name, epochs, extra):
    out = os.path.join(folder, name.split()[0] + "-%d" % len(os.listdir(folder)))
    args = ["--model", "cifar_igcv3_d_0.5", "--multiplier", "0.5", "--batch-size", "32",
            "--epochs", str(epochs), "--lr", "0.05", "--workers", "0", "--no-progress",
            "--checkpoint-minutes", "0", "--out-dir", out] + extra
    assert cifar.main(args) == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    return float(np.mean([r["img_per_s"] for r in rows[1:] or rows]))   # epoch 1 warms up


def main():
    args = command_line(__doc__, rounds=5, epochs=2)
    rates = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for name, extra in VARIANTS.items():
                rates[name].append(images_per_second(folder, name, args.epochs, extra))
    base = float(np.median(rates["silent"]))
    print("| logging | images/s (median of %d) | ratio to silent |" % args.rounds)
    print("|---|---|---|")
    for name, values in rates.items():
        median = float(np.median(values))
        print("| %s | %.1f | %.3fx |" % (name, median, median / base))


if __name__ == "__main__":
    main()
