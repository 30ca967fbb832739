"""The deployment commands (``cmd_*``: one per sub-command of ``python -m igcv3_gluon.deploy``;
the flags are declared in ``deploy/cli.py``).

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
import contextlib
import glob
import importlib.util
import io
import json
import math
import os
import sys
import tempfile

import mxnet as mx
import numpy as np

from ..cli import parse_ints, parse_shape
from ..data.digits import digits_batches
from ..errors import UsageError, WeightsError, naming
from ..models import get_model, list_models, model_info
from ..models.pretrained import resolve_weights
from ..models.spec import ARCH_KEYS, INPUT_KEYS, ModelSpec
from ..models.weights import run_folder_of, weights_meta_path
from ..utils import refuse_overwrite
from .bench import (
    gluoncv_mobilenetv2,
    interleaved_medians,
    onnx_inference,
    openvino_inference,
    ratio_table,
)
from .cpu import has_vnni, isa_label
from .export import (
    artifact_paths,
    export,
    export_detector,
    export_files,
    export_onnx,
    load_symbolblock,
    load_weights,
    meta_input_shape,
    read_meta,
    read_params,
)
from .gate import check_gate_data, check_images, normalisation_of
from .int8 import quantize_ir
from .openvino import PRECISIONS, to_openvino
from .optimize import optimize_files
from .quantize import quantize_gated


def _input_shape(args, prefix, batch=1):
    """``--input-shape`` when given, else the export's ``-meta.json`` shape with ``batch``."""
    if args.input_shape:
        return parse_shape(args.input_shape)
    try:
        shape = meta_input_shape(prefix, batch)
    except WeightsError as err:
        raise UsageError("%s, or give --input-shape N,C,H,W" % err) from None
    if shape:
        return shape
    if os.path.isfile(prefix + "-meta.json"):
        raise UsageError("%s-meta.json is not a readable description (cut short, not JSON "
                         "or not an object): give --input-shape N,C,H,W or export again"
                         % prefix)
    if os.path.isfile(artifact_paths(prefix)[0]):      # (a missing export is said next)
        sys.stderr.write("note: %s has no -meta.json: assuming %d,3,224,224 (give "
                         "--input-shape)\n" % (prefix, batch))
    return (batch, 3, 224, 224)


def run_export(path):
    """``path`` itself when it is an export prefix; for a training run's folder, the prefix
    of its best-model export (``RUN/export/<name>``, named in the run's ``summary.json``)."""
    if not os.path.isdir(path):
        return path
    summary = os.path.join(path, "summary.json")
    best = [p[:-len("-symbol.json")] for p in glob.glob(os.path.join(path, "export",
                                                                      "*-symbol.json"))
            if not p.endswith("-final-symbol.json")]
    if not os.path.isfile(summary) and len(best) == 1:     # summary.json lost, export whole
        sys.stderr.write("note: %s is a run: using its best model's export %s\n"
                         % (path, best[0]))
        return best[0]
    if not os.path.isfile(summary):
        if os.path.isfile(os.path.join(path, "config.json")):
            raise UsageError("%s is a run that has not finished (no summary.json, no export): "
                             "finish it, or `python -m igcv3_gluon.deploy export --params %s "
                             "--out PREFIX` and give PREFIX" % (path, path))
        raise UsageError("%s is a folder, not an export: give PREFIX of PREFIX-symbol.json, "
                         "or a training run's folder" % path)
    try:
        symbol = json.load(open(summary))["export"]["symbol"]
    except (ValueError, KeyError, TypeError):
        raise UsageError("%s names no export: give the export's prefix" % summary)
    prefix = os.path.join(path, "export", os.path.basename(symbol)[:-len("-symbol.json")])
    sys.stderr.write("note: %s is a run: using its best model's export %s\n" % (path, prefix))
    return prefix


