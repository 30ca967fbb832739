"""``python -m igcv3_gluon.im2rec``: pack an image-folder tree (``ROOT/<class>/*.jpg``) into
MXNet RecordIO for ``train_imagenet.py``, as MXNet's ``tools/im2rec.py`` does (the packing
itself is ``data/im2rec.py``).

    python -m igcv3_gluon.im2rec ~/data/imagenet/train ~/data/rec/train --resize 480
    python -m igcv3_gluon.im2rec ~/data/imagenet/val ~/data/rec/val --resize 480 \\
        --classes-from ~/data/rec/train.classes.txt

Writes ``PREFIX.lst`` (index, label, path), ``PREFIX.rec``, ``PREFIX.idx`` and
``PREFIX.classes.txt`` (one class folder name per line, line number = label); a damaged image
is named and skipped (``--on-damaged stop`` stops instead); Ctrl-C leaves nothing behind.
"""
import argparse
import os
import sys

from .data.im2rec import OUTPUT_SUFFIXES, RESIZE_MODES, pack_folder
from .data.images import missing
from .errors import UsageError, exit_on_usage_error
from .utils import refuse_overwrite

__all__ = ["build_parser", "main"]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.im2rec",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="image folder: ROOT/<class>/*.jpg")
    parser.add_argument("prefix", help="output prefix: writes PREFIX.rec, .idx, .lst, "
                                       ".classes.txt")
    parser.add_argument("--resize", type=int, default=0,
                        help="set the short side to this many pixels, enlarging smaller "
                             "images as MXNet's im2rec does (0: keep); 480 for training sets "
                             "as in the authors' pipeline")
    parser.add_argument("--resize-mode", default="both", choices=RESIZE_MODES,
                        help="both: MXNet's im2rec (every image gets the short side "
                             "--resize); shrink: only larger images are resized")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--num-thread", type=int, default=4, help="encoding threads")
    parser.add_argument("--no-shuffle", action="store_true", help="keep folder order")
    parser.add_argument("--classes-from", default=None,
                        help="a .classes.txt to take labels from (pack val with train's labels)")
    parser.add_argument("--on-damaged", default="skip", choices=("skip", "stop"),
                        help="an empty, cut-off or undecodable image: skip it (named) or stop")
    parser.add_argument("--no-progress", action="store_true")
    return parser


@exit_on_usage_error
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100 or args.resize < 0 or args.num_thread < 1:
        raise UsageError("--quality must be in 1..100, --resize >= 0, --num-thread >= 1")
    classes = None
    if args.classes_from:
        problem = missing(args.classes_from, "--classes-from")
        if problem:
            raise UsageError(problem)
        try:
            with open(args.classes_from, encoding="utf-8") as fh:
                classes = [line.strip() for line in fh if line.strip()]
        except UnicodeDecodeError:
            raise UsageError("--classes-from %s is not a text file: give the .classes.txt of "
                             "the training set" % args.classes_from) from None
        if not classes:
            raise UsageError("--classes-from %s is empty: give the .classes.txt of the "
                             "training set (one class folder name per line)"
                             % args.classes_from)
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise UsageError("--classes-from %s names %s more than once: one line per class"
                             % (args.classes_from, ", ".join(repeated[:5])))
    if args.classes_from:
        refuse_overwrite([args.prefix + suffix for suffix in OUTPUT_SUFFIXES],
                         [(args.classes_from, "the --classes-from list")])
    n, classes, skipped = pack_folder(args.root, args.prefix, args.resize, args.quality,
                                      args.num_thread, not args.no_shuffle, classes=classes,
                                      progress=not args.no_progress,
                                      resize_mode=args.resize_mode,
                                      on_damaged=args.on_damaged)
    for rel, reason in skipped[:10]:
        sys.stderr.write("skipped (%s): %s\n" % (reason, os.path.join(args.root, rel)))
    if len(skipped) > 10:
        sys.stderr.write("skipped %d more damaged image(s)\n" % (len(skipped) - 10))
    print("%s.rec: %d images, %d classes%s" % (args.prefix, n, len(classes),
                                                ", %d skipped" % len(skipped) if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
