"""SSDLite2 and SSDLite as the authors' detection code builds them (homles11/IGCV3,
detection/symbol/): the tapped maps, the extra layers, the heads and the sizes. Every expected
value is computed here from the authors' formulas and the network plan, not read from
igcv3_gluon.models.ssdlite."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from igcv3_gluon import get_model
from igcv3_gluon.models.configs import CONFIGS
from igcv3_gluon.nn import ChannelShuffle, ReLU6
from igcv3_gluon.nn.blocks import IGCV3Block

from conftest import randomize


def authors_shuffle(x, groups):
    """common.py:7-11, channel_shuffle: reshape(0, -4, g, -1, -2) -> swapaxes -> reshape."""
    x = mx.nd.reshape(x, shape=(0, -4, groups, -1, -2))
    return mx.nd.reshape(mx.nd.swapaxes(x, 1, 2), shape=(0, -3, -2))


def detector(name, seed):
    """A 128x128 detector with trained-like weights and BN statistics."""
    net = get_model(name, classes=3, base_size=128)
    net.initialize(mx.init.Xavier())
    with autograd.train_mode():
        net(mx.nd.zeros((1, 3, 128, 128)))
    return randomize(net, seed)


def first_block_entering_stride_32(config):
    """Index (among the blocks) of the first block whose output is at 1/32, from the plan."""
    reduction, index = 2, 0                       # the stem conv has stride 2
    for _, _, n, s in CONFIGS[config]["stages"]:
        for i in range(n):
            if i == 0 and reduction * s == 32 and reduction == 16:
                return index
            reduction *= s if i == 0 else 1
            index += 1
    raise AssertionError("no block enters stride 32")


@pytest.mark.parametrize("name, config, channels", [
    ("ssdlite_320_igcv3_w_coco", "igcv3_w", 1152),
    ("ssdlite_320_mobilenetv2_coco", "mobilenetv2", 576)])
def test_first_map_is_relu6_of_the_expansion_entering_stride_32(name, config, channels):
    """symbol_factory.py:102 `blk13nl_1_bn` (IGCV3) and :90 `blk13_nl` (MobileNetV2), with
    common.py:173's Relu6: block 13 of both plans, at 1/16 (the block's stride comes after
    its expansion)."""
    index = first_block_entering_stride_32(config)
    assert index == 13
    net = detector(name, 0)
    features = net.features
    blocks = [layer for layer in features.backbone if isinstance(layer, IGCV3Block)]
    block = blocks[index]
    assert block.stride == 2 and block.mid_channels == channels
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 128, 128)))
    y = x
    for layer in features.backbone:
        if layer is block:
            break
        y = layer(y)
    # the expansion as the authors compute it: 1x1 conv -> BN (-> their Relu6), P1 applied
    # to the same tensor in our order (a channel permutation, see models/ssdlite.py)
    conv, bn = block.body[0], block.body[1]
    expanded = bn(conv(y))
    shuffles = [layer for layer in block.body if isinstance(layer, ChannelShuffle)]
    if config == "igcv3_w":
        assert shuffles and block.body[2] is shuffles[0]
        expanded = authors_shuffle(expanded, shuffles[0].groups)
    want = mx.nd.clip(expanded, 0, 6).asnumpy()
    got = features(x)
    assert got[0].shape == (2, channels, 8, 8)            # 128 / 16
    np.testing.assert_allclose(got[0].asnumpy(), want, rtol=1e-5, atol=1e-5)
    assert got[0].asnumpy().min() >= 0 and got[0].asnumpy().max() <= 6
    assert (want > 0).mean() > 0.1 and (want == 0).mean() > 0.1       # the ReLU6 acts


@pytest.mark.parametrize("name", ["ssdlite_320_igcv3_w_coco", "ssdlite_320_mobilenetv2_coco"])
def test_extra_layers_compute_the_authors_common_py(name):
    """common.py:180-185 with conv_act_layer (:43-49) and conv_act_layer_dw (:80-88): 2-group
    1x1 to max(128, C/2) (symbol_builder.py:14 min_filter=128) -> shuffle(2) -> BN -> Relu6 ->
    Dw3x3/2 -> BN -> 2-group 1x1 -> shuffle(C/2) -> BN -> Relu6, BN eps 1e-3; written with
    MXNet operators here, BN parameters read through the authors' shuffle order."""
    net = detector(name, 1)
    extras = list(net.features.extras)
    assert len(extras) == 4
    in_channels = 1280
    rng = np.random.RandomState(0)
    for extra, channels in zip(extras, (512, 256, 256, 128)):
        mid = max(128, channels // 2)
        convs = [layer for layer in extra.body if isinstance(layer, mx.gluon.nn.Conv2D)]
        bns = [layer for layer in extra.body if isinstance(layer, mx.gluon.nn.BatchNorm)]
        assert [c.weight.shape for c in convs] == [(mid, in_channels // 2, 1, 1), (mid, 1, 3, 3),
                                                  (channels, mid // 2, 1, 1)]
        assert [c._kwargs["num_group"] for c in convs] == [2, mid, 2]
        assert convs[1]._kwargs["stride"] == (2, 2)
        assert all(b._kwargs["eps"] == 1e-3 for b in bns) and len(bns) == 3
        # none after the Dw3x3
        assert sum(isinstance(layer, ReLU6) for layer in extra.body) == 2
        x = mx.nd.array(rng.uniform(0, 3, (2, in_channels, 6, 6)))

        def bn(z, layer, order):
            p = [getattr(layer, k).data().asnumpy()[order]
                 for k in ("gamma", "beta", "running_mean", "running_var")]
            return mx.nd.BatchNorm(z, *(mx.nd.array(a) for a in p), eps=1e-3,
                                   use_global_stats=True, fix_gamma=False)

        def order_of(c, groups):         # channel j after the authors' shuffle came from
            idx = mx.nd.array(np.arange(c, dtype=np.float32).reshape(1, c, 1, 1))
            return authors_shuffle(idx, groups).asnumpy().ravel().astype(int)

        def conv(z, layer, stride=1, pad=0):
            w = layer.weight.data()
            return mx.nd.Convolution(z, w, kernel=w.shape[2:], num_filter=w.shape[0],
                                     num_group=layer._kwargs["num_group"], stride=(stride,) * 2,
                                     pad=(pad,) * 2, no_bias=True)
        relu6 = lambda z: mx.nd.minimum(mx.nd.maximum(z, 0), 6)           # noqa: E731
        y = authors_shuffle(conv(x, convs[0]), 2)
        y = relu6(bn(y, bns[0], order_of(mid, 2)))
        y = bn(conv(y, convs[1], 2, 1), bns[1], np.arange(mid))
        y = authors_shuffle(conv(y, convs[2]), channels // 2)
        y = relu6(bn(y, bns[2], order_of(channels, channels // 2)))
        with autograd.predict_mode():
            got = extra(x)
        np.testing.assert_allclose(got.asnumpy(), y.asnumpy(), rtol=1e-4, atol=1e-5)
        in_channels = channels


def test_table4_sizes_with_the_authors_layers():
    """Exact parameter counts (the README's known deviations state them): SSDLite2 with the
    authors' 2-group extras (mid width >= 128) and BN-ended heads is 4.22M against Table 4's
    4.0M; the MobileNetV2 baseline with the same common.py is 4.02M against 4.3M (the
    figure of the MobileNetV2 paper's TF model). With the authors' 90 foreground classes
    (train.py:71) the class heads grow by 10 classes of outputs."""
    from igcv3_gluon.complexity import count

    def params(name, classes=None):
        kwargs = {} if classes is None else dict(classes=["c%d" % i for i in range(classes)])
        net = get_model(name, **kwargs)
        net.initialize()
        return count(net, (1, 3, 320, 320))[0]
    assert params("ssdlite_320_igcv3_w_coco") == 4217890
    assert params("ssdlite_320_mobilenetv2_coco") == 4015074
    # 10 more classes: (1152*4 + 1280*6 + 512*6 + 256*6 + 256*4 + 128*4) weights per class,
    # plus a bias, gamma and beta for each of the 30 anchors' new outputs
    per_class = 1152 * 4 + 1280 * 6 + 512 * 6 + 256 * 6 + 256 * 4 + 128 * 4 + 3 * 30
    assert params("ssdlite_320_igcv3_w_coco", 90) == 4217890 + 10 * per_class