def _refuse_detector(sym, prefix, command):
    """``optimize``, ``onnx``, ``quantize`` and ``bench`` take classifiers: a detector (its
    graph ends in MXNet's box NMS, which they do not carry over) is refused before anything
    is written, naming the command that deploys detectors."""
    if "_contrib_box_nms" in sym.tojson():
        raise UsageError("%s takes classifiers: %s is a detector; deploy it with `python -m "
                         "igcv3_gluon.deploy openvino %s OUT` (NMS outside the graph, checked "
                         "against MXNet)" % (command, prefix, prefix))
    return sym


def _refuse_int8(sym, prefix, command):
    """An INT8 export (``quantize``'s output: oneDNN's quantized operators) runs in MXNet
    only; ``optimize``, ``onnx``, ``quantize``, ``openvino`` and the other runtimes of
    ``bench`` take the float export it was made from."""
    if "_contrib_quantize" in sym.tojson():
        raise UsageError("%s takes float exports: %s is an INT8 export of `deploy quantize` "
                         "(it runs in MXNet only); give the float export it was made from"
                         % (command, prefix))
    return sym


def _check_export(prefix, shape):
    """The export exists, its files are MXNet's, and it accepts ``shape``; returns the
    symbol."""

    for path in artifact_paths(prefix):
        if not os.path.isfile(path):
            raise UsageError("%s not found: give the prefix of an export (PREFIX-symbol.json "
                             "+ PREFIX-0000.params), e.g. from `python -m igcv3_gluon.deploy "
                             "export`" % path)
    try:
        sym = mx.sym.load(artifact_paths(prefix)[0])
    except (mx.MXNetError, UnicodeDecodeError, ValueError):
        raise UsageError("%s is not an MXNet symbol file" % artifact_paths(prefix)[0])
    try:
        params = read_params(artifact_paths(prefix)[1])
    except WeightsError as err:
        raise UsageError(str(err))
    try:
        with contextlib.redirect_stdout(io.StringIO()):     # MXNet prints its arguments
            arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=shape)
    except mx.MXNetError as err:
        raise UsageError("input shape %s does not fit %s (%s)" % (
            ",".join(map(str, shape)), prefix,
            str(err).strip().splitlines()[-1][:160] if str(err).strip() else "shape error"))
    if out_shapes is None or any(s is None or 0 in s for s in out_shapes):
        raise UsageError("input shape %s does not fit %s" % (",".join(map(str, shape)), prefix))
    _check_params_fit(prefix, params, dict(zip(sym.list_arguments(), arg_shapes)),
                      dict(zip(sym.list_auxiliary_states(), aux_shapes)))
    return sym


def _check_params_fit(prefix, params, arg_shapes, aux_shapes):
    """Every tensor the graph needs is in its params file, with the graph's shape."""
    needed = [("arg:" + k, v) for k, v in arg_shapes.items() if k != "data"] + \
        [("aux:" + k, v) for k, v in aux_shapes.items()]
    for name, want in needed:
        have = params.get(name)
        if have is None:
            raise UsageError("%s-0000.params lacks %s, which %s-symbol.json needs: the two "
                             "files are not one export (export again)" % (prefix, name[4:],
                                                                          prefix))
        if tuple(have.shape) != tuple(want):
            raise UsageError("%s-0000.params holds %s with shape %s; %s-symbol.json needs %s: "
                             "the two files are not one export (export again)" % (
                                 prefix, name[4:], tuple(have.shape), prefix, tuple(want)))


RUNTIMES = ("mxnet", "onnxruntime", "openvino")
PREFIX_HELP = ("an export: PREFIX of PREFIX-symbol.json + PREFIX-0000.params, or a training "
               "run's folder (its best model's export)")


# what an export's description takes over from the weights' own (a run's config.json holds
# every flag of its training too: those stay behind)
DESCRIBED = ("model", "classes") + ARCH_KEYS + INPUT_KEYS + ("dataset", "anchors", "recipe",
                                                              "source", "published")


