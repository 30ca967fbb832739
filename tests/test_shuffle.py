"""ChannelShuffle: the permutation P of eq. (1)/(7), hybridizable and ONNX-exportable."""
import json

import mxnet as mx
import numpy as np
import pytest

from igcv3_gluon.nn import ChannelShuffle
from igcv3_gluon.nn.layers import shuffle_permutation


def authors_shuffle(x, groups):
    """The authors' formulation (reshape -4 / swapaxes / reshape -3), as reference."""
    y = mx.nd.reshape(x, shape=(0, -4, groups, -1, -2))
    y = mx.nd.swapaxes(y, 1, 2)
    return mx.nd.reshape(y, shape=(0, -3, -2))


@pytest.mark.parametrize("channels,groups", [(4, 2), (12, 3), (24, 4), (192, 2), (8, 1)])
def test_matches_authors_permutation(channels, groups, rng):
    x = mx.nd.array(rng.randn(2, channels, 5, 3))
    block = ChannelShuffle(groups, channels)
    expected = authors_shuffle(x, groups) if groups > 1 else x
    np.testing.assert_array_equal(block(x).asnumpy(), expected.asnumpy())
    block.hybridize()
    np.testing.assert_array_equal(block(x).asnumpy(), expected.asnumpy())
    # the checker's permutation index is the same permutation
    perm = shuffle_permutation(channels, groups)
    np.testing.assert_array_equal(x.asnumpy()[:, perm], expected.asnumpy())


def test_interleaves_channels():
    x = mx.nd.arange(6).reshape((1, 6, 1, 1))
    y = ChannelShuffle(2, 6)(x).asnumpy().ravel()
    assert y.tolist() == [0, 3, 1, 4, 2, 5]


def test_channels_inferred_from_first_ndarray():
    block = ChannelShuffle(3)
    block(mx.nd.zeros((1, 9, 2, 2)))
    assert block.channels == 9
    with pytest.raises(ValueError, match="needs `channels`"):
        ChannelShuffle(2)(mx.sym.var("data"))


def test_bad_groups_rejected():
    with pytest.raises(ValueError, match="do not split"):
        ChannelShuffle(4, 6)
    with pytest.raises(ValueError, match="do not split"):
        ChannelShuffle(4)(mx.nd.zeros((1, 6, 1, 1)))
    with pytest.raises(ValueError, match=">= 1"):
        ChannelShuffle(0)


def test_exports_to_symbol_json_without_special_reshape(tmp_path, rng):
    block = ChannelShuffle(4, 16)
    block.hybridize()
    block(mx.nd.zeros((1, 16, 3, 3)))
    block.export(str(tmp_path / "shuffle"))
    nodes = json.load(open(tmp_path / "shuffle-symbol.json"))["nodes"]
    ops = [n["op"] for n in nodes if n["op"] != "null"]
    assert ops == ["Reshape", "SwapAxis", "reshape_like"]
    assert "-4" not in nodes[1]["attrs"]["shape"]


def test_onnx_conversion_runs_in_onnxruntime(tmp_path, rng):
    import onnxruntime as ort
    block = ChannelShuffle(2, 8)
    block.hybridize()
    x = rng.randn(2, 8, 4, 4).astype("float32")
    expected = block(mx.nd.array(x)).asnumpy()
    block.export(str(tmp_path / "s"))
    path = mx.onnx.export_model(str(tmp_path / "s-symbol.json"), str(tmp_path / "s-0000.params"),
                                in_shapes=[x.shape], in_types=[np.float32],
                                onnx_file_path=str(tmp_path / "s.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_array_equal(out, expected)


def _grad_of_conv_before_shuffle(hybridize):
    """conv (groups 2) -> shuffle -> channel-wise conv: the layout that broke MKLDNN's
    transpose backward in MXNet 1.9.1."""
    from mxnet.gluon import nn
    mx.random.seed(1)
    net = nn.HybridSequential()
    net.add(nn.Conv2D(48, 1, groups=2, use_bias=False, in_channels=8), ChannelShuffle(2, 48),
            nn.Conv2D(48, 3, padding=1, groups=48, use_bias=False, in_channels=48))
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.array(np.random.RandomState(0).randn(4, 8, 6, 6))
    with mx.autograd.record():
        loss = (net(x) ** 2).mean()
    loss.backward()
    return net[0].weight.grad().asnumpy()


def test_gradients_hybridized_equal_imperative():
    np.testing.assert_allclose(_grad_of_conv_before_shuffle(True),
                               _grad_of_conv_before_shuffle(False), rtol=1e-5, atol=1e-7)
