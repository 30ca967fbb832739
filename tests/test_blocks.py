"""IGCV3Block / MobileNetV2Block: structure, exact sizes, options of Table 6 and Sec. 3."""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

import igcv3_gluon
from igcv3_gluon.complexity import graph_stats
from igcv3_gluon.nn import ChannelShuffle, IGCV3Block, InterleavedPointwise, MobileNetV2Block


def ops_of(block, shape):
    sym = block(mx.sym.var("data"))
    return [n["op"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]


def params_of(block, shape):
    return graph_stats(block, shape).params


def test_inverted_block_layout_and_exact_params():
    block = IGCV3Block(32, 32, 6, 1, groups=(2, 2))
    bn = ["Reshape", "BatchNorm", "reshape_like", "SwapAxis"]                 # FlatBatchNorm
    assert ops_of(block, None) == (
        ["Convolution"] + bn + ["Reshape", "SwapAxis", "reshape_like"] +     # W1, P1
        ["Convolution"] + bn + ["clip"] +                                    # W0 (dw) + ReLU6
        ["Convolution"] + bn + ["elemwise_add"])                             # W2, shortcut
    # W1: 32*192/2, W0: 192*9, W2: 192*32/2, BN gamma+beta: 2*(192+192+32)
    assert params_of(block, (1, 32, 8, 8)) == 3072 + 1728 + 3072 + 2 * (192 + 192 + 32)


@pytest.mark.parametrize("stride,cin,cout,side,shortcut", [
    (1, 16, 16, 8, True), (2, 16, 24, 4, False), (1, 16, 24, 8, False)])
def test_output_shape_and_shortcut(stride, cin, cout, side, shortcut):
    block = IGCV3Block(cin, cout, 6, stride)
    block.initialize()
    assert block(mx.nd.zeros((2, cin, 8, 8))).shape == (2, cout, side, side)
    assert block.use_shortcut is shortcut
    assert ("elemwise_add" in ops_of(block, None)) is shortcut


@pytest.mark.parametrize("relu,expected_after", [
    ("dw", [1]), ("pw1+dw", [0, 1]), ("pw2", [2]), ("none", [])])
def test_relu_placements_of_table6(relu, expected_after):
    ops = ops_of(IGCV3Block(16, 16, 6, groups=(2, 2), relu=relu), None)
    convs_before = [ops[:i].count("Convolution") - 1 for i, op in enumerate(ops) if op == "clip"]
    assert convs_before == expected_after


def test_p2_adds_output_shuffle_and_p1_can_be_dropped():
    def shuffles(block):
        return graph_stats(block, (1, 16, 4, 4)).ops["shuffle"]
    assert shuffles(IGCV3Block(16, 16, 6, p2=True)) == 2
    assert shuffles(IGCV3Block(16, 16, 6, p1=False)) == 0
    p2 = [c for c in IGCV3Block(16, 24, 6, groups=(2, 4), p2=True).body._children.values()
          if isinstance(c, ChannelShuffle)][-1]
    assert (p2.groups, p2.channels) == (24 // 4, 24)


def test_normal_form_order_and_width():
    block = IGCV3Block(48, 48, 6, inverted=False, groups=(2, 2))
    convs = [c for c in block.body._children.values() if isinstance(c, nn.Conv2D)]
    kw = [(c._kwargs["kernel"], c._kwargs["num_group"], c._kwargs["num_filter"]) for c in convs]
    assert kw == [((3, 3), 48, 48), ((1, 1), 2, 8), ((1, 1), 2, 48)]
    block.initialize()
    assert block(mx.nd.zeros((1, 48, 4, 4))).shape == (1, 48, 4, 4)


def test_strict_mode_sets_g2_to_cint_over_g1():
    block = IGCV3Block(48, 48, 2, groups=(2, 2), strict=True)
    assert block.groups == (2, 48)
    with pytest.raises(ValueError, match="not divisible by 96 groups"):
        IGCV3Block(32, 32, 6, groups=(2, 2), strict=True)


def test_t1_expand_conv_kept_for_igcv3_skipped_for_mobilenetv2():
    assert ops_of(IGCV3Block(32, 16, 1), None).count("Convolution") == 3
    assert ops_of(MobileNetV2Block(32, 16, 1), None).count("Convolution") == 2


def test_mobilenetv2_block_equals_gluoncv_linear_bottleneck():
    from gluoncv.model_zoo.mobilenet import LinearBottleneck
    ours, theirs = MobileNetV2Block(24, 32, 6, 2), LinearBottleneck(24, 32, 6, 2)
    assert params_of(ours, (1, 24, 8, 8)) == params_of(theirs, (1, 24, 8, 8)) == \
        24 * 144 + 144 * 9 + 144 * 32 + 2 * (144 + 144 + 32)
    ops = ops_of(ours, None)
    assert ops.count("clip") == 2 and ops.count("Convolution") == 3


def test_interleaved_pointwise_size():
    # two 4-group 1x1 convs 640 -> 640 -> 1280 with BN: the authors' IGCV3-W last conv
    assert params_of(InterleavedPointwise(640, 1280, 4), (1, 640, 7, 7)) == \
        640 * 640 // 4 + 2 * 640 + 640 * 1280 // 4 + 2 * 1280


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=15, channels=16, groups=(2, 2)), "not divisible by 2 groups"),
    (dict(in_channels=16, channels=18, groups=(2, 4)), "not divisible by 4 groups"),
    (dict(in_channels=16, channels=16, relu="gelu"), "choose one of"),
])
def test_bad_configuration_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IGCV3Block(**kwargs)


