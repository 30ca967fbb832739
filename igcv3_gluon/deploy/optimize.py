"""Inference-time graph optimisation of an exported network (symbol + params).

Two rewrites, both exact up to float rounding (tests: max |diff| < 1e-4 on the logits):

* **BatchNorm folding.** ``Conv -> BN`` (and our ``FlatBatchNorm`` chain ``Conv -> reshape ->
  BN -> reshape_like -> copy``) becomes one convolution with a bias:
  ``W' = W * gamma / sqrt(var + eps)``, ``b' = beta + (b - mean) * gamma / sqrt(var + eps)``.
* **Permutation folding** (the P1/P2 of eq. (7)). A channel permutation that follows a 1x1
  convolution is a permutation of that convolution's output channels, ``P W``; one that
  feeds a 1x1 convolution is a permutation of its input channels, ``W P``. Either way the
  shuffle disappears from the graph. A *group* convolution whose outputs are permuted is no
  longer block-diagonal in the same groups, so it is written as a dense 1x1 convolution
  holding the (permuted) block-diagonal weights: oneDNN and ONNX Runtime run a dense 1x1
  convolution about as fast as the grouped one of the same shape on the CPU (measured,
  docs/benchmarks.md), and it costs no copy of the activations, which the shuffle did.
  ``fold_shuffles=False`` keeps the group convolutions and the shuffles.

The rewrites work on MXNet's symbol JSON, so they apply to any export (IGCV3, MobileNetV2,
IGCV1/2) and the result exports to symbol/params and ONNX like the original.
"""
import json
import os

import mxnet as mx
import numpy as np

__all__ = ["optimize", "optimize_files", "shuffle_permutation"]


def shuffle_permutation(channels, groups):
    """``perm`` with ``shuffled[:, j] = x[:, perm[j]]`` for ``ChannelShuffle(groups)``: output
    channel ``i * groups + k`` is input channel ``k * (C / groups) + i``."""
    per = channels // groups
    return np.array([k * per + i for i in range(per) for k in range(groups)], dtype=np.int64)


def _tuple(text):
    return tuple(int(v) for v in text.strip("()[] ").split(",") if v.strip() not in ("", "None"))


