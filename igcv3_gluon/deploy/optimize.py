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
  ``fold_shuffles=False`` keeps the group convolutions and the shuffles; ``grouped=True``
  folds IGCV3 blocks' shuffles while keeping both 1x1 convolutions grouped (the projection
  becomes a G1*G2-group conv whose G1 partial outputs are summed): exact too, but measured
  slower than the dense fold in ONNX Runtime (1.58x vs 1.48x MobileNetV2 at batch 1) and
  in oneDNN, so it is not the default.

The rewrites work on MXNet's symbol JSON, so they apply to any export (IGCV3, MobileNetV2,
IGCV1/2) and the result exports to symbol/params and ONNX like the original.
"""
import json
import os

import mxnet as mx
import numpy as np

from ..errors import CheckFailed
from ..nn.layers import shuffle_permutation
from ..utils import refuse_overwrite, staged
from .export import (
    EXPORT_SUFFIXES,
    artifact_paths,
    copy_meta,
    export_files,
    export_inputs,
    load_symbolblock,
)

__all__ = ["optimize", "optimize_files", "max_difference", "OPTIMIZE_TOLERANCE"]


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
        """Keep the nodes reachable from the heads, in topological order (an explicit stack:
        graphs of hundreds of layers are deeper than Python's recursion limit)."""
        order, seen = [], {}
        for h in self.heads:
            stack = [(h[0], False)]
            while stack:
                nid, expanded = stack.pop()
                if expanded:
                    seen[nid] = len(order)
                    order.append(nid)
                    continue
                if nid in seen:
                    continue
                seen[nid] = None
                stack.append((nid, True))
                for inp in reversed(self.nodes[nid]["inputs"]):
                    if inp[0] not in seen:
                        stack.append((inp[0], False))
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


def _single_use(g, nid, op):
    """The one consumer of ``nid`` if it is an ``op`` node reading it as its data, else None."""
    uses = g.consumers(nid)
    if len(uses) == 1 and uses[0][1] == 0 and g.op(uses[0][0]) == op and not g.head_uses(nid):
        return uses[0][0]
    return None


def _grouped_pattern(g, lid, a, g1):
    """``(d, b, g2, perm, order)`` when the shuffle ``lid`` after A (G1 groups) feeds a
    depthwise 3x3 ``d`` -> ReLU6 -> a G2-group 1x1 ``b`` whose (branch of A, branch of B)
    pairs are equal-sized, else None. ``perm``: post-shuffle position j <- channel perm[j];
    ``order``: new channel k <- position order[k], sorted by (branch of A, branch of B)."""
    d = _single_use(g, lid, "Convolution")
    if d is None or _tuple(g.attr(d, "kernel")) != (3, 3):
        return None
    m = g.conv_weight(a).shape[0]
    if int(g.attr(d, "num_group", "1")) != m:
        return None
    act = _single_use(g, d, "clip")
    b = _single_use(g, act, "Convolution") if act is not None else None
    if b is None or _tuple(g.attr(b, "kernel")) != (1, 1):
        return None
    g2 = int(g.attr(b, "num_group", "1"))
    if g2 == 1 or m % (g1 * g2) or g.conv_weight(b).shape[0] % g2:
        return None
    perm = shuffle_permutation(m, g1)
    producer = perm // (m // g1)                     # branch of A feeding position j
    consumer = np.arange(m) // (m // g2)             # branch of B reading position j
    order = np.lexsort((np.arange(m), consumer, producer))
    sizes = np.bincount(producer * g2 + consumer, minlength=g1 * g2)
    if (sizes != m // (g1 * g2)).any():
        return None
    return d, b, g2, perm, order


def _grouped_weights(wb, order, g1, g2):
    """B's weight as a G1*G2-group conv with G1 x C_out outputs: group (p, q) reads the
    channels of A's branch p that B's branch q read, and writes B's branch q."""
    m, cout = len(order), wb.shape[0]
    per_in, per_out = m // (g1 * g2), cout // g2
    new_w = np.zeros((g1 * cout, per_in) + wb.shape[2:], np.float32)
    for p in range(g1):
        for q in range(g2):
            group = p * g2 + q
            positions = order[group * per_in:(group + 1) * per_in]
            new_w[group * per_out:(group + 1) * per_out] = \
                wb[q * per_out:(q + 1) * per_out, positions - q * (m // g2)]
    return new_w


def _sum_partial_outputs(g, b, g1, cout):
    """B's G1 slices of ``cout`` channels added up (``slice_axis`` + ``elemwise_add``); B's
    consumers and the heads read the sum."""
    name = g.nodes[b]["name"]
    parts = []
    for p in range(g1):
        g.nodes.append({"op": "slice_axis", "name": "%s_part%d" % (name, p),
                        "attrs": {"axis": "1", "begin": str(p * cout), "end": str((p + 1) * cout)},
                        "inputs": [[b, 0, 0]]})
        parts.append(len(g.nodes) - 1)
    total = parts[0]
    for k, part in enumerate(parts[1:]):
        g.nodes.append({"op": "elemwise_add", "name": "%s_sum%d" % (name, k),
                        "inputs": [[total, 0, 0], [part, 0, 0]]})
        total = len(g.nodes) - 1
    for node in g.nodes:
        if node.get("op") == "slice_axis" and node["inputs"][0][0] == b:
            continue
        node["inputs"] = [[total, 0, 0] if i[0] == b and i[1] == 0 else i
                          for i in node["inputs"]]
    g.heads = [[total, 0, 0] if h[0] == b and h[1] == 0 else h for h in g.heads]


def _fold_shuffle_grouped(g, rid, lid, a, g1, a_act=None):
    """Grouped form of ``A (G1 groups) [-> ReLU6] -> shuffle -> Dw3x3 -> ReLU6 -> B (G2
    groups)`` (``a_act``: the activation between A and the shuffle, if any).

    The intermediate channels are reordered by (branch of A, branch of B): A stays a G1-group
    conv (its outputs only move inside their group), the depthwise conv and ReLU6 follow the
    new order, and B becomes a G1*G2-group conv with G1 x C_out outputs whose G1 partial sums
    are added (``slice_axis`` + ``elemwise_add`` on the narrow C_out side). Same MACs as the
    original group convs, no shuffle, no dense conv. Returns False if the pattern differs."""
    found = _grouped_pattern(g, lid, a, g1)
    if found is None:
        return False
    d, b, g2, perm, order = found
    m = len(order)
    wa, ba = g.conv_weight(a), g.conv_bias(a)
    ba = np.zeros(m, np.float32) if ba is None else ba
    g.set_conv(a, wa[perm[order]], ba[perm[order]])
    wd, bd = g.conv_weight(d), g.conv_bias(d)
    bd = np.zeros(m, np.float32) if bd is None else bd
    g.set_conv(d, wd[order], bd[order])
    g.nodes[d]["inputs"][0] = [a_act if a_act is not None else a, 0, 0]
    wb, bb = g.conv_weight(b), g.conv_bias(b)
    cout = wb.shape[0]
    new_b = np.zeros(g1 * cout, np.float32)
    new_b[:cout] = 0 if bb is None else bb
    g.set_conv(b, _grouped_weights(wb, order, g1, g2), new_b, groups=g1 * g2)
    g.nodes[b]["attrs"]["num_filter"] = str(g1 * cout)
    _sum_partial_outputs(g, b, g1, cout)
    return True


_ELEMENTWISE = ("clip", "relu", "Activation")


def _producer(g, src, rid, lid):
    """``(conv, activation)`` when the shuffle (reshape ``rid``, reshape_like ``lid``) reads a
    1x1 convolution used by nothing else, directly or through one element-wise activation
    used by nothing else: a permutation commutes with an element-wise function, so the
    shuffle can be folded into that convolution's outputs. Else ``(None, None)``."""
    act = None
    if g.op(src) in _ELEMENTWISE:
        if sorted(j for j, _ in g.consumers(src)) != sorted([rid, lid]) or g.head_uses(src):
            return None, None
        act, src = src, g.nodes[src]["inputs"][0][0]
        users = [act]
    else:
        users = [rid, lid]
    if (g.op(src) == "Convolution" and _tuple(g.attr(src, "kernel")) == (1, 1)
            and sorted(j for j, _ in g.consumers(src)) == sorted(users)
            and not g.head_uses(src)):
        return src, act
    return None, None


def _fold_shuffles(g, grouped=False):
    folded = 0
    for rid, sid, lid, _, groups in _shuffles(g):
        # the shuffle's input as the graph stands now: an earlier fold may have rewired it
        src = g.nodes[rid]["inputs"][0][0]
        if g.nodes[lid]["inputs"][1][0] != src:
            continue
        conv, act = _producer(g, src, rid, lid)
        if (grouped and conv is not None and int(g.attr(conv, "num_group", "1")) == groups
                and _fold_shuffle_grouped(g, rid, lid, conv, groups, act)):
            folded += 1
            continue
        if conv is not None:                         # P W: permute the conv's outputs
            w = g.dense_weight(conv)
            perm = shuffle_permutation(w.shape[0], groups)
            b = g.conv_bias(conv)
            b = np.zeros(w.shape[0], np.float32) if b is None else b
            g.set_conv(conv, w[perm], b[perm], groups=1)
            g.redirect(lid, act if act is not None else conv)
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


def optimize(sym, arg_params, aux_params, fold_bn=True, fold_shuffles=True, grouped=False):
    """Rewrite an inference graph; returns ``(sym, arg_params, aux_params, report)`` where
    ``report`` counts the folded BatchNorms and shuffles and the shuffles left.
    ``grouped=True`` keeps IGCV3 blocks' 1x1 convs grouped (``_fold_shuffle_grouped``;
    faster in ONNX Runtime, whose group convs skip the zeros a dense fold would multiply);
    shuffles that do not fit that pattern are folded densely."""
    g = _Graph(sym, arg_params, aux_params)
    report = {"batchnorms_folded": _fold_batchnorms(g) if fold_bn else 0}
    g = _Graph(*g.to_symbol())                      # drop the nodes folded away
    report["shuffles_folded"] = _fold_shuffles(g, grouped) if fold_shuffles else 0
    if fold_bn and report["shuffles_folded"]:       # BNs behind a folded shuffle (IGCV1)
        g = _Graph(*g.to_symbol())
        report["batchnorms_folded"] += _fold_batchnorms(g)
    sym, args, aux = g.to_symbol()
    g2 = _Graph(sym, args, aux)
    report["shuffles_left"] = len(_shuffles(g2))
    report["batchnorms_left"] = sum(n["op"] == "BatchNorm" for n in g2.nodes)
    return sym, args, aux, report


OPTIMIZE_TOLERANCE = 1e-3


def max_difference(prefix_a, prefix_b, shape):
    """Max |a - b| of the outputs of two exports on one random batch of ``shape``."""
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, shape))
    a = load_symbolblock(prefix_a)(x).asnumpy()
    b = load_symbolblock(prefix_b)(x).asnumpy()
    return float(np.abs(a - b).max())


def optimize_files(prefix, out_prefix, epoch=0, check_shape=None, **kwargs):
    """``optimize`` the export ``prefix`` into ``out_prefix-symbol.json`` / ``-0000.params``
    (+ ``-meta.json``). With ``check_shape`` the result runs beside the original on a random
    batch of that shape: ``report["max_diff"]``, and above 1e-3 ``CheckFailed``. The files are
    written under temporary names and named only once checked; outputs that are the input's
    own files (however spelled) are refused before anything is written."""
    refuse_overwrite(export_files(out_prefix), export_inputs(prefix, epoch))
    sym, args, aux = mx.model.load_checkpoint(prefix, epoch)
    sym, args, aux, report = optimize(sym, args, aux, **kwargs)
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    with staged(out_prefix, EXPORT_SUFFIXES) as stage:
        mx.model.save_checkpoint(stage, 0, sym, args, aux)
        copy_meta(prefix, stage, optimized=True)
        if check_shape is not None:
            report["max_diff"] = max_difference(prefix, stage, check_shape)
            if report["max_diff"] > OPTIMIZE_TOLERANCE:
                raise CheckFailed("the optimised graph differs from the original by %.2e: not "
                                  "written" % report["max_diff"], report["max_diff"],
                                  OPTIMIZE_TOLERANCE)
    return artifact_paths(out_prefix, 0), report
