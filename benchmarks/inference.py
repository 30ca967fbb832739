#!/usr/bin/env python
"""Inference latency at 224x224, side by side in one process. Prints medians and
ratios; never asserts a time.

    python benchmarks/inference.py [--batch-sizes 1,16] [--rounds 10] [--profile]

MXNet (hybridized, static alloc/shape; "+ fusion" = oneDNN operator fusion through
``optimize_for('MKLDNN')``, what a deployment on a CPU build uses), timed in interleaved
rounds, ratios to GluonCV's ``mobilenetv2_1.0``:

* GluonCV ``mobilenetv2_1.0``; the authors'-style IGCV3-D (``deploy.reference``: grouped
  convs, -4 reshape/swapaxes shuffles, oneDNN BatchNorm);
* ours: ``igcv3_d_1.0``, ``igcv3_w_1.0``, ``mobilenetv2_1.0`` as trained (Gluon) and after
  ``deploy.optimize`` (BatchNorms and shuffles folded).

ONNX Runtime (after the MXNet rounds, its own interleaved rounds), ratios to our
``mobilenetv2_1.0`` exported the same way: the exports as trained and optimised.
``--profile`` adds where the time goes: MXNet's profiler per operator for ``igcv3_d_1.0`` as
trained, and ONNX Runtime's per operator type for the optimised IGCV3-D and MobileNetV2.

OpenVINO (``--runtimes`` picks the sections), ratios to GluonCV's
``mobilenetv2_1.0`` optimised and run the same way: every optimised export converted by
``deploy.openvino.to_openvino`` and compiled at float32 (``f32``) and at the CPU plugin's
default precision (``default``: bfloat16 where the CPU has AVX512-BF16/AMX); IGCV3-D with the
``--grouped`` fold; the same ONNX files in ONNX Runtime (OpenVINO / ONNX Runtime ratio); NNCF
INT8 (``quantize_ir``, calibrated on random images: speed only) of IGCV3-D and MobileNetV2;
and a bound that no fold can beat: IGCV3-D built without P1 (``p1=False``: both 1x1
convolutions grouped and nothing to fold; the same MAdds, not the same function).
Each round times ``--repeat`` consecutive calls of a network (default 10) after 3 untimed
ones: OpenVINO's threads keep spinning after a call, and on 2 cores a network timed right
after another one shares the cores with them (without it every batch-1 time grows by about
0.5-1 ms and the ratios shrink toward 1).
"""
import collections
import json
import logging
import os
import tempfile
import time
import warnings

from common import command_line  # noqa: E402 (puts the project on sys.path)

warnings.simplefilter("ignore", UserWarning)

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

import igcv3_gluon  # noqa: E402
from igcv3_gluon.deploy import export, export_onnx, load_symbolblock  # noqa: E402
from igcv3_gluon.deploy.bench import (  # noqa: E402
    gluoncv_mobilenetv2,
    interleaved_medians,
    onnx_inference,
    openvino_inference,
    ratio_table,
)
from igcv3_gluon.deploy.optimize import optimize_files  # noqa: E402
from igcv3_gluon.deploy.reference import authors_net  # noqa: E402
from igcv3_gluon.nn import init_like_trained  # noqa: E402

OURS = ("igcv3_d_1.0", "igcv3_w_1.0", "mobilenetv2_1.0")
BASE = "gluoncv mobilenetv2_1.0"


def random_trained(name):
    """A zoo model with random weights and non-trivial BN statistics (as after training)."""
    return init_like_trained(igcv3_gluon.get_model(name))


def prepare(tmp):
    """Export every network of ours, as trained and optimised; returns the prefixes."""
    prefixes = {}
    for name in OURS:
        net = random_trained(name)
        prefix = os.path.join(tmp, name)
        export(net, prefix)
        optimize_files(prefix, prefix + "-opt")
        prefixes[name] = prefix
    return prefixes


def mxnet_candidates(prefixes, batch, fused):
    x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, 224, 224))
    nets = {BASE: gluoncv_mobilenetv2(), "authors' IGCV3-D": authors_net()}
    for name, prefix in prefixes.items():
        net = random_trained(name)
        nets[name + " (as trained)"] = net
        nets[name + " optimised"] = load_symbolblock(prefix + "-opt")
    fns = {}
    for label, net in nets.items():
        if fused:
            net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
        else:
            net.hybridize(static_alloc=True, static_shape=True)
        fns[label] = (lambda n=net: n(x).wait_to_read())
    return fns


