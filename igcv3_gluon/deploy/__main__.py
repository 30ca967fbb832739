"""Deployment command line.

    python -m igcv3_gluon.deploy export --params runs/demo --out exp/digits    # a run folder
    python -m igcv3_gluon.deploy export igcv3_d_1.0 --params weights.params --out exp/igcv3_d
    python -m igcv3_gluon.deploy optimize exp/digits exp/digits-opt
    python -m igcv3_gluon.deploy onnx exp/digits-opt exp/digits-opt.onnx
    python -m igcv3_gluon.deploy quantize exp/digits-opt exp/digits-int8 \\
        --digits-config runs/demo/config.json
    python -m igcv3_gluon.deploy bench exp/digits exp/digits-opt --batch 1,16 --onnx

Exports carry ``PREFIX-meta.json`` (input shape, model, classes, normalisation); every
sub-command takes its input shape from it unless ``--input-shape`` is given. Every
sub-command checks its files and the input shape first and ends with one line
``error: ...`` (exit 2) when something does not fit.
"""
import argparse
import os
import sys
import warnings

from ..cli import HelpFormatter, add_model_args, model_kwargs, parse_ints, parse_shape
from ..errors import UsageError, exit_on_usage_error


def _input_shape(args, prefix, batch=1):
    """``--input-shape`` when given, else the export's ``-meta.json`` shape with ``batch``."""
    from .export import artifact_paths, read_meta
    if args.input_shape:
        return parse_shape(args.input_shape)
    shape = read_meta(prefix).get("input_shape")
    if shape:
        return (batch,) + tuple(shape)
    if os.path.isfile(artifact_paths(prefix)[0]):      # (a missing export is said next)
        sys.stderr.write("note: %s has no -meta.json: assuming %d,3,224,224 (give "
                         "--input-shape)\n" % (prefix, batch))
    return (batch, 3, 224, 224)


def _check_export(prefix, shape):
    """The export exists, its files are MXNet's, and it accepts ``shape``; returns the
    symbol."""
    import mxnet as mx

    from .export import WeightsError, artifact_paths, read_params
    for path in artifact_paths(prefix):
        if not os.path.isfile(path):
            raise UsageError("%s not found: give the prefix of an export (PREFIX-symbol.json "
                             "+ PREFIX-0000.params), e.g. from `python -m igcv3_gluon.deploy "
                             "export`" % path)
    try:
        sym = mx.sym.load(artifact_paths(prefix)[0])
    except mx.MXNetError:
        raise UsageError("%s is not an MXNet symbol file" % artifact_paths(prefix)[0])
    try:
        read_params(artifact_paths(prefix)[1])
    except WeightsError as err:
        raise UsageError(str(err))
    import contextlib
    import io
    try:
        with contextlib.redirect_stdout(io.StringIO()):     # MXNet prints its arguments
            out_shapes = sym.infer_shape(data=shape)[1]
    except mx.MXNetError as err:
        raise UsageError("input shape %s does not fit %s (%s)" % (
            ",".join(map(str, shape)), prefix,
            str(err).strip().splitlines()[-1][:160] if str(err).strip() else "shape error"))
    if out_shapes is None or any(s is None or 0 in s for s in out_shapes):
        raise UsageError("input shape %s does not fit %s" % (",".join(map(str, shape)), prefix))
    return sym


def _max_diff(prefix_a, prefix_b, shape):
    import mxnet as mx
    import numpy as np

    from .export import load_symbolblock
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, shape))
    a = load_symbolblock(prefix_a)(x).asnumpy()
    b = load_symbolblock(prefix_b)(x).asnumpy()
    return float(np.abs(a - b).max())


def cmd_export(args):
    """A zoo model with trained weights (a run folder, whose config says which model, width
    and classes, or a .params with the model named) -> symbol/params/meta."""
    from ..models import get_model, list_models, model_info
    from ..runs import resolve_weights
    from . import WeightsError, export, export_detector, load_weights
    config = None
    if args.params:
        args.params_file, config = resolve_weights(args.params, "--params")
    config = config or {}
    for key in ("multiplier", "depths", "groups", "relu", "p2"):
        if getattr(args, key, None) in (None, False) and config.get(key) not in (None, False):
            setattr(args, key, config[key])
    args.model = args.model or config.get("model")
    if not args.model:
        raise UsageError("name the model (python -m igcv3_gluon.deploy export MODEL ...) or "
                         "give --params a training run's folder")
    if args.model not in list_models():
        raise UsageError("unknown model %r; known: %s" % (args.model, ", ".join(list_models())))
    info = model_info(args.model)
    classes = args.classes or config.get("classes") or info.classes
    meta = dict(model=args.model, classes=classes, mean=config.get("mean"),
                std=config.get("std"), **model_kwargs(args, args.model))
    try:
        if info.task == "detection":
            size = config.get("data_shape") or info.input_shape[2]
            net = get_model(args.model, classes=classes, base_size=size,
                            anchors=config.get("anchors") or "authors",
                            **model_kwargs(args, args.model))
        else:
            net = get_model(args.model, classes=classes, **model_kwargs(args, args.model))
    except ValueError as err:
        raise UsageError(str(err))
    if args.params:
        try:
            load_weights(net, args.params_file)
        except WeightsError as err:
            raise UsageError(str(err))
    else:
        import mxnet as mx
        net.initialize(mx.init.Xavier())
        print("note: no --params: exporting random weights")
    if info.task == "detection":
        sym_file, params_file = export_detector(net, args.out, size, meta=meta)
    else:
        shape = parse_shape(args.input_shape) if args.input_shape else info.input_shape
        sym_file, params_file = export(net, args.out, shape, meta=meta)
    print("exported %s + %s (+ -meta.json)" % (sym_file, params_file))


