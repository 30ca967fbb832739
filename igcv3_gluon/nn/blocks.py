"""The IGCV3 block (Sec. 3.2, eq. 7-8; Fig. 1c) and the MobileNetV2 baseline block (eq. 6).

One class builds both: a MobileNetV2 block is an IGCV3 block whose two pointwise
convolutions are dense (G1 = G2 = 1, so P1 and P2 vanish) with MobileNetV2's ReLU placement.
"""
from mxnet.gluon import nn

from .layers import ChannelShuffle, add_conv_bn, resolve_norm

__all__ = ["IGCV3Block", "MobileNetV2Block", "InterleavedPointwise", "RELU_PLACEMENTS"]

# Where the ReLU6s go, as the rows of Table 6 (pw1 = first 1x1 conv, dw = 3x3 channel-wise
# conv, pw2 = second 1x1 conv; each ReLU6 follows that conv's BatchNorm).
RELU_PLACEMENTS = {
    "dw": ("dw",),               # G1x1_Dw3x3_ReLU_G1x1: the IGCV3 block (Table 6, row 2)
    "pw1+dw": ("pw1", "dw"),     # G1x1_ReLU_Dw3x3_ReLU_G1x1: MobileNetV2 placement (row 1)
    "pw2": ("pw2",),             # G1x1_Dw3x3_G1x1_ReLU (row 3)
    "none": (),                  # linear IGCV3 (Sec. 3.3, "Linear, nonlinear")
}


