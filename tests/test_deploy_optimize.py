"""Inference-time optimisation (BatchNorm and shuffle folding), the authors'-style reference
graph, INT8 quantization and the deployment command line."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from igcv3_gluon import get_model
from igcv3_gluon.deploy import export, export_onnx, load_symbolblock
from igcv3_gluon.deploy.optimize import optimize_files
from igcv3_gluon.nn.layers import ChannelShuffle, shuffle_permutation

from conftest import ROOT, randomize


def deploy(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "igcv3_gluon.deploy"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def op_counts(sym_file):
    nodes = json.load(open(sym_file))["nodes"]
    counts = {}
    for n in nodes:
        counts[n["op"]] = counts.get(n["op"], 0) + 1
    return counts


@pytest.mark.parametrize("groups, channels", [(2, 8), (4, 48), (3, 12)])
def test_shuffle_permutation_is_the_channel_shuffle(groups, channels):
    x = mx.nd.array(np.random.RandomState(0).rand(2, channels, 3, 3))
    want = ChannelShuffle(groups, channels)(x).asnumpy()
    np.testing.assert_array_equal(x.asnumpy()[:, shuffle_permutation(channels, groups)], want)


@pytest.mark.parametrize("name, size, bns, shuffles", [
    ("igcv3_d_1.0", 224, 98, 32),
    ("igcv3_w_1.0", 224, 54, 18),
    ("mobilenetv2_1.0", 224, 52, 0),
    ("cifar_igcv1", 32, 14, 26),
])
def test_optimize_folds_every_batchnorm_and_shuffle_exactly(tmp_path, name, size, bns, shuffles):
    shape = (2, 3, size, size)
    net = randomize(get_model(name), 0, shape)
    prefix = str(tmp_path / name)
    export(net, prefix, shape)
    (sym_file, _), report = optimize_files(prefix, prefix + "-opt")
    assert report == {"batchnorms_folded": bns, "shuffles_folded": shuffles,
                      "shuffles_left": 0, "batchnorms_left": 0}
    ops = op_counts(sym_file)
    assert "BatchNorm" not in ops and "SwapAxis" not in ops and "Reshape" not in ops
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, shape))
    want = net(x).asnumpy()
    got = load_symbolblock(prefix + "-opt")(x).asnumpy()
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(want).max() > 0.5                    # a real comparison, not of zeros
    if name == "igcv3_d_1.0":                           # and it exports to ONNX
        import onnxruntime as ort
        path = export_onnx(prefix + "-opt", str(tmp_path / "opt.onnx"), shape)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        onnx_out = session.run(None, {session.get_inputs()[0].name: x.asnumpy()})[0]
        assert np.abs(onnx_out - want).max() < 1e-4


def test_keep_shuffles_folds_batchnorms_only(tmp_path):
    shape = (2, 3, 64, 64)
    net = randomize(get_model("igcv3_d_0.7"), 0, shape)
    export(net, str(tmp_path / "m"), shape)
    (sym_file, _), report = optimize_files(str(tmp_path / "m"), str(tmp_path / "o"),
                                           fold_shuffles=False)
    assert report["shuffles_left"] == 32 and report["batchnorms_left"] == 0
    groups = [int(n["attrs"]["num_group"]) for n in json.load(open(sym_file))["nodes"]
              if n["op"] == "Convolution"]
    assert groups.count(2) == 64                      # 32 blocks x (expand, project)
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, shape))
    want = net(x).asnumpy()
    diff = np.abs(load_symbolblock(str(tmp_path / "o"))(x).asnumpy() - want).max()
    assert diff < 1e-4 * max(1.0, np.abs(want).max())     # float32 rounding, relative


def test_authors_reference_graph_has_the_released_size_and_shuffles():
    from igcv3_gluon.complexity import graph_stats
    from igcv3_gluon.deploy.reference import authors_net, authors_symbol
    sym = authors_symbol("igcv3_d")
    theirs = graph_stats(sym, (1, 3, 224, 224))
    ours = graph_stats(get_model("igcv3_d_1.0"), (1, 3, 224, 224))
    assert theirs.params == ours.params == 3491688 and theirs.madds == ours.madds
    nodes = json.loads(sym.tojson())["nodes"]
    assert sum(n["op"] == "SwapAxis" for n in nodes) == 32
    assert sum(n["op"] == "Reshape" and "-4" in n["attrs"]["shape"] for n in nodes) == 32
    out = authors_net()(mx.nd.ones((1, 3, 224, 224)))
    assert out.shape == (1, 1000) and np.isfinite(out.asnumpy()).all()


@pytest.mark.parametrize("isa", ["native", "AVX2"])
def test_quantized_digits_model_keeps_its_accuracy(digits_run, tmp_path, isa):
    """The `accurate` preset on this CPU and with MXNet's oneDNN capped to AVX2 (no VNNI);
    the `fast` preset loses far more than a point on either kind and is refused (exit 1)."""
    export_prefix = os.path.join(digits_run, "export", "cifar_igcv3_d_0.5-w0.5")
    opt = str(tmp_path / "opt")
    proc = deploy("optimize", export_prefix, opt, "--input-shape", "1,3,32,32")
    assert proc.returncode == 0, proc.stderr
    assert "0 BatchNorms and 0 shuffles left" in proc.stdout
    env = dict(os.environ, DNNL_MAX_CPU_ISA="AVX2") if isa == "AVX2" else None
    proc = deploy("quantize", opt, str(tmp_path / "int8"), "--digits-config",
                  os.path.join(digits_run, "config.json"), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if isa == "AVX2":
        assert "int8 kernels here: AVX2 (capped by DNNL_MAX_CPU_ISA)" in proc.stdout
    fp32, int8 = map(float, __import__("re").search(
        r"digits test top-1 \(360 images\): fp32 ([\d.]+)%, int8 ([\d.]+)%",
        proc.stdout).groups())
    assert fp32 >= 90.0 and int8 >= fp32 - 1.0, proc.stdout
    if isa == "native":
        proc = deploy("quantize", opt, str(tmp_path / "fast"), "--preset", "fast",
                      "--digits-config", os.path.join(digits_run, "config.json"))
        assert proc.returncode == 1 and "--max-drop 1.00" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert os.path.isfile(str(tmp_path / "fast-REJECTED-symbol.json"))
        assert not os.path.exists(str(tmp_path / "fast-symbol.json"))
    # the saved graph really is INT8 (oneDNN quantized convolutions) and reloads
    sym = json.load(open(str(tmp_path / "int8-symbol.json")))
    quantized = [n for n in sym["nodes"] if n["op"] == "_sg_mkldnn_conv"
                 and n.get("attrs", {}).get("quantized") == "true"]
    assert len(quantized) >= 10
    net = mx.gluon.SymbolBlock.imports(str(tmp_path / "int8-symbol.json"), ["data"],
                                       str(tmp_path / "int8-0000.params"))
    assert net(mx.nd.zeros((32, 3, 32, 32))).shape == (32, 10)


def test_deploy_command_line_errors_are_one_line(digits_run, tmp_path):
    export_prefix = os.path.join(digits_run, "export", "cifar_igcv3_d_0.5-w0.5")
    cases = [
        (["optimize", str(tmp_path / "missing"), str(tmp_path / "o")],
         "missing-symbol.json not found"),
        (["optimize", export_prefix, str(tmp_path / "o"), "--input-shape", "1,4,32,32"],
         "input shape 1,4,32,32 does not fit"),
        (["onnx", export_prefix, str(tmp_path / "o.onnx"), "--input-shape", "1,3,32"],
         "--input-shape takes N,C,H,W"),
        (["onnx", export_prefix, str(tmp_path / "o.onnx"), "--input-shape", "-1,3,32,32"],
         "--input-shape takes N,C,H,W such as 1,3,224,224; got '-1,3,32,32'"),
        (["quantize", export_prefix, str(tmp_path / "q")], "give calibration data"),
        (["quantize", export_prefix, str(tmp_path / "q"), "--digits-config",
          str(tmp_path / "none.json")], "does not exist"),
        (["export", "resnet50", "--out", str(tmp_path / "e")], "unknown model 'resnet50'"),
    ]
    for args, message in cases:
        proc = deploy(*args, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-1000:])
        assert "Traceback" not in proc.stderr and message in proc.stderr, (args, proc.stderr)
        assert len([line for line in proc.stderr.splitlines() if "error" in line]) == 1


def test_deploy_export_onnx_and_bench_commands(digits_run, tmp_path):
    import shutil
    best = str(tmp_path / "best.params")                # outside its run: nothing says the
    shutil.copy(os.path.join(digits_run, "best.params"), best)      # width it was trained at
    prefix = str(tmp_path / "digits")
    proc = deploy("export", "cifar_igcv3_d_0.5", "--params", best, "--classes", "10",
                  "--out", prefix, "--input-shape", "1,3,32,32")
    assert proc.returncode == 2 and "does not fit" in proc.stderr     # built at full width
    proc = deploy("export", "--params", digits_run, "--out", prefix + "-run")
    assert proc.returncode == 0, proc.stderr[-1000:]                  # the run folder knows
    proc = deploy("export", "cifar_igcv3_d_0.5", "--params", best, "--classes", "10",
                  "--multiplier", "0.5", "--out", prefix,
                  "--input-shape", "1,3,32,32")
    assert proc.returncode == 0, proc.stderr[-1000:]
    run_export = os.path.join(digits_run, "export", "cifar_igcv3_d_0.5-w0.5")
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 32, 32)))
    np.testing.assert_allclose(load_symbolblock(prefix)(x).asnumpy(),
                               load_symbolblock(run_export)(x).asnumpy(), rtol=1e-5, atol=1e-5)
    proc = deploy("onnx", run_export, prefix + ".onnx", "--input-shape", "2,3,32,32")
    assert proc.returncode == 0, proc.stderr[-1000:]
    diff = float(proc.stdout.split("max relative |diff| ")[1])
    assert diff < 1e-4
    proc = deploy("bench", run_export, "--input-shape", "1,3,32,32", "--batch", "1",
                  "--rounds", "3", "--onnx")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "| mxnet cifar_igcv3_d_0.5-w0.5 |" in proc.stdout
    assert "| onnxruntime cifar_igcv3_d_0.5-w0.5 |" in proc.stdout


@pytest.mark.parametrize("name", ["igcv3_d_0.7", "igcv3_w_1.0"])
def test_grouped_fold_keeps_group_convs_and_outputs(tmp_path, name):
    shape = (2, 3, 64, 64)
    net = randomize(get_model(name), 0, shape)
    prefix = str(tmp_path / "m")
    export(net, prefix, shape)
    (sym_file, _), report = optimize_files(prefix, prefix + "-grp", grouped=True)
    assert report["shuffles_left"] == 0 and report["batchnorms_left"] == 0
    nodes = json.load(open(sym_file))["nodes"]
    g1 = 2 if name.startswith("igcv3_d") else 4
    groups = [int(n["attrs"]["num_group"]) for n in nodes if n["op"] == "Convolution"
              and n["attrs"]["kernel"] == "(1, 1)"]
    assert groups.count(g1 * g1) >= 16 and groups.count(1) <= 2    # no densified block
    assert sum(n["op"] == "slice_axis" for n in nodes) == g1 * groups.count(g1 * g1)
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, shape))
    want = net(x).asnumpy()
    got = load_symbolblock(prefix + "-grp")(x).asnumpy()
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("kwargs, grouped, left", [
    (dict(p2=True), False, 0), (dict(p2=True), True, 14),
    (dict(relu="pw1+dw"), False, 0), (dict(relu="pw1+dw"), True, 0)])
def test_optimize_folds_p2_and_shuffles_behind_a_relu(tmp_path, kwargs, grouped, left):
    """Issue 14: `--grouped` on a p2=True network wrote a graph that did not load (a fold
    read a conv that an earlier fold had rewired); with relu="pw1+dw" the ReLU6 between a
    1x1 conv and its shuffle hid the shuffle (a permutation commutes with it). With p2 and
    --grouped, the P2 after a grouped projection stays: folding it would densify it."""
    shape = (2, 3, 32, 32)
    net = randomize(get_model("cifar_igcv3_d_0.5", multiplier=0.5, **kwargs), 0, shape)
    prefix = str(tmp_path / "m")
    export(net, prefix, shape)
    _, report = optimize_files(prefix, prefix + "-opt", grouped=grouped)
    shuffles = 17 * (2 if kwargs.get("p2") else 1)
    assert report["shuffles_left"] == left
    assert report["shuffles_folded"] == shuffles - left and report["batchnorms_left"] == 0
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, shape))
    want = net(x).asnumpy()
    got = load_symbolblock(prefix + "-opt")(x).asnumpy()
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())


def test_an_output_path_under_a_regular_file_is_one_line(digits_run, tmp_path):
    """Any command given an output whose parent is a file: one line, exit 2, nothing left."""
    blocker = str(tmp_path / "afile")
    open(blocker, "w").write("a file, not a folder")
    prefix = os.path.join(digits_run, "export", "cifar_igcv3_d_0.5-w0.5")
    import cv2
    os.makedirs(str(tmp_path / "imgs" / "c0"))
    cv2.imwrite(str(tmp_path / "imgs" / "c0" / "a.jpg"), np.zeros((20, 20, 3), np.uint8))
    cases = [["-m", "igcv3_gluon.deploy", "export", "cifar_igcv3_d_0.5", "--out",
              blocker + "/x"],
             ["-m", "igcv3_gluon.deploy", "optimize", prefix, blocker + "/y/z"],
             ["-m", "igcv3_gluon.deploy", "onnx", prefix, blocker + "/m.onnx"],
             ["-m", "igcv3_gluon.im2rec", str(tmp_path / "imgs"), blocker + "/rec",
              "--no-progress"]]
    for args in cases:
        proc = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert ("cannot write under %s: it is a file, not a folder" % blocker) in proc.stderr
    assert open(blocker).read() == "a file, not a folder"