def cmd_optimize(args):
    from .optimize import optimize_files
    args.input_shape = _input_shape(args, args.prefix)
    _check_export(args.prefix, args.input_shape)
    print("optimizing %s ..." % args.prefix, flush=True)
    (sym_file, params_file), report = optimize_files(
        args.prefix, args.out_prefix, fold_shuffles=not args.keep_shuffles,
        grouped=args.grouped)
    diff = _max_diff(args.prefix, args.out_prefix, args.input_shape)
    print("folded %(batchnorms_folded)d BatchNorms and %(shuffles_folded)d shuffles; "
          "%(batchnorms_left)d BatchNorms and %(shuffles_left)d shuffles left" % report)
    print("wrote %s + %s; max |diff| to the original on a random batch: %.2e"
          % (sym_file, params_file, diff))
    if diff > 1e-3:
        raise UsageError("the optimised graph differs from the original by %.2e" % diff, 1)


def cmd_onnx(args):
    import numpy as np

    from .export import export_onnx, load_symbolblock
    args.input_shape = _input_shape(args, args.prefix)
    _check_export(args.prefix, args.input_shape)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    print("converting %s to ONNX (input %s) ..." % (
        args.prefix, "x".join(map(str, args.input_shape))), flush=True)
    path = export_onnx(args.prefix, args.output, args.input_shape)
    import mxnet as mx
    import onnxruntime as ort
    x = np.random.RandomState(0).uniform(-1, 1, args.input_shape).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = load_symbolblock(args.prefix)(mx.nd.array(x)).asnumpy()
    print("wrote %s; ONNX Runtime vs MXNet max |diff|: %.2e" % (path, np.abs(got - want).max()))


