"""Deployment: export, optimise, convert (ONNX, OpenVINO), quantize and time trained models.

    python -m igcv3_gluon.deploy export --params runs/demo --out exp/digits    # a run folder
    python -m igcv3_gluon.deploy export igcv3_d_1.0 --params weights.params --out exp/igcv3_d
    python -m igcv3_gluon.deploy export igcv3_d_1.0 --params pretrained --out exp/published
    python -m igcv3_gluon.deploy optimize exp/digits exp/digits-opt
    python -m igcv3_gluon.deploy onnx exp/digits-opt exp/digits-opt.onnx
    python -m igcv3_gluon.deploy quantize exp/digits-opt exp/digits-int8 \\
        --digits-config runs/demo/config.json
    python -m igcv3_gluon.deploy openvino exp/digits exp/digits-ir --int8 \\
        --digits-config runs/demo/config.json
    python -m igcv3_gluon.deploy bench exp/digits exp/digits-opt --batch 1,16 --onnx

Exports carry ``PREFIX-meta.json`` (input shape, model, classes, normalisation); every
sub-command takes its input shape from it unless ``--input-shape`` is given, checks its files
and the input shape first, and ends with one line ``error: ...`` (exit 2) when something does
not fit; a converted file that does not compute what its source computes exits 1.
"""
# The flags of every sub-command are declared here, once (argparse parents for the shared
# ones); the commands themselves are deploy/commands.py (export, optimize, onnx),
# commands_int8.py (quantize, openvino) and commands_bench.py (bench).
import argparse
import sys
import warnings

from ..cli import HelpFormatter, add_model_args
from ..errors import exit_on_usage_error, sigterm_raises
from . import commands, commands_bench, commands_int8
from .export import check_output

__all__ = ["build_parser", "main"]

PREFIX_HELP = commands.PREFIX_HELP


def _parents():
    """The flags several sub-commands share: the input shape, the calibration data, the
    INT8 accuracy gate."""
    shape = argparse.ArgumentParser(add_help=False)
    shape.add_argument("--input-shape", default=None,
                       help="N,C,H,W (default: the export's -meta.json, else 1,3,224,224)")
    calibration = argparse.ArgumentParser(add_help=False)
    calibration.add_argument("--digits-config",
                             help="config.json of a digits run: calibrate on the digits "
                                  "training images, report test accuracy")
    calibration.add_argument("--calib-npy",
                             help="calibration images, (N,C,H,W) float32 .npy")
    calibration.add_argument("--calib-batches", type=int, default=None,
                             help="at most this many calibration batches (default: 20 for "
                                  "quantize, 10 for openvino)")
    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                      help="largest top-1 loss accepted (on --val-npz, the digits test set, "
                           "else agreement with the float model on the calibration images); "
                           "beyond it the model is kept as OUT-REJECTED and the command "
                           "exits 1")
    gate.add_argument("--val-npz", help="labelled validation set for the gate: .npz with x "
                                        "(N,C,H,W float32, preprocessed) and y (N labels)")
    return shape, calibration, gate


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    shape, calibration, gate = _parents()
    _add_export(sub, shape)
    _add_conversions(sub, shape)
    _add_int8(sub, shape, calibration, gate)
    _add_bench(sub, shape)
    return parser


def _add_export(sub, shape):
    p = sub.add_parser("export", help="zoo model (+ trained .params) -> symbol/params",
                       formatter_class=HelpFormatter, parents=[shape])
    p.add_argument("model", nargs="?", help="zoo name (default: the --params run's)")
    p.add_argument("--params", help="trained weights: a training run's folder (it names the "
                                    "model, width and classes), a .params file, or "
                                    "'pretrained' (the model's published weights)")
    p.add_argument("--classes", type=int, default=None,
                   help="default: the run's, else the model's (1000, or 10 for CIFAR)")
    add_model_args(p, "architecture (as in training)")
    p.add_argument("--out", required=True, help="output prefix")
    p.set_defaults(run=commands.cmd_export)


def _add_conversions(sub, shape):
    """``optimize`` and ``onnx``."""
    p = sub.add_parser("optimize", help="fold BatchNorms and shuffles", parents=[shape])
    p.add_argument("prefix", help=PREFIX_HELP)
    p.add_argument("out_prefix")
    p.add_argument("--keep-shuffles", action="store_true",
                   help="fold BatchNorms only (group convs and shuffles stay)")
    p.add_argument("--grouped", action="store_true",
                   help="fold IGCV3 shuffles keeping the 1x1 convs grouped (G1*G2-group "
                        "projection + partial sums) instead of one dense 1x1 conv")
    p.set_defaults(run=commands.cmd_optimize)

    p = sub.add_parser("onnx", help="export -> ONNX (checked in ONNX Runtime)",
                       parents=[shape])
    p.add_argument("prefix", help=PREFIX_HELP)
    p.add_argument("output")
    p.set_defaults(run=commands.cmd_onnx)