def cmd_export(args):
    """A zoo model with trained weights (a run folder, whose config says which model, width
    and classes, or a .params with the model named) -> symbol/params/meta."""
    config = None
    if args.params:
        with naming("--params"):
            args.params_file, config = resolve_weights(args.params, args.model)
    config = config or {}
    args.model = args.model or config.get("model")
    if not args.model:
        raise UsageError("name the model (python -m igcv3_gluon.deploy export MODEL ...) or "
                         "give --params a training run's folder")
    if args.model not in list_models():
        raise UsageError("unknown model %r; known: %s" % (args.model, ", ".join(list_models())))
    info = model_info(args.model)
    described = {k: config[k] for k in DESCRIBED if k in config} \
        if config.get("model") in (None, args.model) else {}
    flags = {k: getattr(args, k, None) for k in ARCH_KEYS       # 0 is a value: checked
             if getattr(args, k, None) is not None and getattr(args, k, None) is not False}
    described.update(flags, model=args.model)
    if args.classes is not None:
        described["classes"] = args.classes
    described.setdefault("classes", info.classes)
    try:
        spec = ModelSpec.from_dict(described)
        kwargs = spec.arch_kwargs()
    except ValueError as err:
        raise UsageError(("--" if str(err).startswith(ARCH_KEYS) else "") + str(err))
    classes = spec.classes
    try:
        if info.task == "detection":
            size = config.get("data_shape") or info.input_shape[2]
            net = get_model(args.model, classes=classes, base_size=size,
                            anchors=config.get("anchors") or "authors", **kwargs)
        else:
            net = get_model(args.model, classes=classes, **kwargs)
    except ValueError as err:
        raise UsageError(str(err))
    meta = spec.to_dict()
    refuse_overwrite(export_files(args.out), _weights_inputs(args))
    if args.params:
        with naming("--params"):
            load_weights(net, args.params_file)
    else:
        net.initialize(mx.init.Xavier())
        print("note: no --params: exporting random weights")
    if info.task == "detection":
        sym_file, params_file = export_detector(net, args.out, size, meta=meta)
    else:
        shape = parse_shape(args.input_shape) if args.input_shape else info.input_shape
        sym_file, params_file = export(net, args.out, shape, meta=meta)
    print("exported %s + %s (+ -meta.json)" % (sym_file, params_file))


def _weights_inputs(args):
    """The files ``export`` reads: the weights and what describes them."""
    if not args.params:
        return []
    folder = run_folder_of(args.params_file)
    return [(args.params_file, "the --params weights"),
            (weights_meta_path(args.params_file), "the --params weights' description")] + \
        ([(os.path.join(folder, "config.json"), "the --params run's config")] if folder else [])


def cmd_optimize(args):
    args.input_shape = _input_shape(args, args.prefix)
    _refuse_int8(_refuse_detector(_check_export(args.prefix, args.input_shape), args.prefix,
                                  "optimize"), args.prefix, "optimize")
    print("optimizing %s ..." % args.prefix, flush=True)
    (sym_file, params_file), report = optimize_files(
        args.prefix, args.out_prefix, fold_shuffles=not args.keep_shuffles,
        grouped=args.grouped, check_shape=args.input_shape)
    print("folded %(batchnorms_folded)d BatchNorms and %(shuffles_folded)d shuffles; "
          "%(batchnorms_left)d BatchNorms and %(shuffles_left)d shuffles left" % report)
    print("wrote %s + %s; max |diff| to the original on a random batch: %.2e"
          % (sym_file, params_file, report["max_diff"]))


def cmd_onnx(args):
    args.input_shape = _input_shape(args, args.prefix)
    _refuse_int8(_refuse_detector(_check_export(args.prefix, args.input_shape), args.prefix,
                                  "onnx"), args.prefix, "onnx")
    print("converting %s to ONNX (input %s) ..." % (
        args.prefix, "x".join(map(str, args.input_shape))), flush=True)
    path = export_onnx(args.prefix, args.output, args.input_shape, check=True)
    print("wrote %s; ONNX Runtime vs MXNet at batch %d and %d: max relative |diff| %.2e"
          % (path, args.input_shape[0], args.input_shape[0] + 1, path.max_diff))