def _digits_batches(config_path, shape):
    """Digits train images (calibration) and test images + labels, preprocessed with the
    mean/std of the training run's ``config.json``."""
    import json

    import mxnet as mx
    import numpy as np

    from ..data import load_dataset
    if not os.path.isfile(config_path):
        raise UsageError("--digits-config %s does not exist (the config.json of a digits run, "
                         "e.g. runs/demo/config.json)" % config_path)
    config = json.load(open(config_path))
    if config.get("dataset") != "digits" or "mean" not in config:
        raise UsageError("%s is not the config of a digits run" % config_path)
    train_x, _, test_x, test_y, _ = load_dataset("digits")
    mean, std = np.array(config["mean"], np.float32), np.array(config["std"], np.float32)

    def prep(x):
        return mx.nd.array(((x.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2))
    if shape[1:] != (3, 32, 32):
        raise UsageError("the digits set is 3x32x32; --input-shape %s does not fit"
                         % ",".join(map(str, shape)))
    batch = shape[0]
    calib = [prep(train_x[i:i + batch]) for i in range(0, len(train_x) - batch + 1, batch)]
    return calib, prep(test_x), test_y


def cmd_quantize(args):
    import mxnet as mx
    import numpy as np

    from .export import load_symbolblock
    from .quantize import quantize
    args.input_shape = _input_shape(args, args.prefix, batch=32)
    _check_export(args.prefix, args.input_shape)
    test_x = test_y = None
    if args.digits_config:
        calib, test_x, test_y = _digits_batches(args.digits_config, args.input_shape)
    elif args.calib_npy:
        if not os.path.isfile(args.calib_npy):
            raise UsageError("--calib-npy %s does not exist" % args.calib_npy)
        data = np.load(args.calib_npy).astype(np.float32)
        if data.ndim != 4 or data.shape[1:] != tuple(args.input_shape[1:]):
            raise UsageError("--calib-npy holds shape %s; expected (N,%s)" % (
                data.shape, ",".join(map(str, args.input_shape[1:]))))
        b = args.input_shape[0]
        calib = [mx.nd.array(data[i:i + b]) for i in range(0, len(data) - b + 1, b)]
    else:
        raise UsageError("give calibration data: --digits-config RUN/config.json or "
                         "--calib-npy FILE.npy (N,C,H,W float32, preprocessed)")
    calib = calib[:args.calib_batches]
    if not calib:
        raise UsageError("no calibration batch: fewer images than --input-shape's batch")
    print("calibrating on %d images (%s, preset %s) ..." % (
        sum(c.shape[0] for c in calib), args.calib_mode, args.preset), flush=True)
    (sym_file, params_file), qnet = quantize(args.prefix, args.out_prefix, calib, args.preset,
                                             args.calib_mode)
    print("wrote %s + %s" % (sym_file, params_file))
    if test_x is not None:
        fp32 = load_symbolblock(args.prefix)
        acc = {name: float((net(test_x).asnumpy().argmax(1) == test_y).mean())
               for name, net in (("fp32", fp32), ("int8", qnet))}
        print("digits test top-1: fp32 %.2f%%, int8 %.2f%% (change %+.2f points)" % (
            100 * acc["fp32"], 100 * acc["int8"], 100 * (acc["int8"] - acc["fp32"])))


def cmd_bench(args):
    import mxnet as mx

    from .bench import interleaved_medians, onnx_inference, ratio_table
    from .export import export_onnx, load_symbolblock
    batches = parse_ints(args.batch, "--batch")
    args.input_shape = _input_shape(args, args.prefixes[0])
    for prefix in args.prefixes:
        _check_export(prefix, (1,) + tuple(args.input_shape[1:]))
    for batch in batches:
        shape = (batch,) + tuple(args.input_shape[1:])
        x = mx.nd.random.uniform(-1, 1, shape)
        fns = {}
        for prefix in args.prefixes:
            net = load_symbolblock(prefix)
            if args.fuse:
                net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
            else:
                net.hybridize(static_alloc=True, static_shape=True)
            fns["mxnet " + os.path.basename(prefix)] = (lambda n=net: n(x).wait_to_read())
            if args.onnx:
                path = export_onnx(prefix, "%s-b%d.onnx" % (prefix, batch), shape)
                fns["onnxruntime " + os.path.basename(prefix)] = onnx_inference(
                    path, batch, shape[2])
        print("\nbatch %d (%s), median of %d interleaved rounds:" % (
            batch, "x".join(map(str, shape[1:])), args.rounds), flush=True)
        medians = interleaved_medians(fns, rounds=args.rounds)
        print(ratio_table(medians, next(iter(fns))))


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_shape(p):
        p.add_argument("--input-shape", default=None,
                       help="N,C,H,W (default: the export's -meta.json, else 1,3,224,224)")
        return p

    p = with_shape(sub.add_parser("export", help="zoo model (+ trained .params) -> symbol/params",
                                  formatter_class=HelpFormatter))
    p.add_argument("model", nargs="?", help="zoo name (default: the --params run's)")
    p.add_argument("--params", help="trained weights: a training run's folder (it names the "
                                    "model, width and classes) or a .params file")
    p.add_argument("--classes", type=int, default=None,
                   help="default: the run's, else the model's (1000, or 10 for CIFAR)")
    add_model_args(p, "architecture (as in training)")
    p.add_argument("--out", required=True, help="output prefix")
    p.set_defaults(run=cmd_export)

    p = with_shape(sub.add_parser("optimize", help="fold BatchNorms and shuffles"))
    p.add_argument("prefix")
    p.add_argument("out_prefix")
    p.add_argument("--keep-shuffles", action="store_true",
                   help="fold BatchNorms only (group convs and shuffles stay)")
    p.add_argument("--grouped", action="store_true",
                   help="fold IGCV3 shuffles keeping the 1x1 convs grouped (G1*G2-group "
                        "projection + partial sums) instead of one dense 1x1 conv")
    p.set_defaults(run=cmd_optimize)

    p = with_shape(sub.add_parser("onnx", help="export -> ONNX (checked in ONNX Runtime)"))
    p.add_argument("prefix")
    p.add_argument("output")
    p.set_defaults(run=cmd_onnx)

    p = with_shape(sub.add_parser("quantize", help="INT8 post-training quantization"))
    p.add_argument("prefix")
    p.add_argument("out_prefix")
    p.add_argument("--digits-config", help="config.json of a digits run: calibrate on the "
                                           "digits training images, report test accuracy")
    p.add_argument("--calib-npy", help="calibration images, (N,C,H,W) float32 .npy")
    p.add_argument("--calib-batches", type=int, default=20)
    p.add_argument("--calib-mode", default="naive", choices=["naive", "entropy"])
    p.add_argument("--preset", default="accurate", choices=["accurate", "fast"])
    p.set_defaults(run=cmd_quantize)

    p = with_shape(sub.add_parser("bench", help="latency of exports, side by side"))
    p.add_argument("prefixes", nargs="+")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--onnx", action="store_true", help="also time them in ONNX Runtime")
    p.add_argument("--fuse", action="store_true",
                   help="MXNet: apply oneDNN operator fusion (optimize_for('MKLDNN'))")
    p.set_defaults(run=cmd_bench)

    return parser


@exit_on_usage_error
def main(argv=None):
    warnings.simplefilter("ignore", UserWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