def _smallest_strict_g1(cin, mid, cout):
    for g1 in range(2, cin + 1):
        if cin % g1 == 0 and mid % g1 == 0 and cout % (mid // g1) == 0:
            return g1
    raise ValueError("no G1 makes a strict IGCV3 block %d -> %d -> %d" % (cin, mid, cout))


def _check_divisible(what, channels, groups):
    if channels % groups:
        raise ValueError("%s: %d channels are not divisible by %d groups"
                         % (what, channels, groups))


class IGCV3Block(nn.HybridBlock):
    r"""Interleaved low-rank group convolutions, y = P2 W2 P1 W1 W0 x (eq. 7).

    Inverted form (default, Fig. 1c; the form the paper trains)::

        G1x1 expand (G1 groups, C_in -> t*C_in) -> BN -> P1 -> Dw3x3 (stride) -> BN -> ReLU6
        -> G1x1 project (G2 groups, t*C_in -> C_out) -> BN [-> P2] -> + x

    Normal form (``inverted=False``, Sec. 3.2)::

        Dw3x3 (stride) -> BN -> ReLU6 -> G1x1 reduce (G1, C_in -> C_in/t) -> BN -> P1
        -> G1x1 expand back (G2, C_in/t -> C_out) -> BN [-> P2] -> + x

    The residual add exists when ``stride == 1`` and ``C_in == C_out``.

    Parameters
    ----------
    in_channels, channels : int
        C_in and C_out.
    expansion : int
        t: the intermediate width C_int is ``t * C_in`` (inverted) or ``C_in / t`` (normal).
    stride : int
        Stride of the 3x3 channel-wise convolution W0.
    groups : (int, int)
        (G1, G2), the branches of W1 and W2 (eq. 8). IGCV3-D uses (2, 2), IGCV3-W (4, 4).
    relu : str
        ReLU6 placement, one of ``RELU_PLACEMENTS`` (Table 6).
    p1 : bool
        Apply P1, the shuffle of G1 groups between W1 and W2. Only for ablation: without it
        the composed kernel is block-diagonal, not dense.
    p2 : bool
        Apply P2, the permutation that interleaves the output super-channels (the inverse
        shuffle of G2 groups, as the authors' symbol script writes it). Off by default: the
        authors' released ImageNet graph has P1 only, and with G1 = G2 = 2 the composed
        kernel W2 P1 W1 is already dense (see ``igcv3_gluon.nn.complementary``).
    inverted : bool
        Inverted (default) or normal form.
    strict : bool
        Strict complementary condition (Condition 1, "IGCV3-Widest" of Table 5): G2 is set to
        C_int / G1 so that every branch of W2 reads exactly one channel of every branch of W1.
        With ``groups[0] == 0`` the smallest G1 >= 2 that divides the widths is chosen.
    expand_t1 : bool
        Keep the first 1x1 conv when ``expansion == 1`` (the authors' release does; GluonCV's
        MobileNetV2 does not).
    mid_channels : int, optional
        C_int given directly (normal-form networks use the stage's narrow width).
    norm_layer, norm_kwargs : optional
        The BatchNorm class and its extra arguments (default: ``nn.resolve_norm``, i.e.
        ``FlatBatchNorm`` next to group convolutions on the CPU); ``nn.BatchNorm`` for GPUs,
        ``SyncBatchNorm`` for synchronised statistics.

    Attributes
    ----------
    tap_index : int or None
        Inverted form: how many layers of ``body`` form the *expansion* (W1 -> BN [-> ReLU6]
        -> P1, before W0); ``forward_with_expansion`` returns that tensor too (SSDLite's
        first feature map). None when the block has no expansion.
    """
    interleaved = True

    def __init__(self, in_channels, channels, expansion=6, stride=1, groups=(2, 2),
                 relu="dw", p1=True, p2=False, inverted=True, strict=False, expand_t1=True,
                 mid_channels=None, norm_layer=None, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if relu not in RELU_PLACEMENTS:
            raise ValueError("relu=%r: choose one of %s" % (relu, ", ".join(RELU_PLACEMENTS)))
        g1, g2 = (int(g) for g in groups)
        if mid_channels is not None:
            mid = mid_channels
        elif inverted:
            mid = in_channels * expansion
        else:
            if in_channels % expansion:
                raise ValueError("normal IGCV3 block: C_in=%d is not divisible by t=%d"
                                 % (in_channels, expansion))
            mid = in_channels // expansion
        if strict:
            if g1 == 0:
                g1 = _smallest_strict_g1(in_channels, mid, channels)
            _check_divisible("strict IGCV3 block, intermediate width", mid, g1)
            g2 = mid // g1
        has_pw1 = expansion != 1 or expand_t1 or not inverted
        if not has_pw1:
            g1, mid = 1, in_channels
        self.in_channels, self.channels, self.mid_channels = in_channels, channels, mid
        self.expansion, self.stride, self.groups = expansion, stride, (g1, g2)
        self.relu, self.p1, self.p2 = relu, p1, p2
        self.inverted, self.strict = inverted, strict
        self.use_shortcut = stride == 1 and in_channels == channels
        self._norm = resolve_norm(norm_layer, max(g1, g2) > 1)
        self._norm_kwargs = norm_kwargs
        self.tap_index = None

        acts = RELU_PLACEMENTS[relu]
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            if inverted:
                if has_pw1:
                    self._pointwise(in_channels, mid, g1, "pw1" in acts, "W1 (expand)")
                    if p1:
                        self._shuffle(g1, mid)
                    self.tap_index = len(self.body)
                self._depthwise(mid, stride, "dw" in acts)
                self._pointwise(mid, channels, g2, "pw2" in acts, "W2 (project)")
            else:
                self._depthwise(in_channels, stride, "dw" in acts)
                self._pointwise(in_channels, mid, g1, "pw1" in acts, "W1 (reduce)")
                if p1:
                    self._shuffle(g1, mid)
                self._pointwise(mid, channels, g2, "pw2" in acts, "W2 (expand)")
            if p2:
                self._shuffle(channels // g2, channels)

    def _pointwise(self, cin, cout, groups, act, what):
        _check_divisible("%s input" % what, cin, groups)
        _check_divisible("%s output" % what, cout, groups)
        add_conv_bn(self.body, cout, 1, 1, groups, act, cin, self._norm, self._norm_kwargs)

    def _depthwise(self, channels, stride, act):
        add_conv_bn(self.body, channels, 3, stride, channels, act, channels, self._norm,
                    self._norm_kwargs)

    def _shuffle(self, groups, channels):
        if groups > 1:
            self.body.add(ChannelShuffle(groups, channels))

    def forward_with_expansion(self, F, x):
        """``(output, expansion)``: the block's output and the tensor after its expansion
        (``tap_index`` layers of ``body``). Call it from a parent's ``hybrid_forward`` with
        that method's ``F``."""
        if self.tap_index is None:
            raise ValueError("%r has no expansion to tap" % self)
        expanded = x
        for i in range(self.tap_index):
            expanded = self.body[i](expanded)
        out = expanded
        for i in range(self.tap_index, len(self.body)):
            out = self.body[i](out)
        if self.use_shortcut:
            out = F.elemwise_add(out, x)
        return out, expanded

    def hybrid_forward(self, F, x):
        out = self.body(x)
        if self.use_shortcut:
            out = F.elemwise_add(out, x)
        return out

    def __repr__(self):
        return ("%s(%d -> %d, t=%s, stride=%d, groups=%s, relu=%s, p1=%s, p2=%s, inverted=%s%s)"
                % (type(self).__name__, self.in_channels, self.channels, self.expansion,
                   self.stride, self.groups, self.relu, self.p1, self.p2, self.inverted,
                   ", strict" if self.strict else ""))


class MobileNetV2Block(IGCV3Block):
    """MobileNetV2's inverted residual (eq. 6 in the inverted order): dense 1x1 expand -> BN ->
    ReLU6 -> Dw3x3 -> BN -> ReLU6 -> dense 1x1 project -> BN [+ x]. The expand conv is
    skipped when t == 1, as in MobileNetV2 and GluonCV."""

    def __init__(self, in_channels, channels, expansion=6, stride=1, expand_t1=False, **kwargs):
        super().__init__(in_channels, channels, expansion, stride, groups=(1, 1),
                         relu="pw1+dw", expand_t1=expand_t1, **kwargs)


class InterleavedPointwise(nn.HybridBlock):
    """A 1x1 conv written as two interleaved group convs (eq. 1, IGCV1 over 1x1 kernels):
    G1x1 (G groups, C_in -> C_in) -> BN -> P -> G1x1 (G groups, C_in -> C_out) -> BN -> ReLU6.

    The authors' wide release uses it for the last 1x1 conv of IGCV3-W (640 -> 1280, G = 4),
    which puts IGCV3-W at the size Table 5 reports.
    """

    interleaved = True

    def __init__(self, in_channels, channels, groups=4, norm_layer=None, norm_kwargs=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.channels, self.groups = in_channels, channels, (groups, groups)
        norm = resolve_norm(norm_layer, groups > 1)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            _check_divisible("InterleavedPointwise input", in_channels, groups)
            _check_divisible("InterleavedPointwise output", channels, groups)
            add_conv_bn(self.body, in_channels, 1, 1, groups, False, in_channels, norm,
                        norm_kwargs)
            self.body.add(ChannelShuffle(groups, in_channels))
            add_conv_bn(self.body, channels, 1, 1, groups, True, in_channels, norm, norm_kwargs)

    def hybrid_forward(self, F, x):
        return self.body(x)
