"""The INT8 commands of ``python -m igcv3_gluon.deploy``: ``quantize`` (MXNet's oneDNN flow)
and ``openvino`` (the checked IR, and with ``--int8`` NNCF's INT8), their calibration data and
the accuracy gate's data, checked before the slow work (``deploy/gate.py``).

    python -m igcv3_gluon.deploy quantize exp/digits-opt exp/digits-int8 \\
        --digits-config runs/demo/config.json
    python -m igcv3_gluon.deploy openvino exp/digits exp/ov/digits --int8 \\
        --digits-config runs/demo/config.json
"""
import importlib.util
import math
import os
import zipfile

import mxnet as mx
import numpy as np

from ..cli import parse_ints
from ..data.digits import digits_batches
from ..errors import UsageError, naming
from ..utils import refuse_overwrite
from .commands import _check_export, _input_shape, _refuse_detector, _refuse_int8
from .cpu import has_vnni, isa_label
from .export import (
    EXPORT_SUFFIXES,
    artifact_paths,
    export_inputs,
    load_symbolblock,
    read_meta,
)
from .gate import REJECTED_SUFFIX, check_gate_data, check_images, normalisation_of
from .int8 import quantize_ir
from .ir import IR_SUFFIXES
from .openvino import to_openvino
from .quantize import quantize_gated

__all__ = ["cmd_quantize", "cmd_openvino", "CALIB_BATCHES"]

# how many calibration batches each command takes unless --calib-batches says
CALIB_BATCHES = {"quantize": 20, "openvino": 10}


def _refuse_overwriting_inputs(args, outputs):
    """Before any data is read or any model run: none of ``outputs`` is a file the command
    reads (the export, the calibration and gate data), however spelled; the calibration
    comes from one place."""
    data = [(args.digits_config, "the --digits-config file"),
            (args.calib_npy, "the --calib-npy images"),
            (getattr(args, "val_npz", None), "the --val-npz gate set")]
    refuse_overwrite(outputs, export_inputs(args.prefix) + [(p, w) for p, w in data if p])
    if args.digits_config and args.calib_npy:
        raise UsageError("--digits-config and --calib-npy both give calibration images: "
                         "choose one (--digits-config also gives the gate's test set; "
                         "--val-npz gives it with --calib-npy)")


def _gated_files(out, suffixes):
    """The files of a gated output: ``out`` and ``out-REJECTED``, each with ``suffixes``."""
    return [out + extra + suffix for extra in ("", REJECTED_SUFFIX) for suffix in suffixes]


def cmd_quantize(args):
    """MXNet's oneDNN INT8 flow, behind the same accuracy gate as ``openvino --int8``."""
    _refuse_overwriting_inputs(args, _gated_files(args.out_prefix, EXPORT_SUFFIXES))
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


def _calibration(args, shape):
    """Up to ``--calib-batches`` calibration batches of ``shape`` (and the digits test data
    when a digits run's config is given, else None, None); one line when there is none."""
    if args.calib_batches is None:      # the parsers share one action: the default is here
        args.calib_batches = CALIB_BATCHES[args.command]
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
            raise UsageError("--calib-npy %s %s" % (args.calib_npy, _not_a_file(args.calib_npy)))
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


def _not_a_file(path):
    return "is a folder, not a file" if os.path.isdir(path) else "does not exist"


def _require_openvino(int8=False):
    missing = [m for m in (("openvino", "nncf") if int8 else ("openvino",))
               if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError("%s not installed: pip install -e '.[openvino]'" % " and ".join(missing))


def cmd_openvino(args):
    """Export -> optimised -> ONNX (free batch axis) -> OpenVINO IR, checked against MXNet
    at two batch sizes; optionally NNCF INT8."""
    _require_openvino(args.int8)
    if args.int8:                     # (to_openvino checks the float IR's own outputs)
        _refuse_overwriting_inputs(args, [args.out + suffix for suffix in IR_SUFFIXES] +
                                   _gated_files(args.out + "-int8", IR_SUFFIXES))
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
        raise UsageError("--val-npz %s %s" % (path, _not_a_file(path)))
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("a single array, not an .npz archive")
        x, y = data["x"], data["y"]
    except (ValueError, OSError, EOFError, KeyError, TypeError, IndexError,
            zipfile.BadZipFile) as err:
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
        raise UsageError("%s: the images are %s each; the model takes %s (C,H,W): store them "
                         "as (N,%s), preprocessed as its inputs" % (
                             _gate_flags(args), "x".join(map(str, validation[0].shape[1:])),
                             "x".join(map(str, args.input_shape[1:])),
                             ",".join(map(str, args.input_shape[1:]))))
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
