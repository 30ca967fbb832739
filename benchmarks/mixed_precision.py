#!/usr/bin/env python
"""Training speed in float32 and bfloat16 (MXNet AMP on oneDNN), IGCV3-D 1.0 and GluonCV's
MobileNetV2 1.0 at 224x224. Prints images/s and ratios; never asserts.

    python benchmarks/mixed_precision.py [--batch 16] [--rounds 3] [--iters 3]

AMP switches MXNet process-wide, so one process cannot time both precisions: each
measurement runs in a child process, and the configurations alternate round by round
(fp32, bf16, fp32, bf16, ...) so that the machine's load falls on all alike; medians.
"""
import json
import subprocess
import sys

import numpy as np

from common import ROOT, command_line  # puts the project on sys.path

CHILD = r"""
import json, sys, time
sys.path.insert(0, %(root)r)
import mxnet as mx
from igcv3_gluon.train import precision
dtype, name, batch, iters = %(dtype)r, %(name)r, %(batch)d, %(iters)d
precision.enable(dtype)
from igcv3_gluon.deploy.bench import mxnet_training
if name.startswith("gluoncv"):
    from igcv3_gluon.deploy.bench import gluoncv_mobilenetv2
    net = gluoncv_mobilenetv2()
else:
    import igcv3_gluon
    net = igcv3_gluon.get_model(name)
    net.initialize(igcv3_gluon.nn.he_normal())
step = mxnet_training(net, batch)
step(); step()
tic = time.perf_counter()
for _ in range(iters):
    step()
print(json.dumps(batch * iters / (time.perf_counter() - tic)))
"""


def measure(dtype, name, batch, iters):
    code = CHILD % dict(root=ROOT, dtype=dtype, name=name, batch=batch, iters=iters)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    args = command_line(__doc__, batch=16, rounds=3, iters=3)
    import mxnet as mx

    from igcv3_gluon.train.precision import check_dtype
    check_dtype("bfloat16", [mx.cpu()])
    configs = [(d, n) for n in ("igcv3_d_1.0", "gluoncv mobilenetv2_1.0")
               for d in ("float32", "bfloat16")]
    rates = {c: [] for c in configs}
    for _ in range(args.rounds):
        for dtype, name in configs:
            rates[(dtype, name)].append(measure(dtype, name, args.batch, args.iters))
    med = {c: float(np.median(v)) for c, v in rates.items()}
    print("training img/s at 224x224, batch %d, median of %d alternating rounds:\n"
          % (args.batch, args.rounds))
    print("| network | float32 | bfloat16 | bfloat16 / float32 |")
    print("|---|---|---|---|")
    for name in ("igcv3_d_1.0", "gluoncv mobilenetv2_1.0"):
        a, b = med[("float32", name)], med[("bfloat16", name)]
        print("| %s | %.1f | %.1f | %.2fx |" % (name, a, b, b / a))
    print("\nigcv3_d_1.0 / mobilenetv2: float32 %.2fx, bfloat16 %.2fx the speed" % (
        med[("float32", "igcv3_d_1.0")] / med[("float32", "gluoncv mobilenetv2_1.0")],
        med[("bfloat16", "igcv3_d_1.0")] / med[("bfloat16", "gluoncv mobilenetv2_1.0")]))


if __name__ == "__main__":
    main()