def table(medians, base, title):
    print("\n" + title)
    print(ratio_table(medians, base, header=("network", "time", "ratio")), flush=True)


def mxnet_profile(batch):
    os.environ["MXNET_EXEC_BULK_EXEC_INFERENCE"] = "0"     # one profiler record per operator
    net = random_trained("igcv3_d_1.0")
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, 224, 224))
    for _ in range(3):
        net(x).wait_to_read()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True, continuous_dump=False,
                           filename=os.path.join(tempfile.gettempdir(), "igcv3-profile.json"))
    mx.profiler.set_state("run")
    for _ in range(5):
        net(x).wait_to_read()
    mx.nd.waitall()
    mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(format="json", reset=True))
    ops = collections.Counter()
    for domain in stats.get("Time", {}).values():
        for op, row in domain.items():
            ops[op.split("[")[0]] += row["Total"]
    total = sum(ops.values())
    print("\nMXNet profile, igcv3_d_1.0 as trained, batch %d: share of operator time" % batch)
    print("| operator | share |")
    print("|---|---|")
    for op, t in ops.most_common(8):
        print("| %s | %.0f%% |" % (op, 100 * t / total))


def ort_profile(path, batch, label):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = path + "-profile"
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = np.random.RandomState(0).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
    name = session.get_inputs()[0].name
    for _ in range(10):
        session.run(None, {name: x})
    events = json.load(open(session.end_profiling()))
    ops = collections.Counter()
    for ev in events:
        if ev.get("cat") == "Node" and ev["name"].endswith("kernel_time"):
            ops[ev["args"]["op_name"]] += ev["dur"] / 10.0 / 1e3
    print("\nONNX Runtime profile, %s, batch %d: ms per run by operator type: %s" % (
        label, batch, ", ".join("%s %.2f" % kv for kv in ops.most_common(6))))


def prepare_openvino(tmp, prefixes):
    """IRs (and their ONNX files) of the optimised exports, GluonCV's MobileNetV2, the
    grouped fold, the no-P1 bound, and INT8 IRs; returns ``{label: xml}``."""
    from igcv3_gluon.deploy.openvino import quantize_ir, to_openvino
    logging.getLogger("nncf").setLevel(logging.WARNING)
    sources = {name + " optimised": prefixes[name] for name in OURS}
    gcv = os.path.join(tmp, "gluoncv_mobilenetv2_1.0")
    export(gluoncv_mobilenetv2(like_trained=True), gcv)
    sources[BASE + " optimised"] = gcv
    bound = os.path.join(tmp, "igcv3_d_1.0-no-p1")
    export(init_like_trained(igcv3_gluon.get_model("igcv3_d_1.0", p1=False)), bound)
    sources["igcv3_d_1.0 without P1 (bound)"] = bound
    xmls = {}
    # speed only: these random weights amplify float rounding (a difference of 2.5e-3 at
    # the logits here), so the IR-vs-MXNet check, which the tests run on trained weights,
    # is left out (check_batches=())
    for k, (label, prefix) in enumerate(sources.items()):
        (xmls[label], _), _ = to_openvino(prefix, os.path.join(tmp, "ov%d" % k),
                                          check_batches=())
    (xmls["igcv3_d_1.0 --grouped"], _), _ = to_openvino(
        prefixes["igcv3_d_1.0"], os.path.join(tmp, "ov-grouped"), grouped=True,
        check_batches=())
    calib = [np.random.RandomState(k).uniform(-1, 1, (32, 3, 224, 224)).astype(np.float32)
             for k in range(10)]
    for label in ("igcv3_d_1.0 optimised", BASE + " optimised"):
        out = xmls[label][:-len(".xml")] + "-int8"
        # random images: speed only (the accuracy gate has nothing to measure)
        xmls[label + " INT8"] = quantize_ir(xmls[label][:-len(".xml")] + ".onnx", out, calib,
                                            max_drop=100.0, max_restore=0).xml
    return xmls


OV_BASE = "openvino f32 " + BASE + " optimised"