def _add_int8(sub, shape, calibration, gate):
    """``quantize`` (MXNet) and ``openvino`` (IR, optionally NNCF INT8)."""
    p = sub.add_parser("quantize", help="INT8 post-training quantization",
                       parents=[shape, calibration, gate])
    p.add_argument("prefix", help=PREFIX_HELP)
    p.add_argument("out_prefix")
    p.add_argument("--calib-mode", default="naive", choices=["naive", "entropy"])
    p.add_argument("--preset", default="accurate", choices=["accurate", "fast"])
    p.set_defaults(run=commands_int8.cmd_quantize)

    p = sub.add_parser("openvino", help="export -> OpenVINO IR (checked), INT8",
                       parents=[shape, calibration, gate])
    p.add_argument("prefix", help=PREFIX_HELP)
    p.add_argument("out", help="output prefix: writes OUT.xml + OUT.bin (+ -meta.json)")
    p.add_argument("--grouped", action="store_true", help="as optimize --grouped")
    p.add_argument("--check-batches", default="1,5",
                   help="batch sizes at which the IR is compared with MXNet")
    p.add_argument("--int8", action="store_true",
                   help="also NNCF post-training INT8 quantization: OUT-int8.xml")
    p.add_argument("--preset", default="mixed", choices=["mixed", "performance"])
    p.add_argument("--int8-target", default="any", choices=["any", "vnni"],
                   help="any: 7-bit weights, the same results on CPUs with and without VNNI "
                        "(AVX2, AVX-512); vnni: 8-bit weights, only for VNNI/AMX CPUs")
    p.add_argument("--max-restore", type=int, default=None, metavar="N",
                   help="at most N layers returned to float by NNCF's accuracy control "
                        "(default: as many as needed; 0: plain quantization)")
    p.set_defaults(run=commands_int8.cmd_openvino)


def _add_bench(sub, shape):
    p = sub.add_parser("bench", help="latency of exports, side by side", parents=[shape])
    p.add_argument("prefixes", nargs="+", help="exports (PREFIX or a run folder), side by side")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--repeat", type=int, default=1,
                   help="consecutive calls timed per export and round (after 2 untimed ones)")
    p.add_argument("--runtime", default="mxnet",
                   help="comma-separated: mxnet, onnxruntime, openvino")
    p.add_argument("--ov-precision", default=None,
                   help="with --runtime openvino: its inference precision(s), f32 (the "
                        "default), bf16, default (the plugin's: bf16 on CPUs that have it)")
    p.add_argument("--baseline", action="store_true",
                   help="add GluonCV's MobileNetV2 1.0 (optimised) in every runtime")
    p.add_argument("--onnx", action="store_true", help="also time them in ONNX Runtime")
    p.add_argument("--fuse", action="store_true",
                   help="MXNet: apply oneDNN operator fusion (optimize_for('MKLDNN'))")
    p.set_defaults(run=commands_bench.cmd_bench)


def _check_outputs(args):
    """An output that is empty or names a folder is refused before anything is written (that
    it is none of the files the command reads, however spelled, the library checks:
    ``utils.refuse_overwrite``)."""
    for name in ("out", "out_prefix", "output"):
        out = getattr(args, name, None)
        if out is not None:
            check_output(out, "--out" if name == "out" and args.command == "export"
                         else name.upper(), onnx=name == "output")


@exit_on_usage_error
def main(argv=None):
    warnings.simplefilter("ignore", UserWarning)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):        # a value like -1,3,32,32 is not a flag
        if arg == "--input-shape" and argv[i + 1].startswith("-"):
            argv[i:i + 2] = ["--input-shape=" + argv[i + 1]]
            break
    args = parser.parse_args(argv)
    _check_outputs(args)
    if getattr(args, "prefix", None):                # a run folder stands for its export
        args.prefix = commands.run_export(args.prefix)
    if getattr(args, "prefixes", None):
        args.prefixes = [commands.run_export(p) for p in args.prefixes]
    with sigterm_raises():                # SIGTERM unwinds like Ctrl-C: nothing left behind
        args.run(args)
    return 0
