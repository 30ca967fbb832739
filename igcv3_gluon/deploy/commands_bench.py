"""``python -m igcv3_gluon.deploy bench``: the latency of exports side by side in MXNet, ONNX
Runtime and OpenVINO (GluonCV's MobileNetV2 beside them with ``--baseline``), interleaved
rounds in one process.

    python -m igcv3_gluon.deploy bench exp/digits exp/digits-opt --batch 1,16 --onnx
"""
import os
import tempfile

import mxnet as mx

from ..cli import parse_ints, parse_shape
from ..errors import UsageError
from .bench import (
    gluoncv_mobilenetv2,
    interleaved_medians,
    onnx_inference,
    openvino_inference,
    ratio_table,
)
from .commands import _check_export, _input_shape, _refuse_detector, _refuse_int8
from .export import check_input_shape, export, export_onnx, load_symbolblock
from .openvino import PRECISIONS, to_openvino
from .optimize import optimize_files

__all__ = ["cmd_bench", "RUNTIMES"]

RUNTIMES = ("mxnet", "onnxruntime", "openvino")


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
    for batch in batches:                       # the limit --input-shape is held to
        try:
            check_input_shape((batch,) + tuple(args.input_shape[1:]))
        except ValueError as err:
            raise UsageError("--batch %d: %s; give smaller batches" % (batch, err)) from None
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
    if args.ov_precision is not None and "openvino" not in runtimes:
        raise UsageError("--ov-precision %s times OpenVINO, which --runtime %s leaves out: add "
                         "openvino to --runtime, or drop --ov-precision"
                         % (args.ov_precision, ",".join(runtimes)))
    args.ov_precision = args.ov_precision or "f32"
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
