"""Export to symbol/params and ONNX; Module-API symbols derived from the Gluon blocks."""
import os
import sys

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon.complexity import graph_stats
from igcv3_gluon.deploy import export, export_onnx, load_module, load_symbolblock
from igcv3_gluon.errors import WeightsError

from conftest import ROOT, randomize


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """igcv3_d_1.0 with random weights and BN statistics, exported once."""
    net = randomize(igcv3_gluon.get_model("igcv3_d_1.0"), input_shape=(8, 3, 224, 224))
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (2, 3, 224, 224)))
    reference = net(x).asnumpy()
    prefix = str(tmp_path_factory.mktemp("export") / "igcv3_d")
    sym_file, params_file = export(net, prefix, (2, 3, 224, 224))
    return prefix, x, reference, sym_file, params_file


def test_export_writes_symbol_and_params(exported):
    prefix, _, reference, sym_file, params_file = exported
    assert sym_file == prefix + "-symbol.json" and os.path.isfile(sym_file)
    assert params_file == prefix + "-0000.params" and os.path.isfile(params_file)
    assert np.abs(reference).max() > 1.0           # a comparison that can fail
    params = mx.nd.load(params_file)
    assert sum(k.startswith("aux:") for k in params) == 2 * 98       # running mean/var
    assert graph_stats(mx.sym.load(sym_file), (1, 3, 224, 224)).params == 3491688


def test_symbolblock_reload_identical(exported):
    prefix, x, reference, _, _ = exported
    assert np.abs(load_symbolblock(prefix)(x).asnumpy() - reference).max() < 1e-5


def test_module_reload_identical(exported):
    prefix, x, reference, _, _ = exported
    mod = load_module(prefix, input_shape=x.shape, fuse=False)
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    assert np.abs(mod.get_outputs()[0].asnumpy() - reference).max() < 1e-5


def test_module_fused_reload_close(exported):
    prefix, x, reference, _, _ = exported
    mod = load_module(prefix, input_shape=x.shape)                  # MKLDNN conv+BN fusion
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    out = mod.get_outputs()[0].asnumpy()
    assert (out.argmax(1) == reference.argmax(1)).all()
    assert np.abs(out - reference).max() < 1e-3 * np.abs(reference).max() + 1e-4


def test_onnx_igcv3_d_in_onnxruntime(exported, tmp_path):
    import onnxruntime as ort
    prefix, x, reference, _, _ = exported
    path = export_onnx(prefix, str(tmp_path / "igcv3_d.onnx"), x.shape)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["data"]        # weights are not inputs
    out = sess.run(None, {"data": x.asnumpy()})[0]
    assert np.abs(out - reference).max() < 1e-4


def test_export_requires_initialized_params(tmp_path):
    with pytest.raises(ValueError, match="not initialized"):
        export(igcv3_gluon.get_model("cifar_igcv3_d_0.5"), str(tmp_path / "x"), (1, 3, 32, 32))


def test_reload_missing_files_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="export the model first"):
        load_symbolblock(str(tmp_path / "nothing"))


@pytest.mark.parametrize("module,params", [
    ("igcv3", 3491688), ("igcv3_w", 3499176), ("mobilenetv2", 3504872)])
def test_get_symbol_sizes(module, params):
    sys.path.insert(0, ROOT)
    mod = __import__("symbols.%s" % module, fromlist=["get_symbol"])
    sym = mod.get_symbol(num_classes=1000)
    assert sym.name == "softmax"
    assert graph_stats(sym, (1, 3, 224, 224)).params == params


@pytest.mark.parametrize("module", ["igcv3", "igcv3_w", "mobilenetv2"])
def test_get_symbol_trains_in_module(module):
    mod_py = __import__("symbols.%s" % module, fromlist=["get_symbol"])
    sym = mod_py.get_symbol(num_classes=10, multiplier=0.5, cifar=True)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"],
                        context=mx.cpu())
    mod.bind(data_shapes=[("data", (4, 3, 32, 32))], label_shapes=[("softmax_label", (4,))])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    batch = mx.io.DataBatch([mx.nd.random.uniform(shape=(4, 3, 32, 32))],
                            [mx.nd.array([0, 1, 2, 3])])
    before = {k: v.copy() for k, v in mod.get_params()[0].items()}
    mod.forward(batch, is_train=True)
    assert mod.get_outputs()[0].shape == (4, 10)
    mod.backward()
    mod.update()
    after = mod.get_params()[0]
    changed = {k for k in before if not np.allclose(before[k].asnumpy(), after[k].asnumpy())}
    # every weight moves (a BN beta right before another BN gets no gradient in train mode:
    # the next BN removes any per-channel shift, so those are not asserted)
    weights = {k for k in before if k.endswith("weight")}
    assert len(weights) > 50 and weights <= changed


def test_gluon_and_symbol_share_parameter_names(tmp_path):
    """A Gluon export loads into the Module-API symbol: one source of truth."""
    from symbols.igcv3 import get_symbol
    net = randomize(igcv3_gluon.get_model("igcv3_d_1.0", classes=10))
    prefix = str(tmp_path / "m")
    export(net, prefix, (1, 3, 224, 224))
    sym = get_symbol(num_classes=10)
    _, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    assert set(arg_params) | {"data", "softmax_label"} == set(sym.list_arguments())
    assert set(aux_params) == set(sym.list_auxiliary_states())