def cmd_quantize(args):
    """MXNet's oneDNN INT8 flow, behind the same accuracy gate as ``openvino --int8``."""
    args.input_shape = _input_shape(args, args.prefix, batch=32)
    _refuse_int8(_refuse_detector(_check_export(args.prefix, args.input_shape), args.prefix,
                                  "quantize"), args.prefix, "quantize")
    calib, test_x, test_y = _calibration(args, args.input_shape)
    validation = _int8_validation(args, test_x, test_y)
    print("calibrating on %d images (%s, preset %s; int8 kernels here: %s) ..." % (
        sum(c.shape[0] for c in calib), args.calib_mode, args.preset, isa_label("mxnet")),
        flush=True)
    with naming(_gate_flags(args)):
        result = quantize_gated(args.prefix, args.out_prefix, calib, validation, args.max_drop,
                                args.preset, args.calib_mode)
    print("%s (%d images): fp32 %.2f%%, int8 %.2f%% (change %+.2f points)" % (
        _gate_label(args, result.labelled), result.images, 100 * result.fp32_accuracy,
        100 * result.int8_accuracy, 0.0 - result.drop + 0.0))
    if not result.accepted:
        raise UsageError("INT8 lost %.2f points (> --max-drop %.2f): not a usable model, kept "
                         "as %s for inspection; try --preset accurate (linear layers in "
                         "FP32) or --calib-mode entropy" % (result.drop, args.max_drop,
                                                             result.prefix), 1)
    print("wrote %s + %s" % artifact_paths(result.prefix))


def _gate_flags(args):
    """The flags that supplied the gate's data (for a library error about them)."""
    if args.val_npz:
        return "--val-npz %s" % args.val_npz
    if args.digits_config:
        return "--digits-config %s" % args.digits_config
    return "--calib-npy %s" % args.calib_npy


def _baseline_export(folder, size):
    """GluonCV's MobileNetV2 1.0 (random weights) exported and optimised, the speed
    baseline of every runtime."""
    prefix = os.path.join(folder, "gluoncv-mobilenetv2_1.0")
    export(gluoncv_mobilenetv2(like_trained=True), prefix + "-trained", (1, 3, size, size))
    optimize_files(prefix + "-trained", prefix)
    return prefix


def cmd_bench(args):
    """Latency of exports side by side, in MXNet, ONNX Runtime and OpenVINO."""


    batches, runtimes, precisions = _bench_settings(args)
    args.input_shape = _bench_shape(args)
    for prefix in args.prefixes:
        sym = _refuse_detector(_check_export(prefix, (1,) + tuple(args.input_shape[1:])),
                               prefix, "bench")
        if runtimes != ["mxnet"]:
            _refuse_int8(sym, prefix, "bench --runtime %s" % ",".join(runtimes))
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = list(args.prefixes)
        if args.baseline:
            prefixes.append(_baseline_export(tmp, args.input_shape[2]))
        converted = _bench_conversions(prefixes, runtimes, args.input_shape, tmp)
        for batch in batches:
            shape = (batch,) + tuple(args.input_shape[1:])
            x = mx.nd.random.uniform(-1, 1, shape)
            fns = {}
            for prefix in prefixes:
                fns.update(_bench_functions(args, prefix, runtimes, precisions, converted, x))
            print("\nbatch %d (%s), median of %d interleaved rounds:" % (
                batch, "x".join(map(str, shape[1:])), args.rounds), flush=True)
            medians = interleaved_medians(fns, rounds=args.rounds, repeat=args.repeat, settle=2)
            print(ratio_table(medians, next(iter(fns))))