class _Graph:
    """Symbol JSON nodes with consumer lookup and rewiring."""

    def __init__(self, sym, arg_params, aux_params):
        graph = json.loads(sym.tojson())
        self.nodes = graph["nodes"]
        self.heads = graph["heads"]
        self.attrs = graph.get("attrs", {})
        self.args = {k: v.asnumpy() for k, v in arg_params.items()}
        self.aux = {k: v.asnumpy() for k, v in aux_params.items()}

    def consumers(self, nid):
        """``[(consumer id, input position)]`` of node ``nid``'s output 0."""
        return [(j, pos) for j, node in enumerate(self.nodes)
                for pos, inp in enumerate(node["inputs"]) if inp[0] == nid and inp[1] == 0]

    def head_uses(self, nid):
        return any(h[0] == nid for h in self.heads)

    def redirect(self, old, new):
        for node in self.nodes:
            node["inputs"] = [[new, 0, 0] if inp[0] == old and inp[1] == 0 else inp
                              for inp in node["inputs"]]
        self.heads = [[new, 0, 0] if h[0] == old and h[1] == 0 else h for h in self.heads]

    def op(self, nid):
        return self.nodes[nid]["op"]

    def attr(self, nid, key, default=None):
        return self.nodes[nid].get("attrs", {}).get(key, default)

    def param_name(self, nid, pos):
        return self.nodes[self.nodes[nid]["inputs"][pos][0]]["name"]

    def add_param(self, name, value):
        self.nodes.append({"op": "null", "name": name, "inputs": []})
        self.args[name] = value
        return len(self.nodes) - 1

    def conv_weight(self, cid):
        return self.args[self.param_name(cid, 1)]

    def conv_bias(self, cid):
        if self.attr(cid, "no_bias", "False") == "True":
            return None
        return self.args[self.param_name(cid, 2)]

    def set_conv(self, cid, weight, bias, groups=None):
        """Give conv ``cid`` new weights and a bias (added when it had none)."""
        self.args[self.param_name(cid, 1)] = weight.astype(np.float32)
        node = self.nodes[cid]
        wnode = self.nodes[node["inputs"][1][0]]
        if "__shape__" in wnode.get("attrs", {}):        # Gluon's shape hint must follow
            wnode["attrs"]["__shape__"] = str(tuple(weight.shape))
        if self.conv_bias(cid) is None:
            bid = self.add_param(node["name"] + "_folded_bias", bias.astype(np.float32))
            node["inputs"] = node["inputs"][:2] + [[bid, 0, 0]]
            node["attrs"]["no_bias"] = "False"
        else:
            self.args[self.param_name(cid, 2)] = bias.astype(np.float32)
        if groups is not None:
            node["attrs"]["num_group"] = str(groups)

    def dense_weight(self, cid):
        """The conv's weight as a dense (block-diagonal) tensor (Cout, Cin, kh, kw)."""
        w = self.conv_weight(cid)
        groups = int(self.attr(cid, "num_group", "1"))
        if groups == 1:
            return w
        cout, cin_g = w.shape[:2]
        dense = np.zeros((cout, cin_g * groups) + w.shape[2:], dtype=w.dtype)
        per = cout // groups
        for g in range(groups):
            dense[g * per:(g + 1) * per, g * cin_g:(g + 1) * cin_g] = w[g * per:(g + 1) * per]
        return dense

    def to_symbol(self):
        """Keep the nodes reachable from the heads, in topological order."""
        order, seen = [], {}

        def visit(nid):
            if nid in seen:
                return
            seen[nid] = None
            for inp in self.nodes[nid]["inputs"]:
                visit(inp[0])
            seen[nid] = len(order)
            order.append(nid)
        import sys
        sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
        for h in self.heads:
            visit(h[0])
        nodes = []
        for nid in order:
            node = dict(self.nodes[nid])
            node["inputs"] = [[seen[i[0]], i[1], i[2]] for i in node["inputs"]]
            nodes.append(node)
        graph = {"nodes": nodes, "arg_nodes": [i for i, n in enumerate(nodes) if n["op"] == "null"],
                 "heads": [[seen[h[0]], h[1], h[2]] for h in self.heads], "attrs": self.attrs}
        sym = mx.sym.load_json(json.dumps(graph))
        names = set(sym.list_arguments())
        aux_names = set(sym.list_auxiliary_states())
        args = {k: mx.nd.array(v) for k, v in self.args.items() if k in names}
        aux = {k: mx.nd.array(v) for k, v in self.aux.items() if k in aux_names}
        return sym, args, aux


def _fold_batchnorms(g):
    folded = 0
    for bid, node in enumerate(g.nodes):
        if node["op"] != "BatchNorm":
            continue
        src = node["inputs"][0][0]
        tail = bid
        if g.op(src) == "Reshape" and _tuple(g.attr(src, "shape")) == (0, 0, -1):
            conv = g.nodes[src]["inputs"][0][0]
            uses = g.consumers(bid)
            if len(uses) != 1 or g.op(uses[0][0]) != "reshape_like":
                continue
            like = uses[0][0]
            if g.nodes[like]["inputs"][1][0] != conv:
                continue
            tail = like
            after = g.consumers(like)
            if (len(after) == 1 and g.op(after[0][0]) == "SwapAxis"
                    and g.attr(after[0][0], "dim1") == g.attr(after[0][0], "dim2")):
                tail = after[0][0]
            if sorted(j for j, _ in g.consumers(conv)) != sorted([src, like]):
                continue
        else:
            conv = src
            if len(g.consumers(conv)) != 1 or g.head_uses(conv):
                continue
        if g.op(conv) != "Convolution" or g.head_uses(conv):
            continue
        eps = float(g.attr(bid, "eps", "1e-3"))
        gamma = g.args[g.param_name(bid, 1)]
        if g.attr(bid, "fix_gamma", "True") == "True":
            gamma = np.ones_like(gamma)
        beta = g.args[g.param_name(bid, 2)]
        mean, var = g.aux[g.param_name(bid, 3)], g.aux[g.param_name(bid, 4)]
        scale = gamma / np.sqrt(var + eps)
        w = g.conv_weight(conv)
        b = g.conv_bias(conv)
        b = np.zeros_like(mean) if b is None else b
        g.set_conv(conv, w * scale.reshape(-1, 1, 1, 1), beta + (b - mean) * scale)
        g.redirect(tail, conv)
        folded += 1
    return folded


