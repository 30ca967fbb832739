#!/usr/bin/env python
"""Does an ImageNet-style pretrained backbone help SSDLite2? The chain of Table 4
in miniature, on generated data, with the project's own scripts:

1. a classification set of the detection set's three object kinds (``data.synthetic``),
   packed with im2rec and learned by ``train_imagenet.py`` (IGCV3-W at width 0.5, the
   authors' recipe without hue jitter: the classes differ by colour);
2. ``train_ssdlite.py`` on a generated COCO-format set, once from that backbone
   (``--backbone-params RUN_DIR``) and once from random weights, same recipe and seed;
3. the COCO AP50 of both on held-out images, every epoch.

    python benchmarks/backbone_pretraining.py [--cls-epochs 12] [--det-epochs 8] [--det-lr 0.2]

The detector's default loss is the authors' normalisation, 1/4 of GluonCV's on the same batch
(benchmarks/ssd_loss_scale.py): ``--det-lr 0.2`` takes the step that lr 0.05 took with
GluonCV's loss.

Prints one table; measures, never asserts.
"""
import json
import os
import subprocess
import sys
import tempfile

from igcv3_gluon.data.im2rec import pack_folder  # noqa: E402
from igcv3_gluon.data.synthetic import shape_folders, shapes_coco  # noqa: E402

from common import ROOT, command_line  # noqa: E402 (puts the project on sys.path)


def script(name, *args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, name)] + list(args), cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return proc


def ap50(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as fh:
        return [json.loads(line).get("val_AP50") for line in fh if line.strip()]


def main():
    args = command_line(__doc__, cls_epochs=12, det_epochs=8, train_images=320,
                            det_lr=(0.2, "detector lr (authors' loss normalisation)"))
    with tempfile.TemporaryDirectory() as tmp:
        train = shape_folders(os.path.join(tmp, "cls", "train"), 150, seed=0)
        val = shape_folders(os.path.join(tmp, "cls", "val"), 30, seed=1)
        _, classes, _ = pack_folder(train, os.path.join(tmp, "rec", "train"), progress=False)
        pack_folder(val, os.path.join(tmp, "rec", "val"), classes=classes, shuffle=False,
                    progress=False)
        backbone = os.path.join(tmp, "backbone")
        proc = script("train_imagenet.py", "--model", "igcv3_w_1.0", "--multiplier", "0.5",
                      "--input-size", "64", "--batch-size", "32", "--epochs",
                      str(args.cls_epochs), "--retrain-epochs", "0", "--lr", "0.1",
                      "--lr-mode", "cosine", "--warmup-epochs", "1", "--hsl", "0,0,0",
                      "--rec-train", os.path.join(tmp, "rec", "train.rec"),
                      "--rec-val", os.path.join(tmp, "rec", "val.rec"), "--data-nthreads", "2",
                      "--no-progress", "--out-dir", backbone)
        cls_acc = [json.loads(line)["val_acc"]
                   for line in open(os.path.join(backbone, "log.jsonl"))]
        det_train = shapes_coco(tmp, args.train_images, seed=0, name="train")
        det_val = shapes_coco(tmp, 24, seed=1, name="val")
        common = ["--train-ann", det_train[0], "--train-images", det_train[1],
                  "--val-ann", det_val[0], "--val-images", det_val[1], "--multiplier", "0.5",
                  "--data-shape", "128", "--augment", "light", "--epochs", str(args.det_epochs),
                  "--batch-size", "8", "--lr", str(args.det_lr), "--lr-mode", "cosine",
                  "--warmup-epochs", "1", "--workers", "0", "--no-progress"]
        runs = {}
        for label, extra, name in (
                ("from the pretrained backbone", ["--backbone-params", backbone], "det-pretrained"),
                ("from random weights", [], "det-random")):
            out = os.path.join(tmp, name)
            proc = script("train_ssdlite.py", *common, *extra, "--out-dir", out)
            runs[label] = ap50(out)
            loaded = [line for line in proc.stderr.splitlines() if line.startswith("backbone:")]
            if loaded:
                print(loaded[0].split(" from ")[0].replace(tmp, "TMP"))
        print("backbone classifier (IGCV3-W 0.5, %d epochs): val top-1 %.3f"
              % (args.cls_epochs, cls_acc[-1]))
        print("\n| SSDLite2 (IGCV3-W 0.5, 128x128, %d training images) | %s |"
              % (args.train_images, " | ".join("epoch %d" % (e + 1)
                                              for e in range(args.det_epochs))))
        print("|---|" + "---|" * args.det_epochs)
        for label, values in runs.items():
            print("| AP50 %s | %s |" % (label, " | ".join("%.3f" % v for v in values)))


if __name__ == "__main__":
    main()