def _bench_shape(args):
    """The one input shape every export is timed at: ``--input-shape``, else the shape their
    ``-meta.json`` files agree on (timing one at another's size says nothing about it)."""
    if args.input_shape:
        return parse_shape(args.input_shape)
    shapes = {prefix: _input_shape(args, prefix) for prefix in args.prefixes}
    if len(set(shapes.values())) > 1:
        raise UsageError("bench times its exports side by side at one input size; these take "
                         "%s: give --input-shape, or time them apart" % ", ".join(
                             "%s %s" % (p, "x".join(map(str, s[1:]))) for p, s in shapes.items()))
    return shapes[args.prefixes[0]]


def _bench_settings(args):
    """``(batch sizes, runtimes, OpenVINO precisions)`` of the bench flags, checked."""
    batches = parse_ints(args.batch, "--batch")
    if args.rounds < 1 or args.repeat < 1:
        raise UsageError("--rounds and --repeat must be at least 1")
    runtimes = [r for r in args.runtime.split(",") if r]
    if args.onnx and "onnxruntime" not in runtimes:
        runtimes.append("onnxruntime")
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad or not runtimes:
        raise UsageError("--runtime: unknown %s; choose from %s" % (bad, ", ".join(RUNTIMES)))
    precisions = [p for p in args.ov_precision.split(",") if p]
    if not precisions or set(precisions) - set(PRECISIONS):
        raise UsageError("--ov-precision takes %s (comma-separated); got %r"
                         % (", ".join(PRECISIONS), args.ov_precision))
    return batches, runtimes, precisions


def _bench_conversions(prefixes, runtimes, input_shape, tmp):
    """Each export converted once for the runtimes that need it: ``{(runtime, prefix):
    path}``."""
    converted = {}
    for k, prefix in enumerate(prefixes):
        if "onnxruntime" in runtimes:
            converted[("onnx", prefix)] = export_onnx(
                prefix, os.path.join(tmp, "%d.onnx" % k), (1,) + tuple(input_shape[1:]))
        if "openvino" in runtimes:
            # timing only (`deploy openvino` is the checked conversion): a random
            # baseline's float rounding must not stop the timing
            (xml, _), _ = to_openvino(prefix, os.path.join(tmp, "ov%d" % k),
                                      (1,) + tuple(input_shape[1:]), optimize_first=False,
                                      check_batches=())
            converted[("openvino", prefix)] = xml
    return converted


def _bench_functions(args, prefix, runtimes, precisions, converted, x):
    """``{label: call}`` timing ``prefix`` on the batch ``x`` in each runtime."""
    name, batch, size = os.path.basename(prefix), x.shape[0], x.shape[2]
    fns = {}
    if "mxnet" in runtimes:
        net = load_symbolblock(prefix)
        if args.fuse:
            net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
        else:
            net.hybridize(static_alloc=True, static_shape=True)
        fns["mxnet " + name] = (lambda n=net: n(x).wait_to_read())
    if "onnxruntime" in runtimes:
        fns["onnxruntime " + name] = onnx_inference(converted[("onnx", prefix)], batch, size)
    if "openvino" in runtimes:
        for precision in precisions:
            fns["openvino %s %s" % (precision, name)] = openvino_inference(
                converted[("openvino", prefix)], batch, size, precision)
    return fns


def _calibration(args, shape):
    """Up to ``--calib-batches`` calibration batches of ``shape`` (and the digits test data
    when a digits run's config is given, else None, None); one line when there is none."""
    if args.calib_batches < 1:
        raise UsageError("--calib-batches must be at least 1, got %d" % args.calib_batches)
    calib, test_x, test_y = _calibration_source(args, shape)
    calib = calib[:args.calib_batches]
    if not calib:
        raise UsageError("no calibration batch: fewer than %d images (one batch); give "
                         "more" % shape[0])
    return calib, test_x, test_y