def test_block_trains_one_step():
    block = IGCV3Block(8, 8, 6, groups=(2, 2))
    block.initialize(mx.init.Xavier())
    block.hybridize()
    trainer = mx.gluon.Trainer(block.collect_params(), "sgd", {"learning_rate": 0.1})
    x = mx.nd.random.normal(shape=(4, 8, 6, 6))
    with mx.autograd.record():
        loss = (block(x) ** 2).mean()
    loss.backward()
    before = block.body[0].weight.data().copy()
    trainer.step(4)
    assert not np.allclose(before.asnumpy(), block.body[0].weight.data().asnumpy())


def _blocks_of(net, kind):
    found = []
    net.apply(lambda b: found.append(b) if type(b) is kind else None)
    return found


@pytest.mark.parametrize("name", ["cifar_igcv3_d_0.5", "cifar_igcv1"])
def test_flat_and_plain_batchnorm_have_the_same_names_and_outputs(name):
    """The CPU form (FlatBatchNorm) and the GPU form (MXNet's BatchNorm) of a network: the
    same parameter names and the same outputs; weights move freely between them."""
    from igcv3_gluon.nn import FlatBatchNorm, init_like_trained, norm_layer_for
    kwargs = dict(multiplier=0.5, depths=[1] * 7) if "igcv3" in name else {}
    flat = igcv3_gluon.get_model(name, **kwargs)
    plain = igcv3_gluon.get_model(name, **kwargs, **norm_layer_for([mx.gpu(0), mx.gpu(1)]))
    assert _blocks_of(flat, FlatBatchNorm) and not _blocks_of(plain, FlatBatchNorm)
    assert list(flat.collect_params()) == list(plain.collect_params())
    init_like_trained(flat, seed=1)
    plain.initialize()
    for (_, a), (_, b) in zip(flat.collect_params().items(), plain.collect_params().items()):
        b.set_data(a.data())
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (4, 3, 32, 32)))
    for train in (True, False):
        with mx.autograd.record(train_mode=train):
            a, b = flat(x).asnumpy(), plain(x).asnumpy()
        assert np.abs(a).max() > 0.1
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert norm_layer_for([mx.cpu(0)]) == {}


@pytest.mark.parametrize("make", [
    lambda norm: IGCV3Block(24, 24, 6, 1, groups=(2, 2), norm_layer=norm),
    lambda norm: IGCV3Block(16, 24, 6, 2, groups=(4, 4), relu="pw1+dw", norm_layer=norm)])
def test_flat_and_plain_batchnorm_give_the_same_gradients(make):
    from igcv3_gluon.nn import FlatBatchNorm, init_like_trained
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (8, make(None).in_channels, 8, 8)))
    coef = None
    grads = []
    for norm in (FlatBatchNorm, nn.BatchNorm):
        block = init_like_trained(make(norm), seed=2)
        block.hybridize(static_alloc=True, static_shape=True)
        with mx.autograd.record():
            y = block(x)
            coef = coef if coef is not None else mx.nd.array(
                np.random.RandomState(1).randn(*y.shape))
            loss = (y * coef).sum()
        loss.backward()
        grads.append([p.grad().asnumpy() for p in block.collect_params().values()
                      if p.grad_req != "null"] + [y.asnumpy()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_a_detector_built_for_gpus_has_no_flat_batchnorm():
    from igcv3_gluon.nn import FlatBatchNorm, norm_layer_for
    gpu = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", multiplier=0.5,
                                **norm_layer_for([mx.gpu(0)]))
    cpu = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco", multiplier=0.5)
    assert not _blocks_of(gpu, FlatBatchNorm) and len(_blocks_of(cpu, FlatBatchNorm)) > 40
    assert list(gpu.collect_params()) == list(cpu.collect_params())
