#!/usr/bin/env python
"""Inference latency at 224x224, side by side in one process (issue 7). Prints medians and
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
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.simplefilter("ignore", UserWarning)

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

import igcv3_gluon  # noqa: E402
from igcv3_gluon.deploy import export, export_onnx, load_symbolblock  # noqa: E402
from igcv3_gluon.deploy.bench import (gluoncv_mobilenetv2, interleaved_medians,  # noqa: E402
                                      onnx_inference, ratio_table)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = prepare(tmp)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
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