def _calibration_source(args, shape):
    if args.digits_config:

        if tuple(shape[1:]) != (3, 32, 32):
            raise UsageError("the digits set is 3x32x32; --input-shape %s does not fit"
                             % ",".join(map(str, shape)))
        try:
            calib, test_x, test_y = digits_batches(args.digits_config, shape[0])
        except ValueError as err:
            raise UsageError("--digits-config %s" % err)
        return [mx.nd.array(c) for c in calib], mx.nd.array(test_x), test_y
    if args.calib_npy:
        if not os.path.isfile(args.calib_npy):
            raise UsageError("--calib-npy %s does not exist" % args.calib_npy)
        try:
            data = np.load(args.calib_npy, allow_pickle=False)
            if not isinstance(data, np.ndarray):
                raise ValueError("an .npz archive, not one array")
        except (ValueError, OSError, EOFError) as err:
            raise UsageError("--calib-npy %s is not a NumPy array file (%s): save the images "
                             "with numpy.save" % (args.calib_npy, str(err).split("\n")[0]))
        if data.ndim != 4 or data.shape[1:] != tuple(shape[1:]):
            raise UsageError("--calib-npy holds shape %s; expected (N,%s)" % (
                data.shape, ",".join(map(str, shape[1:]))))
        with naming("--calib-npy %s" % args.calib_npy):        # before the slow work
            data = check_images(data, normalisation_of(read_meta(args.prefix)),
                                "the calibration images")
        b = shape[0]
        if len(data) < b:
            raise UsageError("--calib-npy holds %d image(s); calibration takes batches of %d: "
                             "give at least %d" % (len(data), b, b))
        return [mx.nd.array(data[i:i + b]) for i in range(0, len(data) - b + 1, b)], None, None
    raise UsageError("give calibration data: --digits-config RUN/config.json or "
                     "--calib-npy FILE.npy (N,C,H,W float32, preprocessed)")


