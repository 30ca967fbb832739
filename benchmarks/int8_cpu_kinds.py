#!/usr/bin/env python
"""INT8 accuracy and speed on this CPU's kind of int8 kernels, 7-bit vs 8-bit weights, side by
side in one process. Prints; never asserts a time.

    python benchmarks/int8_cpu_kinds.py --run runs/demo                     # this CPU as it is
    ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 \
        python benchmarks/int8_cpu_kinds.py --run runs/demo

The cap makes OpenVINO's and MXNet's oneDNN use AVX2 kernels (no VNNI: u8 x s8 pairs summed
in saturating 16 bits) on any machine. Accuracy: the digits run's export in OpenVINO (NNCF,
``--int8-target any`` = 7-bit weights vs ``vnni`` = 8-bit, no layer returned to float) and in
MXNet (``quantize`` presets). Speed: IGCV3-D 1.0 at 224x224 (random weights, optimised) at
float32 and INT8 with both weight widths, interleaved rounds.
"""
import os
import sys
import tempfile
import warnings

from common import command_line  # noqa: E402 (puts the project on sys.path)

warnings.simplefilter("ignore", UserWarning)

import numpy as np  # noqa: E402


def digits_accuracy(run, tmp):
    import json

    import mxnet as mx

    from igcv3_gluon.data.digits import digits_arrays
    from igcv3_gluon.deploy.cpu import isa_label
    from igcv3_gluon.deploy.export import load_symbolblock
    from igcv3_gluon.deploy.int8 import quantize_ir
    from igcv3_gluon.deploy.openvino import to_openvino
    from igcv3_gluon.deploy.optimize import optimize_files
    from igcv3_gluon.deploy.quantize import quantize
    symbol = json.load(open(os.path.join(run, "summary.json")))["export"]["symbol"]
    prefix = os.path.join(run, "export", os.path.basename(symbol)[:-len("-symbol.json")])
    (train_x, _), (test_x, test_y) = digits_arrays(os.path.join(run, "config.json"))
    calib = [train_x[i:i + 32] for i in range(0, 320, 32)]
    to_openvino(prefix, os.path.join(tmp, "ir"))
    print("\n### Digits top-1 (360 test images), OpenVINO int8 kernels: %s, MXNet: %s\n"
          % (isa_label("openvino"), isa_label("mxnet")))
    print("| runtime, weights | fp32 | int8 | change (points) |\n|---|---|---|---|")
    for target in ("any", "vnni"):
        r = quantize_ir(os.path.join(tmp, "ir.onnx"), os.path.join(tmp, "q-" + target), calib,
                        target=target, validation=(test_x, test_y), max_drop=100.0,
                        max_restore=0)
        print("| OpenVINO NNCF, %d-bit weights (--int8-target %s) | %.2f%% | %.2f%% | %+.2f |" % (
            r.weight_bits, target, 100 * r.fp32_accuracy, 100 * r.int8_accuracy, -r.drop))
    optimize_files(prefix, os.path.join(tmp, "opt"))
    fp32 = load_symbolblock(os.path.join(tmp, "opt"))
    x = mx.nd.array(test_x)
    base = float((fp32(x).asnumpy().argmax(1) == test_y).mean())
    for preset in ("accurate", "fast"):
        _, qnet = quantize(os.path.join(tmp, "opt"), os.path.join(tmp, "mx-" + preset),
                           [mx.nd.array(c) for c in calib], preset)
        acc = float((qnet(x).asnumpy().argmax(1) == test_y).mean())
        print("| MXNet quantize --preset %s | %.2f%% | %.2f%% | %+.2f |" % (
            preset, 100 * base, 100 * acc, 100 * (acc - base)))


def speed(tmp, rounds, repeat):
    import mxnet as mx

    import igcv3_gluon
    from igcv3_gluon.deploy import export
    from igcv3_gluon.deploy.bench import interleaved_medians, openvino_inference, ratio_table
    from igcv3_gluon.deploy.cpu import isa_label
    from igcv3_gluon.deploy.int8 import quantize_ir
    from igcv3_gluon.deploy.openvino import to_openvino
    from igcv3_gluon.nn import init_like_trained
    net = igcv3_gluon.get_model("igcv3_d_1.0")
    init_like_trained(net, 0)
    net(mx.nd.zeros((1, 3, 224, 224)))
    export(net, os.path.join(tmp, "igcv3_d"), (1, 3, 224, 224))
    # random weights amplify float rounding: speed only, no IR-vs-MXNet check here
    (xml, _), _ = to_openvino(os.path.join(tmp, "igcv3_d"), os.path.join(tmp, "igcv3_d-ir"),
                              check_batches=())
    rng = np.random.RandomState(0)
    calib = [rng.uniform(-1, 1, (8, 3, 224, 224)).astype(np.float32) for _ in range(2)]
    xmls = {"f32": xml}
    for target in ("any", "vnni"):
        xmls["INT8 %s" % target] = quantize_ir(
            os.path.join(tmp, "igcv3_d-ir.onnx"), os.path.join(tmp, "igcv3_d-" + target),
            calib, target=target, max_drop=100.0, max_restore=0).xml
    for batch in (1, 16):
        fns = {"igcv3_d_1.0 %s" % k: openvino_inference(v, batch, 224, "f32")
               for k, v in xmls.items()}
        medians = interleaved_medians(fns, rounds=rounds, repeat=repeat, settle=3)
        print("\n### IGCV3-D 1.0 in OpenVINO, batch %d, int8 kernels: %s\n"
              % (batch, isa_label("openvino")))
        print(ratio_table(medians, next(iter(fns))))


def main():
    args = command_line(__doc__.split("\n")[0], run=("runs/demo", "a digits run (make demo's)"),
                            rounds=10, repeat=5)
    if not os.path.isfile(os.path.join(args.run, "summary.json")):
        sys.exit("int8_cpu_kinds.py: error: --run %s is not a finished digits run (no "
                 "summary.json): run `make demo`, or give a train_cifar.py run folder" % args.run)
    with tempfile.TemporaryDirectory() as tmp:
        digits_accuracy(args.run, tmp)
        speed(tmp, args.rounds, args.repeat)


if __name__ == "__main__":
    main()
