"""The complementary-condition checker (Sec. 3.2, Conditions 1 and 2).

It reads a block's *actual* layers (Conv2D groups and channel counts, ChannelShuffle groups,
in forward order), builds the 0/1 connectivity of every linear map, and composes them into
the connectivity of the block's kernel ``P2 W2 P1 W1`` (the channel-wise conv W0 contributes
a diagonal; BN and ReLU6 act per channel). From it:

* ``dense``: every output channel is reached from every input channel.
* branch counts ``N[a, b]``: how many intermediate channels lie in branch ``a`` of W1 and in
  branch ``b`` of W2 (read through P1). Intermediate channels that share both branches are
  indistinguishable to the two group convs: they form one *super-channel* (the paper: "the
  different super-channels in the same branch are equivalent to each other").
* ``loose`` (Condition 2): super-channels that lie in the same branch of one group conv lie
  in different branches of the other and come from all of its branches, i.e. every
  ``N[a, b] > 0`` and all are equal; there are then ``C_s = G1 * G2`` super-channels of
  ``C_int / C_s`` channels each.
* ``strict`` (Condition 1): the same over single channels, i.e. every ``N[a, b] == 1``
  (``G1 * G2 == C_int``, the over-wide "IGCV3-Widest" of Table 5).
"""
from dataclasses import dataclass, field

import numpy as np
from mxnet.gluon import nn

from .layers import ChannelShuffle, shuffle_permutation

__all__ = ["Report", "group_mask", "check_block", "check_network"]


def group_mask(cin, cout, groups):
    """0/1 matrix (cout x cin) of a group convolution with ``groups`` branches (eq. 2/8)."""
    out_branch = np.arange(cout) // (cout // groups)
    in_branch = np.arange(cin) // (cin // groups)
    return out_branch[:, None] == in_branch[None, :]


@dataclass
class Report:
    """Result of :func:`check_block`. ``loose``/``strict`` are None for a block with fewer
    than two pointwise group convolutions (nothing to interleave)."""
    in_channels: int
    out_channels: int
    groups: tuple
    dense: bool
    loose: object = None
    strict: object = None
    super_channels: object = None
    counts: np.ndarray = field(default=None, repr=False)


def _layers(block):
    """Conv2D and ChannelShuffle leaves of ``block`` in registration (= forward) order
    (``Block.apply`` visits children in registration order, each before its parent)."""
    found = []
    block.apply(lambda b: found.append(b) if isinstance(b, (nn.Conv2D, ChannelShuffle))
                else None)
    return found


def check_block(block):
    """Check one block (IGCV3Block, MobileNetV2Block, InterleavedPointwise, ...): its
    ``in_channels`` and the weight shapes of its convolutions give every conv's geometry
    (groups = input channels / weight.shape[1])."""
    conn = np.eye(block.in_channels, dtype=bool)   # connectivity: (current x input channels)
    labels = None          # W1 branch of each current channel, once W1 has been passed
    pointwise = []         # (groups,) of each pointwise conv
    counts = None
    for layer in _layers(block):
        if isinstance(layer, ChannelShuffle):
            if layer.groups == 1:
                continue
            perm = shuffle_permutation(conn.shape[0], layer.groups)
            conn = conn[perm]
            labels = None if labels is None else labels[perm]
            continue
        cout, cin_per_group, kh, kw = layer.weight.shape
        cin = conn.shape[0]
        groups = cin // cin_per_group
        if groups == cin == cout and (kh, kw) != (1, 1):
            continue                       # channel-wise conv: diagonal
        mask = group_mask(cin, cout, groups)
        if len(pointwise) == 1 and labels is not None:
            in_branch = np.arange(cin) // (cin // groups)
            g1 = pointwise[0]
            counts = np.zeros((g1, groups), dtype=int)
            np.add.at(counts, (labels, in_branch), 1)
        conn = (mask.astype(np.float32) @ conn.astype(np.float32)) > 0     # BLAS, exact for 0/1
        labels = np.arange(cout) // (cout // groups) if not pointwise else None
        pointwise.append(groups)
    report = Report(conn.shape[1], conn.shape[0], tuple(pointwise), bool(conn.all()))
    if counts is not None:
        report.counts = counts
        report.loose = bool((counts > 0).all() and (counts == counts.flat[0]).all())
        report.strict = bool((counts == 1).all())
        report.super_channels = counts.size if report.loose else None
    return report


def check_network(net):
    """Reports for every interleaved block of ``net`` (IGCV1/2/3 blocks, MobileNetV2 blocks,
    InterleavedPointwise): a list of ``(block name, Report)``."""
    found = []
    net.apply(lambda b: found.append(b) if getattr(b, "interleaved", False) else None)
    inner = {id(c) for b in found for c in _descendants(b)}      # outermost blocks only
    return [(b.name, check_block(b)) for b in found if id(b) not in inner]


def _descendants(block):
    found = []
    block.apply(found.append)
    return found[:-1]                      # apply visits ``block`` itself last