def _require_openvino(int8=False):
    missing = [m for m in (("openvino", "nncf") if int8 else ("openvino",))
               if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError("%s not installed: pip install -e '.[openvino]'" % " and ".join(missing))


def cmd_openvino(args):
    """Export -> optimised -> ONNX (free batch axis) -> OpenVINO IR, checked against MXNet
    at two batch sizes; optionally NNCF INT8."""
    _require_openvino(args.int8)
    args.input_shape = _input_shape(args, args.prefix)
    sym = _refuse_int8(_check_export(args.prefix, args.input_shape), args.prefix, "openvino")
    check_batches = parse_ints(args.check_batches, "--check-batches")
    calib = test_x = test_y = validation = None
    if args.int8 and "_contrib_box_nms" in sym.tojson():
        raise UsageError("--int8 takes classifiers: %s is a detector (its accuracy gate would "
                         "need COCO mAP); convert it without --int8" % args.prefix)
    if args.int8:                     # calibration data first: fail before the slow work
        shape = (args.input_shape[0] if args.input_shape[0] > 1 else 32,) + \
            tuple(args.input_shape[1:])
        calib, test_x, test_y = _calibration(args, shape)
        calib = [c.asnumpy() for c in calib]
        validation = _int8_validation(args, test_x, test_y)
    print("converting %s to OpenVINO IR ..." % args.prefix, flush=True)
    (xml, bin_file), report = to_openvino(args.prefix, args.out, args.input_shape,
                                          grouped=args.grouped, check_batches=check_batches)
    if report:
        print("folded %(batchnorms_folded)d BatchNorms and %(shuffles_folded)d shuffles first"
              % report)
    meta = read_meta(args.out)
    print("wrote %s + %s (+ %s.onnx, its ONNX with a free batch axis); OpenVINO (f32) vs "
          "MXNet at batch %s: max relative |diff| %.1e" % (xml, bin_file, args.out,
                                                          args.check_batches,
                                                          meta["check"]["max_rel_diff"]))
    if args.int8:
        _quantize_openvino(args, calib, validation, meta)


def _validation_npz(path):
    """``--val-npz``: (images, labels) from arrays ``x`` (N,C,H,W float32, preprocessed) and
    ``y`` (N integer labels), as stored (the gate checks their values)."""
    if not os.path.isfile(path):
        raise UsageError("--val-npz %s does not exist" % path)
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("a single array, not an .npz archive")
        x, y = data["x"], data["y"]
    except (ValueError, OSError, EOFError, KeyError, TypeError, IndexError) as err:
        raise UsageError("--val-npz %s is not an .npz with arrays x (N,C,H,W) and y (N labels)"
                         " (%s): numpy.savez(FILE, x=images, y=labels)"
                         % (path, str(err).split("\n")[0]))
    if x.ndim != 4 or y.shape != (len(x),) or not len(x):
        raise UsageError("--val-npz %s: x has shape %s and y %s; expected (N,C,H,W) and (N,) "
                         "with N >= 1" % (path, x.shape, y.shape))
    return x, y


def _int8_validation(args, test_x, test_y):
    """The labelled images of the INT8 gate (--val-npz, else the digits test set, else None:
    the float model's predictions), checked against the float export before the slow work
    (``gate.check_gate_data``: labels of the model's classes, images preprocessed as its
    inputs, a float top-1 above chance)."""

    if not (math.isfinite(args.max_drop) and args.max_drop >= 0):
        raise UsageError("--max-drop must be a number of points >= 0, got %s" % args.max_drop)
    if getattr(args, "max_restore", None) is not None and args.max_restore < 0:
        raise UsageError("--max-restore must be >= 0 (0: plain quantization), got %d"
                         % args.max_restore)
    validation = None
    if args.val_npz:
        validation = _validation_npz(args.val_npz)
    elif test_x is not None:
        validation = (test_x.asnumpy(), test_y)
    if validation is None:
        return None
    if validation[0].shape[1:] != tuple(args.input_shape[1:]):
        raise UsageError("validation images are %s; the model takes %s" % (
            "x".join(map(str, validation[0].shape[1:])),
            "x".join(map(str, args.input_shape[1:]))))
    with naming(_gate_flags(args)):
        x, y, _ = check_gate_data(load_symbolblock(args.prefix), validation[0], validation[1],
                                  normalisation_of(read_meta(args.prefix)))
    return x, y


def _gate_label(args, labelled):
    """What the INT8 gate's accuracy is measured as, for the report line."""
    if not labelled:
        return "agreement with the float model"
    return "digits test top-1" if args.digits_config and not args.val_npz else "top-1"


def _quantize_openvino(args, calib, validation, meta):
    """NNCF INT8 behind the accuracy gate; a rejected model exits 1."""
    print("quantizing on %d images (NNCF, preset %s, weights for %s CPUs, at most %.2f points "
          "lost on %s; int8 kernels here: %s) ..." % (
              sum(len(c) for c in calib), args.preset,
              "all x86" if args.int8_target == "any" else "VNNI", args.max_drop,
              "%d labelled images" % len(validation[1]) if validation is not None
              else "the float model's predictions", isa_label()), flush=True)
    result = quantize_ir(args.out + ".onnx", args.out + "-int8", calib, args.preset,
                         target=args.int8_target, validation=validation,
                         max_drop=args.max_drop, max_restore=args.max_restore, meta=meta)
    what = _gate_label(args, result.labelled)
    print("%s in OpenVINO (%d images): fp32 %.2f%%, int8 %.2f%% (change %+.2f points); %d-bit "
          "weights" % (what, result.images, 100 * result.fp32_accuracy,
                       100 * result.int8_accuracy, 0.0 - result.drop + 0.0, result.weight_bits))
    print("layers kept in float: %s" % (", ".join(result.float_layers) or "none"))
    if not result.accepted:
        raise UsageError("INT8 lost %.2f points (> --max-drop %.2f): not a usable model, kept "
                         "as %s for inspection; %s" % (
                             result.drop, args.max_drop, result.xml,
                             "use --int8-target any (7-bit weights)"
                             if args.int8_target == "vnni" and not has_vnni() else
                             "allow more float layers (--max-restore) or calibrate on more "
                             "representative images"), 1)
    print("wrote %s" % result.xml)