def openvino_section(xmls, batch, rounds, repeat):
    fns = {}
    for label, xml in xmls.items():
        for precision in (("default",) if label.endswith("INT8") else ("f32", "default")):
            fns["openvino %s %s" % (precision, label)] = openvino_inference(
                xml, batch, precision=precision)
    for label in ("igcv3_d_1.0 optimised", BASE + " optimised"):
        fns["onnxruntime " + label] = onnx_inference(xmls[label][:-len(".xml")] + ".onnx",
                                                     batch)
    medians = interleaved_medians(fns, rounds=rounds, warmup=3, repeat=repeat, settle=3)
    table(medians, OV_BASE, "OpenVINO, batch %d (%d rounds of %d calls)" % (
        batch, rounds, repeat))
    d = "igcv3_d_1.0 optimised"
    print("targets, batch %d:" % batch)
    for precision in ("f32", "default"):
        print("  OpenVINO %s: igcv3_d_1.0 / GluonCV MobileNetV2 %.2fx (target <= 1.2); "
              "bound without P1 %.2fx" % (
                  precision, medians["openvino %s %s" % (precision, d)]
                  / medians["openvino %s %s optimised" % (precision, BASE)],
                  medians["openvino %s igcv3_d_1.0 without P1 (bound)" % precision]
                  / medians["openvino %s %s optimised" % (precision, BASE)]))
    print("  igcv3_d_1.0: OpenVINO f32 / ONNX Runtime %.2fx, default / ONNX Runtime %.2fx "
          "(target <= 0.55)" % (medians["openvino f32 " + d] / medians["onnxruntime " + d],
                                medians["openvino default " + d] / medians["onnxruntime " + d]))
    for label in (d, BASE + " optimised"):
        int8 = medians["openvino default %s INT8" % label]
        print("  %s INT8 speed: %.2fx FP32 (f32), %.2fx FP32 (default precision) "
              "(target >= 1.5)" % (label, medians["openvino f32 " + label] / int8,
                                   medians["openvino default " + label] / int8))
    return medians


def main():
    args = command_line(
            __doc__, batch_sizes="1,16", rounds=10,
            repeat=(10, "OpenVINO: consecutive calls timed per network and round"),
            runtimes=("mxnet,openvino", "sections: mxnet (MXNet then ONNX Runtime), openvino"),
            profile=False)
    runtimes = args.runtimes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = prepare(tmp)
        if "openvino" in runtimes:
            xmls = prepare_openvino(tmp, {n: p + "-opt" for n, p in prefixes.items()})
            for batch in [int(b) for b in args.batch_sizes.split(",")]:
                openvino_section(xmls, batch, args.rounds, args.repeat)
        for batch in [int(b) for b in args.batch_sizes.split(",")] * ("mxnet" in runtimes):
            mx_medians = {}
            for fused in (False, True):
                fns = mxnet_candidates(prefixes, batch, fused)
                medians = interleaved_medians(fns, rounds=args.rounds, warmup=2)
                table(medians, BASE, "MXNet, batch %d%s" % (
                    batch, ", oneDNN fusion (optimize_for) on every network" if fused else
                    ", hybridized"))
                mx_medians[fused] = medians
                del fns
            time.sleep(1.0)                      # let MXNet's OpenMP threads go idle
            onnx_fns, paths = {}, {}
            for name, prefix in prefixes.items():
                for suffix, label in (("", " (as trained)"), ("-opt", " optimised")):
                    path = export_onnx(prefix + suffix, "%s%s-b%d.onnx" % (prefix, suffix, batch),
                                       (batch, 3, 224, 224))
                    paths[name + label] = path
                    onnx_fns[name + label] = onnx_inference(path, batch)
            medians = interleaved_medians(onnx_fns, rounds=args.rounds, warmup=2)
            table(medians, "mobilenetv2_1.0 (as trained)", "ONNX Runtime, batch %d" % batch)
            for name in ("igcv3_d_1.0", "igcv3_w_1.0"):
                print("%s optimised in ONNX Runtime / as trained in MXNet (hybridized): %.2fx; "
                      "/ optimised in MXNet with oneDNN fusion: %.2fx" % (
                          name, medians[name + " optimised"]
                          / mx_medians[False][name + " (as trained)"],
                          medians[name + " optimised"] / mx_medians[True][name + " optimised"]))
            if args.profile:
                mxnet_profile(batch)
                ort_profile(paths["igcv3_d_1.0 optimised"], batch, "igcv3_d_1.0 optimised")
                ort_profile(paths["mobilenetv2_1.0 optimised"], batch,
                            "mobilenetv2_1.0 optimised")


if __name__ == "__main__":
    main()
