"""Exact size of a network: trainable parameters and multiply-adds, read off its graph.

``python -m igcv3_gluon.complexity`` prints every zoo model beside the paper's figures
(Tables 1, 2, 3, 5).

Conventions (reference.md, "Size targets"): parameters are every argument of the
hybridized graph except the data (conv/FC weights and biases, BN gamma and beta); BN running
statistics are auxiliary states and are not counted. MAdds are the multiply-adds of the
convolutions (``out_h * out_w * num_filter * k_h * k_w * C_in / groups``) and fully
connected layers (``in * out``) for one image.
"""
import argparse
import json
import sys
from collections import Counter

import mxnet as mx
import numpy as np
from tqdm import tqdm

from .errors import started
from .models import get_model, list_models, model_info

__all__ = ["GraphStats", "graph_stats", "count", "table", "main"]


class GraphStats:
    """What :func:`graph_stats` reads off a symbol: ``params``, ``madds``, ``params_fc``
    (the last FullyConnected layer's weight and bias) and ``ops`` (a Counter of op names,
    plus ``"shuffle"``: the channel shuffles)."""

    def __init__(self, params, madds, params_fc, ops):
        self.params, self.madds, self.params_fc, self.ops = params, madds, params_fc, ops

    @property
    def params_without_fc(self):
        return self.params - self.params_fc


def _symbol_of(net):
    if isinstance(net, mx.sym.Symbol):
        return net
    out = net(mx.sym.var("data"))
    return out[0] if isinstance(out, (list, tuple)) else out


def graph_stats(net, input_shape):
    """Count a Gluon HybridBlock (traced on ``mx.sym.var('data')``) or a Symbol; MAdds are
    per image whatever the batch size in ``input_shape``."""
    sym = _symbol_of(net)
    arg_shapes, _, _ = sym.infer_shape(data=input_shape)
    shapes = dict(zip(sym.list_arguments(), arg_shapes))
    inputs = {"data", "softmax_label"}
    if not isinstance(net, mx.sym.Symbol):     # constants (SSD's anchor tables) are not weights
        inputs |= {n for n, p in net.collect_params().items() if p.grad_req == "null"}
    params = sum(int(np.prod(s)) for n, s in shapes.items() if n not in inputs)

    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=input_shape)
    out_shape = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())["nodes"]
    madds, params_fc, ops = 0, 0, Counter()
    for node in nodes:
        op = node["op"]
        if op == "null":
            continue
        ops[op] += 1
        attrs = node.get("attrs", {})
        if op == "SwapAxis" and attrs.get("dim1", "0") != attrs.get("dim2", "0"):
            ops["shuffle"] += 1         # ChannelShuffle; SwapAxis(0, 0) is FlatBatchNorm's copy
        weight = nodes[node["inputs"][1][0]]["name"] if len(node["inputs"]) > 1 else None
        if op == "Convolution":
            out = out_shape[node["name"] + "_output"]
            madds += int(np.prod(out[2:])) * int(np.prod(shapes[weight]))
        elif op == "FullyConnected":
            w = int(np.prod(shapes[weight]))
            madds += w
            bias = 0 if node["attrs"].get("no_bias", "False") == "True" else \
                int(np.prod(shapes[nodes[node["inputs"][2][0]]["name"]]))
            params_fc = w + bias
    return GraphStats(params, madds, params_fc, ops)


def count(net, input_shape=(1, 3, 224, 224)):
    """``(params, madds)`` of ``net`` for one image of ``input_shape`` (batch dim included)."""
    stats = graph_stats(net, (1,) + tuple(input_shape[1:]))
    return stats.params, stats.madds


def _fmt_m(value):
    return "-" if value is None else "%.2fM" % (value / 1e6)


def _dev(ours, paper):
    if paper is None:
        return "-"
    return "%+.2fM" % ((ours - paper) / 1e6) if paper > 1e4 else "-"


def table(names=None, progress=True):
    """Rows (dicts) for the zoo models ``names`` (default: all)."""
    rows = []
    names = list(names or list_models())
    iterator = names
    if progress and sys.stderr.isatty():
        iterator = tqdm(names, desc="counting", leave=False)
    for name in iterator:
        info = model_info(name)
        stats = graph_stats(get_model(name), info.input_shape)
        paper = info.paper
        ours = stats.params if paper.get("with_fc", True) else stats.params_without_fc
        row = dict(name=name, input="%dx%d" % info.input_shape[2:], params=stats.params,
                   params_without_fc=stats.params_without_fc, madds=stats.madds,
                   compared=ours, paper_params=paper.get("params"),
                   paper_madds=paper.get("madds"), source=paper.get("source", ""))
        row["params_dev"] = None if not row["paper_params"] else ours - row["paper_params"]
        row["madds_dev"] = (None if row["paper_madds"] is None
                            else stats.madds / row["paper_madds"] - 1)
        rows.append(row)
    return rows


def markdown(rows):
    lines = ["| model | input | params | params w/o FC | MAdds | paper params | deviation "
             "| paper MAdds | deviation | source |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %s | %s | %.1fM | %s%s | %s | %s | %s | %s |" % (
            r["name"], r["input"], "{:,}".format(r["params"]),
            "{:,}".format(r["params_without_fc"]), r["madds"] / 1e6,
            _fmt_m(r["paper_params"]), "" if r["compared"] == r["params"] else " (w/o FC)",
            _dev(r["compared"], r["paper_params"]),
            "-" if r["paper_madds"] is None else "%.0fM" % (r["paper_madds"] / 1e6),
            "-" if r["madds_dev"] is None else "%+.1f%%" % (100 * r["madds_dev"]),
            r["source"]))
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m igcv3_gluon.complexity",
        description="Parameters and MAdds of the zoo models beside the paper's figures.")
    parser.add_argument("models", nargs="*", help="zoo names (default: every model)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead")
    return parser


def main(argv=None):
    started()
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        parser.exit(2, "%s: error: unknown model %s; known: %s\n"
                    % (parser.prog, ", ".join(unknown), ", ".join(list_models())))
    rows = table(args.models or None)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
