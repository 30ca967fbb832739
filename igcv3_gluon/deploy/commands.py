"""The deployment commands that export and convert (``cmd_export``, ``cmd_optimize``,
``cmd_onnx``), and what every command of ``python -m igcv3_gluon.deploy`` checks of its
input first (the export's files, its input shape, a run folder standing for its export).
The INT8 commands are ``commands_int8.py``, timing ``commands_bench.py``; the flags are
declared in ``deploy/cli.py``.

    python -m igcv3_gluon.deploy export --params runs/demo --out exp/digits    # a run folder
    python -m igcv3_gluon.deploy export igcv3_d_1.0 --params weights.params --out exp/igcv3_d
    python -m igcv3_gluon.deploy optimize exp/digits exp/digits-opt
    python -m igcv3_gluon.deploy onnx exp/digits-opt exp/digits-opt.onnx

Exports carry ``PREFIX-meta.json`` (input shape, model, classes, normalisation); every
sub-command takes its input shape from it unless ``--input-shape`` is given. Every
sub-command checks its files and the input shape first and ends with one line
``error: ...`` (exit 2) when something does not fit.
"""
import contextlib
import glob
import io
import json
import os
import sys

import mxnet as mx

from ..cli import parse_shape, refuse_other_architecture
from ..errors import UsageError, WeightsError, naming
from ..models import get_model, list_models, model_info
from ..models.pretrained import resolve_weights
from ..models.spec import ARCH_KEYS, INPUT_KEYS, ModelSpec
from ..models.weights import run_folder_of, weights_meta_path
from ..utils import refuse_overwrite
from .export import (
    artifact_paths,
    export,
    export_detector,
    export_files,
    export_onnx,
    load_weights,
    meta_input_shape,
    read_params,
)
from .optimize import optimize_files


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
    if os.path.exists(prefix + "-meta.json"):
        raise UsageError("%s-meta.json is not a readable description (%s): give --input-shape "
                         "N,C,H,W or export again" % (
                             prefix, "a folder" if os.path.isdir(prefix + "-meta.json") else
                             "cut short, not JSON or not an object"))
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
        if os.path.isdir(path):
            raise UsageError("%s is a folder, not a file of an export: give the prefix of an "
                             "export (PREFIX-symbol.json + PREFIX-0000.params)" % path)
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
    if config.get("model") == args.model:
        refuse_other_architecture(args.model, config, flags, "the run of --params")
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


