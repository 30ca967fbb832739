#!/usr/bin/env python
"""What watching a run costs: training images/s of the same digits run with the progress log
(a line, a batch row and TensorBoard scalars every ``--log-interval`` batches, the default
50, and every batch) and without any (``--log-interval 0 --log-seconds 0
--no-tensorboard``), in one process, the variants interleaved over ``--rounds`` rounds.
Prints the median images/s of each and its ratio to the silent run; never asserts a time.

On 2 shared cores the runs' own spread (min-max over the rounds, printed) is several per
cent, wider than the cost of the log: so the script also times the logging path alone
(``RunLogger.info`` + ``batch_row`` + ``Scalars.batch``, what ``Loop.report`` does for one
line, on the same file system), and prints it as a share of one training batch of the silent
run: the overhead of a line every batch, with no noise of the training's in it. Neither
reads a device: the loss the line shows is the one the loop already copied to the host.

    python benchmarks/logging_overhead.py [--rounds 5] [--epochs 2] [--lines 2000]

Each run trains ``train_cifar.py``'s demo model (cifar_igcv3_d_0.5, half width) on the
embedded digits set, one CPU context; images/s is the engine's own figure for an epoch
(``log.jsonl``'s ``img_per_s``: the images of the epoch over its training time).
"""
import contextlib
import io
import json
import os
import tempfile
import time

import numpy as np  # noqa: E402

from igcv3_gluon import cifar  # noqa: E402
from igcv3_gluon.train.progress import RunLogger  # noqa: E402
from igcv3_gluon.train.tensorboard import Scalars  # noqa: E402

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


def seconds_per_line(folder, lines):
    """The time of one progress line (text to stdout and log.txt, a batch row, TensorBoard
    scalars), the median of ``lines`` lines written as the loop writes them."""
    out = os.path.join(folder, "lines")
    os.makedirs(out)
    logger, scalars = RunLogger(out), Scalars(out)
    row = dict(train_loss=1.2345, train_acc=0.5, lr=0.05, img_per_s=60.0, data_wait=0.01)
    times = []
    with contextlib.redirect_stdout(io.StringIO()):
        logger.console.setStream(io.StringIO())
        for step in range(lines):
            tic = time.perf_counter()
            logger.info("train 1/2  batch %d/44  loss %.4f  acc %.4f  lr %.4g  %.0f img/s  "
                        "data %.0f%%  train left 00:10, run 00:20" % (
                            step, row["train_loss"], row["train_acc"], row["lr"],
                            row["img_per_s"], 100 * row["data_wait"]))
            logger.batch_row(dict(epoch=1, batch=step, step=step, time=time.time(), **row))
            scalars.batch(step, row)
            times.append(time.perf_counter() - tic)
    logger.close()
    scalars.close()
    return float(np.median(times))


def main():
    args = command_line(__doc__, rounds=5, epochs=2, lines=2000)
    rates = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for name, extra in VARIANTS.items():
                rates[name].append(images_per_second(folder, name, args.epochs, extra))
        line = seconds_per_line(folder, args.lines)
    base = float(np.median(rates["silent"]))
    print("| logging | images/s (median of %d) | min - max | ratio to silent |" % args.rounds)
    print("|---|---|---|---|")
    for name, values in rates.items():
        median = float(np.median(values))
        print("| %s | %.1f | %.1f - %.1f | %.3fx |" % (name, median, min(values), max(values),
                                                       median / base))
    batch = 32 / base
    print("\none progress line (log.txt + stdout + batch row + TensorBoard): %.3f ms; one "
          "training batch of 32 (silent run): %.1f ms; a line every batch costs %.3f%% of the "
          "training time, one every 50 batches %.4f%%" % (
              1e3 * line, 1e3 * batch, 100 * line / batch, 100 * line / batch / 50))


if __name__ == "__main__":
    main()
