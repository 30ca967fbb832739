"""``make demo``: the main job on this machine, with nothing to download.

1. prints the size of every zoo model beside the paper's figures (Tables 1, 2, 3, 5);
2. trains CIFAR IGCV3-D 0.5x (at half width, so that it takes ~2 minutes on 2 CPU cores) on
   scikit-learn's bundled digits with ``train_cifar.py``, which writes the per-epoch log, the
   curves PNG, checkpoints and the exported best model into ``--out-dir``;
3. reloads the export with ``gluon.SymbolBlock.imports`` and with ONNX Runtime, classifies
   one held-out digit of each class, and draws them with their predicted labels into
   ``predictions.png``.

Re-running continues (or just re-reports) the run in ``--out-dir``.
"""
import argparse
import os
import sys

import mxnet as mx
import numpy as np

from . import complexity
from .cifar import build_parser as cifar_parser
from .cifar import run
from .data import channel_stats, load_digits32
from .deploy import export_onnx, load_symbolblock
from .errors import exit_on_usage_error
from .train.cli import validate_common_args
from .utils import save_figure

TRAIN_ARGS = ["--model", "cifar_igcv3_d_0.5", "--multiplier", "0.5", "--epochs", "8",
              "--batch-size", "32", "--lr", "0.05", "--lr-mode", "cosine",
              "--warmup-epochs", "1"]


def _draw(images, truth, predicted, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(images), figsize=(1.3 * len(images), 1.9))
    for ax, img, t, p in zip(axes, images, truth, predicted):
        ax.imshow(img[..., 0], cmap="gray_r")
        ax.set_title("%d%s" % (p, "" if p == t else " (%d)" % t),
                     color="green" if p == t else "red")
        ax.axis("off")
    fig.suptitle("IGCV3-D on held-out digits: predicted (true)")
    fig.tight_layout()
    save_figure(fig, path)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", default="runs/demo", help="where the run goes")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX check")
    return parser


@exit_on_usage_error
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    print("## Size of every zoo model (python -m igcv3_gluon.complexity)\n")
    print(complexity.markdown(complexity.table()))
    print("\n## Training on the embedded digits set\n  python train_cifar.py %s --out-dir %s\n"
          % (" ".join(TRAIN_ARGS), args.out_dir), flush=True)

    train_args = cifar_parser().parse_args(TRAIN_ARGS + ["--out-dir", args.out_dir])
    train_args.dataset = "digits"
    summary = run(validate_common_args(train_args))

    prefix = summary["export"]["symbol"][:-len("-symbol.json")]
    train_x, _, test_x, test_y = load_digits32()
    mean, std = channel_stats(train_x)
    pick = np.array([np.flatnonzero(test_y == digit)[0] for digit in range(10)])
    batch = ((test_x[pick].astype(np.float32) - mean) / std).transpose(0, 3, 1, 2)
    net = load_symbolblock(prefix)
    scores = net(mx.nd.array(batch)).asnumpy()
    predicted = scores.argmax(1)
    print("\n## The exported model, reloaded (%s)" % prefix)
    print("true:      %s\npredicted: %s" % (" ".join(map(str, test_y[pick])),
                                           " ".join(map(str, predicted))))
    if not args.no_onnx:
        import onnxruntime as ort
        path = export_onnx(prefix, prefix + ".onnx", batch.shape)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        onnx_scores = sess.run(None, {"data": batch})[0]
        print("ONNX Runtime (%s): same predictions: %s, max |diff| %.1e"
              % (path, bool((onnx_scores.argmax(1) == predicted).all()),
                 np.abs(onnx_scores - scores).max()))
    picture = os.path.join(args.out_dir, "predictions.png")
    _draw(test_x[pick], test_y[pick], predicted, picture)
    print("\ntest accuracy %.2f%%; curves: %s; predictions drawn in %s"
          % (100 * summary["final_val_acc"], summary["curves"], picture))
    return 0


if __name__ == "__main__":
    sys.exit(main())
