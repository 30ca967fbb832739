"""``make demo``: the main job on this machine, with nothing to download.

1. prints the complexity table of every zoo model beside the paper (Tables 1, 2, 3, 5);
2. checks the complementary condition of every block of IGCV3-D;
3. exports IGCV3-D 1.0 to symbol/params (and ONNX), reloads both and compares outputs.
"""
import argparse
import os
import sys
import time

import mxnet as mx
import numpy as np

from . import complexity, get_model
from .deploy import export, export_onnx, load_module, load_symbolblock
from .nn.complementary import check_network


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", default="runs/demo", help="where the export goes")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX conversion")
    args = parser.parse_args(argv)

    print("## Size of every zoo model (python -m igcv3_gluon.complexity)\n")
    print(complexity.markdown(complexity.table()))

    name, shape = "igcv3_d_1.0", (1, 3, 224, 224)
    net = get_model(name)
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    reports = check_network(net)
    dense = sum(r.dense for _, r in reports)
    print("\n## Complementary condition, %s: %d of %d blocks dense, loose condition holds in %d"
          % (name, dense, len(reports), sum(bool(r.loose) for _, r in reports)))

    prefix = os.path.join(args.out_dir, name)
    x = mx.nd.random.uniform(shape=shape)
    t0 = time.time()
    reference = net(x).asnumpy()
    sym_file, params_file = export(net, prefix, shape)
    print("\n## Export\nwrote %s and %s (%.1fs)" % (sym_file, params_file, time.time() - t0))
    diff_sb = np.abs(load_symbolblock(prefix)(x).asnumpy() - reference).max()
    mod = load_module(prefix, input_shape=shape)
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    diff_mod = np.abs(mod.get_outputs()[0].asnumpy() - reference).max()
    print("reloaded with gluon.SymbolBlock.imports: max |diff| = %.2e" % diff_sb)
    print("reloaded with mx.mod.Module:             max |diff| = %.2e" % diff_mod)
    if not args.no_onnx:
        import onnxruntime as ort
        path = export_onnx(prefix, prefix + ".onnx", shape)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        out = sess.run(None, {"data": x.asnumpy()})[0]
        print("ONNX (%s) in onnxruntime:    max |diff| = %.2e"
              % (path, np.abs(out - reference).max()))
    print("\nLoad it yourself:\n  net = mx.gluon.SymbolBlock.imports('%s', ['data'], '%s')"
          % (sym_file, params_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
