"""Published weights: the authors' released graph rebuilt name for name, their
checkpoint and imgclsmob's weights converted into our networks with equal logits."""
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon.deploy.reference import authors_net, authors_symbol, save_authors_checkpoint
from igcv3_gluon.nn import init_like_trained

from conftest import ROOT, photos_labelled_by

FACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "authors")


def convert(*args):
    return subprocess.run([sys.executable, "-m", "igcv3_gluon.convert"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def rows(name):
    with open(os.path.join(FACTS, name)) as fh:
        return [tuple(line.rstrip("\n").split("\t")) for line in fh if not line.startswith("#")]


def test_reference_graph_is_the_authors_released_graph():
    """Every argument and auxiliary state (name, shape) and every operator (name, attributes,
    inputs) of the released igcv3-symbol.json, in order (facts in tests/data/authors)."""
    sym = authors_symbol("igcv3_d", softmax=True)
    args, _, aux = sym.infer_shape(data=(1, 3, 224, 224))
    ours = [("arg", n, "x".join(map(str, s))) for n, s in zip(sym.list_arguments(), args)
            if n not in ("data", "softmax_label")]
    ours += [("aux", n, "x".join(map(str, s))) for n, s in zip(sym.list_auxiliary_states(), aux)]
    assert ours == rows("igcv3_d-params.tsv")
    nodes = json.loads(sym.tojson())["nodes"]
    ops = [(n["op"], n["name"], json.dumps(n.get("attrs", {}), sort_keys=True),
            ",".join(nodes[i[0]]["name"] for i in n["inputs"]
                     if nodes[i[0]]["op"] != "null" or nodes[i[0]]["name"] == "data"))
           for n in nodes if n["op"] != "null"]
    assert ops == rows("igcv3_d-layers.tsv")
    assert len(ops) == 355


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory):
    """A checkpoint in the authors' format (their names, their SoftmaxOutput head) with random
    weights and non-trivial BatchNorm statistics."""
    prefix = str(tmp_path_factory.mktemp("authors") / "igcv3")
    source = authors_net(seed=3)
    save_authors_checkpoint(source, prefix)
    return prefix, source


def test_authors_checkpoint_converts_with_equal_logits(authors_checkpoint, tmp_path, tiny_rec):
    prefix, source = authors_checkpoint
    out = str(tmp_path / "igcv3_d_1.0.params")
    proc = convert("authors", prefix, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "98 convolutions, 98 BatchNorms, 1 FC" in proc.stdout
    # our network (plain BatchNorm: the source's kernels) gives the source's logits
    net = igcv3_gluon.get_model("igcv3_d_1.0", norm_layer=mx.gluon.nn.BatchNorm)
    net.load_parameters(out)
    x = mx.nd.array(np.random.RandomState(7).uniform(-1, 1, (2, 3, 224, 224)))
    want = source(x).asnumpy()
    assert np.abs(want).max() > 1.0                          # a comparison that can fail
    assert np.abs(net(x).asnumpy() - want).max() <= 1e-4 * np.abs(want).max()
    # the input the authors' weights expect travels with them: train_imagenet.py + common/
    # data.py of homles11/IGCV3 subtract rgb_mean 123.68,116.779,103.939 (data.py:122) and
    # divide by nothing; validation at short side 256 (0.533 x 480, data.py:164), centre 224
    meta = json.load(open(out[:-len(".params")] + "-meta.json"))
    assert (meta["mean"], meta["std"], meta["input_size"], meta["crop_ratio"]) == \
        ([123.68, 116.779, 103.939], [1.0, 1.0, 1.0], 224, 0.875)
    # the default (CPU) form loads the same file; train_imagenet.py evaluates it
    igcv3_gluon.get_model("igcv3_d_1.0").load_parameters(out)
    ev = subprocess.run([sys.executable, "train_imagenet.py", "--eval-only", "--params", out,
                         "--rec-val", tiny_rec["val"] + ".rec", "--num-classes", "1000",
                         "--no-progress", "--data-nthreads", "1",
                         "--out-dir", str(tmp_path / "published")], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert re.search(r"\(40 images\): top-1 [\d.]+%  top-5 [\d.]+%", ev.stdout), ev.stdout
    # recorded for the reproduction report
    evaluation = json.load(open(tmp_path / "published" / "evaluation.json"))
    assert set(evaluation) == {"acc", "top5", "params"}
    assert json.load(open(tmp_path / "published" / "config.json"))["dataset"] == "imagenet"


def test_bad_sources_are_one_line_errors(authors_checkpoint, tmp_path):
    prefix, _ = authors_checkpoint
    corrupt = tmp_path / "bad"
    (tmp_path / "bad-symbol.json").write_text(open(prefix + "-symbol.json").read())
    (tmp_path / "bad-0000.params").write_bytes(b"\x00" * 64)
    cases = [
        (["authors", prefix, str(tmp_path / "o.params"), "--model", "igcv3_w_1.0"],
         r"differs from igcv3_w at layer 2: first-3x3-conv-conv2d|differs from igcv3_w"),
        (["authors", str(corrupt), str(tmp_path / "o.params")],
         "bad-0000.params is not an MXNet parameter file"),
        (["authors", str(tmp_path / "nothing"), str(tmp_path / "o.params")],
         "nothing-symbol.json does not exist"),
        (["imgclsmob", prefix + "-0000.params", str(tmp_path / "o.params"), "--model",
          "mobilenetv2_1.0"], "no imgclsmob counterpart"),
    ]
    for args, message in cases:
        proc = convert(*args)
        assert proc.returncode == 2, (args, proc.stderr[-1500:])
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and re.search(message, lines[0]), proc.stderr
        assert not os.path.exists(tmp_path / "o.params")


@pytest.mark.parametrize("ours, theirs", [("igcv3_d_1.0", "igcv3_w1"),
                                          ("igcv3_d_0.25", "igcv3_wd4")])
def test_imgclsmob_weights_convert_with_equal_logits(tmp_path, ours, theirs):
    from gluoncv2.model_provider import get_model as imgclsmob_model

    from igcv3_gluon.complexity import count
    assert count(igcv3_gluon.get_model(ours)) == count(imgclsmob_model(theirs))
    source = init_like_trained(imgclsmob_model(theirs), seed=5)
    src = str(tmp_path / ("%s.params" % theirs))
    source.save_parameters(src)
    out = str(tmp_path / ("%s.params" % ours))
    proc = convert("imgclsmob", src, out, "--model", ours)
    assert proc.returncode == 0, proc.stderr[-2000:]
    net = igcv3_gluon.get_model(ours, norm_layer=mx.gluon.nn.BatchNorm)
    net.load_parameters(out)
    x = mx.nd.array(np.random.RandomState(7).uniform(-1, 1, (2, 3, 224, 224)))
    want = source(x).asnumpy()
    assert np.abs(net(x).asnumpy() - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    # a width that is not this file's: one line naming the first layer that differs
    wrong = convert("imgclsmob", src, str(tmp_path / "x.params"), "--model",
                    "igcv3_d_0.5" if ours != "igcv3_d_0.5" else "igcv3_d_1.0")
    assert wrong.returncode == 2 and ("differs" in wrong.stderr or "does not fit" in wrong.stderr)


def test_converted_imgclsmob_weights_evaluate_with_imgclsmob_preprocessing(tmp_path):
    """convert writes how imgclsmob's weights expect their input (0-1 pixels normalised by
    ImageNet's mean/std, resize 256, centre 224) beside them; `--eval-only --params` alone
    then gives the predictions of imgclsmob's own network fed imgclsmob's own way (the
    labels of this set). Fed the authors' mean-only way instead, it would not."""
    from gluoncv2.model_provider import get_model as imgclsmob_model
    source = init_like_trained(imgclsmob_model("igcv3_wd4", classes=10), seed=3)
    src = str(tmp_path / "igcv3_wd4.params")
    source.save_parameters(src)
    out = str(tmp_path / "converted" / "igcv3_d_0.25.params")
    proc = convert("imgclsmob", src, out, "--model", "igcv3_d_0.25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.load(open(str(tmp_path / "converted" / "igcv3_d_0.25-meta.json")))
    assert meta["model"] == "igcv3_d_0.25" and meta["classes"] == 10
    np.testing.assert_allclose(meta["mean"], [0.485 * 255, 0.456 * 255, 0.406 * 255])
    np.testing.assert_allclose(meta["std"], [0.229 * 255, 0.224 * 255, 0.225 * 255])
    assert meta["crop_ratio"] == 0.875 and meta["input_size"] == 224
    labels = photos_labelled_by(source, str(tmp_path / "val.rec"))
    source.save_parameters(src)
    proc = convert("imgclsmob", src, out, "--model", "igcv3_d_0.25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(set(labels)) >= 3, labels                  # a set that can tell them apart

    def top1(*extra):
        ev = subprocess.run([sys.executable, "train_imagenet.py", "--eval-only", "--params",
                             out, "--rec-val", str(tmp_path / "val.rec"), "--no-progress",
                             "--data-nthreads", "1", "--out-dir", str(tmp_path / "ev")]
                            + list(extra), cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
        assert ev.returncode == 0, ev.stderr[-2000:]
        return ev, float(re.search(r"\(24 images\): top-1 ([\d.]+)%", ev.stdout).group(1))
    ev, acc = top1()
    assert "(pixel - 123.675,116.28,103.53) / 58.395,57.12,57.375, short side 256" in ev.stderr
    assert acc >= 90.0, ev.stdout
    _, mean_only = top1("--mean", "123.68,116.779,103.939", "--std", "1,1,1")
    assert mean_only <= acc - 25.0, (acc, mean_only)
    # deployment reads the same description: no model name, no normalisation flags
    exp = subprocess.run([sys.executable, "-m", "igcv3_gluon.deploy", "export", "--params", out,
                          "--out", str(tmp_path / "exp" / "m")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert exp.returncode == 0, exp.stderr[-2000:]
    exported = json.load(open(str(tmp_path / "exp" / "m-meta.json")))
    assert exported["model"] == "igcv3_d_0.25" and exported["classes"] == 10
    assert exported["mean"] == meta["mean"] and exported["std"] == meta["std"]


def test_a_symbol_file_of_random_bytes_is_one_line(tmp_path):
    """Not JSON, not even UTF-8: one line naming the file, from convert and from deploy."""
    prefix = str(tmp_path / "junk")
    for suffix in ("-symbol.json", "-0000.params"):
        with open(prefix + suffix, "wb") as fh:
            fh.write(np.random.RandomState(0).bytes(300))
    for cmd in (["-m", "igcv3_gluon.convert", "authors", prefix, str(tmp_path / "o.params")],
                ["-m", "igcv3_gluon.deploy", "optimize", prefix, str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable] + cmd, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1000:]
        assert "junk-symbol.json is not an MXNet symbol file" in proc.stderr
    assert not os.path.exists(str(tmp_path / "o.params"))