def _shuffles(g):
    """``(reshape, swapaxes, reshape_like, input, groups)`` of every channel shuffle."""
    found = []
    for rid, node in enumerate(g.nodes):
        if node["op"] != "Reshape":
            continue
        shape = _tuple(g.attr(rid, "shape", "()"))
        if len(shape) != 4 or shape[0] != 0 or shape[3] != -1:
            continue
        uses = g.consumers(rid)
        if len(uses) != 1 or g.op(uses[0][0]) != "SwapAxis":
            continue
        sid = uses[0][0]
        if {g.attr(sid, "dim1"), g.attr(sid, "dim2")} != {"1", "2"}:
            continue
        after = g.consumers(sid)
        if len(after) != 1 or g.op(after[0][0]) != "reshape_like":
            continue
        lid = after[0][0]
        src = node["inputs"][0][0]
        if g.nodes[lid]["inputs"][1][0] != src:
            continue
        found.append((rid, sid, lid, src, shape[1]))
    return found


def _fold_shuffles(g):
    folded = 0
    for rid, sid, lid, src, groups in _shuffles(g):
        pulled = (g.op(src) == "Convolution" and _tuple(g.attr(src, "kernel")) == (1, 1)
                  and sorted(j for j, _ in g.consumers(src)) == sorted([rid, lid])
                  and not g.head_uses(src))
        if pulled:                                   # P W: permute the conv's outputs
            w = g.dense_weight(src)
            perm = shuffle_permutation(w.shape[0], groups)
            b = g.conv_bias(src)
            b = np.zeros(w.shape[0], np.float32) if b is None else b
            g.set_conv(src, w[perm], b[perm], groups=1)
            g.redirect(lid, src)
            folded += 1
            continue
        uses = g.consumers(lid)
        if (len(uses) == 1 and uses[0][1] == 0 and g.op(uses[0][0]) == "Convolution"
                and _tuple(g.attr(uses[0][0], "kernel")) == (1, 1) and not g.head_uses(lid)):
            cid = uses[0][0]                         # W P: permute the conv's inputs
            w = g.dense_weight(cid)
            perm = shuffle_permutation(w.shape[1], groups)
            permuted = np.empty_like(w)
            permuted[:, perm] = w
            b = g.conv_bias(cid)
            b = np.zeros(w.shape[0], np.float32) if b is None else b
            g.set_conv(cid, permuted, b, groups=1)
            g.nodes[cid]["inputs"][0] = [src, 0, 0]
            folded += 1
    return folded


def optimize(sym, arg_params, aux_params, fold_bn=True, fold_shuffles=True):
    """Rewrite an inference graph; returns ``(sym, arg_params, aux_params, report)`` where
    ``report`` counts the folded BatchNorms and shuffles and the shuffles left."""
    g = _Graph(sym, arg_params, aux_params)
    report = {"batchnorms_folded": _fold_batchnorms(g) if fold_bn else 0}
    g = _Graph(*g.to_symbol())                      # drop the nodes folded away
    report["shuffles_folded"] = _fold_shuffles(g) if fold_shuffles else 0
    if fold_bn and report["shuffles_folded"]:       # BNs behind a folded shuffle (IGCV1)
        g = _Graph(*g.to_symbol())
        report["batchnorms_folded"] += _fold_batchnorms(g)
    sym, args, aux = g.to_symbol()
    g2 = _Graph(sym, args, aux)
    report["shuffles_left"] = len(_shuffles(g2))
    report["batchnorms_left"] = sum(n["op"] == "BatchNorm" for n in g2.nodes)
    return sym, args, aux, report


def optimize_files(prefix, out_prefix, epoch=0, **kwargs):
    """``optimize`` an export ``prefix`` into ``out_prefix-symbol.json`` / ``-0000.params``."""
    from .export import artifact_paths
    sym, args, aux = mx.model.load_checkpoint(prefix, epoch)
    sym, args, aux, report = optimize(sym, args, aux, **kwargs)
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    mx.model.save_checkpoint(out_prefix, 0, sym, args, aux)
    return artifact_paths(out_prefix, 0), report
