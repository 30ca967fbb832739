"""Published IGCV3 weights into our networks, checked bit for bit against the source.

    python -m igcv3_gluon.convert authors models/igcv3 igcv3_d_1.0.params
    python -m igcv3_gluon.convert imgclsmob igcv3_wd2-*.params igcv3_d_0.5.params \
        --model igcv3_d_0.5

* ``authors``: the authors' MXNet checkpoint of IGCV3-D 1.0 (their repository's
  ``models/igcv3-symbol.json`` + ``igcv3-0000.params``; SRC is the prefix).
* ``imgclsmob``: osmr/imgclsmob's Gluon weights (the ``gluoncv2`` package defines the
  networks): ``igcv3_w1`` -> ``igcv3_d_1.0``, ``igcv3_w3d4`` -> ``igcv3_d_0.75``,
  ``igcv3_wd2`` -> ``igcv3_d_0.5``, ``igcv3_wd4`` -> ``igcv3_d_0.25``.
* ``gluoncv``: GluonCV's ``mobilenetv2_1.0`` -> ``mobilenetv2_1.0`` (the baseline).

``get_model(name, pretrained=True)`` downloads, converts and caches the published files itself
(``pretrained_weights``; ``models/hub.py`` knows where each publisher keeps them).

Matching is by structure, not by names or luck: both graphs are read as their sequence of
layers in topological order (convolutions with kernel, filters, groups, stride and padding;
BatchNorms; ReLU6; channel shuffles with their groups; residual additions; pooling; the
FC layer); the sequences must agree layer for layer, and then every convolution, BatchNorm
(gamma, beta, running mean and variance) and FC tensor is copied to its counterpart, shapes
checked. The converted network is then run beside the source on a random batch: the logits
must agree (max |diff| <= 1e-4 relative), or nothing is written. The result is our Gluon
``.params`` (``save_parameters``), which ``train_imagenet.py --eval-only --params`` evaluates
and ``train_ssdlite.py --backbone-params`` starts a detector from.

The authors' *wide* detection backbone (``detection/model/igcv3_wide``) is a different
network from the zoo's IGCV3-W (docs/imagenet.md, "Published weights"), so it does not convert.
"""
import argparse
import os
import sys
import warnings

from .errors import OutputConflict, UsageError, exit_on_usage_error
from .models.pretrained import (
    CONVERTERS,
    GLUONCV_NAMES,
    SOURCES,
    convert_authors,
    weights_description,
)
from .models.weights import weights_meta_path
from .utils import atomic_write, atomic_write_json, refuse_overwrite

__all__ = ["build_parser", "main"]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", choices=SOURCES, help="whose weights")
    parser.add_argument("src", help="authors: the checkpoint prefix; imgclsmob, gluoncv: the "
                                    ".params")
    parser.add_argument("out", help="our .params to write")
    parser.add_argument("--model", default=None,
                        help="our zoo model to convert into (default: igcv3_d_1.0; gluoncv: "
                             "mobilenetv2_1.0, the one network GluonCV publishes of the "
                             "paper's)")
    parser.add_argument("--epoch", type=int, default=0, help="authors: the checkpoint epoch")
    parser.add_argument("--source-model", default=None,
                        help="imgclsmob, gluoncv: their model name (default: --model's "
                             "counterpart)")
    return parser


@exit_on_usage_error
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    if args.model is None:
        args.model = "mobilenetv2_1.0" if args.source == "gluoncv" else "igcv3_d_1.0"
    if args.source == "gluoncv" and not args.source_model and args.model not in GLUONCV_NAMES:
        raise UsageError("--model %s has no GluonCV counterpart (GluonCV publishes no IGCV3): "
                         "give --model %s, or name their model with --source-model"
                         % (args.model, " or ".join(sorted(GLUONCV_NAMES))))
    if args.epoch < 0:
        raise UsageError("--epoch must be >= 0 (the NNNN of PREFIX-NNNN.params), got %d"
                         % args.epoch)
    sources = (["%s-symbol.json" % args.src, "%s-%04d.params" % (args.src, args.epoch)]
               if args.source == "authors" else [args.src, weights_meta_path(args.src)])
    if not args.out.strip() or args.out.endswith((os.sep, "/")):
        raise OutputConflict("OUT %r names a folder: give the path of the .params file to write "
                             "(e.g. %s)" % (args.out, os.path.join(args.out or ".",
                                                                    args.model + ".params")))
    refuse_overwrite([args.out, weights_meta_path(args.out)],
                     [(path, "the %s weights being converted" % args.source)
                      for path in sources])
    if args.source == "authors":
        net, counts, (diff, scale) = convert_authors(args.src, args.model, args.epoch)
    else:
        net, counts, (diff, scale) = CONVERTERS[args.source](args.src, args.model,
                                                             args.source_model)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, net.save_parameters)
    meta = weights_description(args.source, args.model, net.output.weight.shape[0], args.src)
    atomic_write_json(weights_meta_path(args.out), meta, sort_keys=True)
    print("%s: %d convolutions, %d BatchNorms, %d FC from %s; logits equal to the source's "
          "within %.1e (scale %.1f)" % (args.out, counts["conv"], counts["bn"], counts["fc"],
                                        args.src, diff, scale))
    print("%s: input (pixel - %s) / %s, evaluated at %d after a resize to %d"
          % (weights_meta_path(args.out), ",".join("%g" % v for v in meta["mean"]),
             ",".join("%g" % v for v in meta["std"]), meta["input_size"],
             round(meta["input_size"] / meta["crop_ratio"])))
    print("evaluate: python train_imagenet.py --eval-only --params %s --rec-val VAL.rec"
          % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
