"""Published ImageNet weights in one call (``get_model(name, pretrained=True)``,
``train_imagenet.py --eval-only --pretrained``), without a network: the files are served from
127.0.0.1, laid out as the publishers' stores, built here from random weights in the
publishers' own formats; the publishers' tables are pointed at their SHA-1 sums."""
import functools
import http.server
import os
import threading
import zipfile

import mxnet as mx
import numpy as np
import pytest

import igcv3_gluon
from igcv3_gluon.errors import DownloadError
from igcv3_gluon.models.hub import PUBLISHED, sha1_of
from igcv3_gluon.nn import init_like_trained

from conftest import photos_labelled_by


class Store:
    """A local HTTP server over ``root`` that counts the requests it answers."""

    def __init__(self, root):
        self.root, self.requests = str(root), []
        store = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                store.requests.append(self.path)
                return super().do_GET()
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=self.root))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def put(self, relpath, member, data):
        """A zip archive at ``relpath`` holding ``member`` with ``data``."""
        path = os.path.join(self.root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(member, data)
        return path


@pytest.fixture
def store(tmp_path, monkeypatch):
    s = Store(tmp_path / "store")
    monkeypatch.setenv("IGCV3_GLUON_MIRROR", s.url)
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "home"))
    yield s
    s.server.shutdown()


def publish_imgclsmob(store, monkeypatch, tmp_path, name, net, corrupt=None):
    """``net`` saved as imgclsmob's file ``name`` in their store; their table lists its SHA-1.
    ``corrupt``: "byte" (one byte changed after hashing) or "cut" (the archive truncated)."""
    from gluoncv2.models import model_store
    error, _, tag = model_store._model_sha1[name]
    raw = str(tmp_path / ("%s-source.params" % name))
    net.save_parameters(raw)
    sha1 = sha1_of(raw)
    data = open(raw, "rb").read()
    if corrupt == "byte":
        data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
    file_name = "%s-%s-%s.params" % (name, error, sha1[:8])
    path = store.put("osmr/imgclsmob/releases/download/%s/%s.zip" % (tag, file_name),
                     file_name, data)
    if corrupt == "cut":
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
    monkeypatch.setitem(model_store._model_sha1, name, (error, sha1, tag))
    return file_name, raw


@pytest.fixture
def wd4():
    from gluoncv2.model_provider import get_model as imgclsmob_model
    return init_like_trained(imgclsmob_model("igcv3_wd4"), seed=4)


def pretrained(name, source=True):
    """The zoo model with plain BatchNorm, the publishers' kernels: equal logits to the last
    bit (these random weights amplify float rounding: a 1e-6 change of the input moves the
    logits by 0.04, so the default FlatBatchNorm form differs by float noise, not by weights)."""
    return igcv3_gluon.get_model(name, pretrained=source, norm_layer=mx.gluon.nn.BatchNorm)


def _logits(net, seed=0):
    x = mx.nd.array(np.random.RandomState(seed).uniform(-1, 1, (2, 3, 224, 224)))
    return net(x).asnumpy()


def _files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, fs in os.walk(folder) for f in fs)


def test_imgclsmob_weights_download_convert_and_cache_once(store, monkeypatch, tmp_path, wd4):
    file_name, raw = publish_imgclsmob(store, monkeypatch, tmp_path, "igcv3_wd4", wd4)
    net = pretrained("igcv3_d_0.25")
    want = _logits(wd4)
    assert np.abs(_logits(net) - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
    cfg = net.pretrained_cfg
    assert (cfg["model"], cfg["classes"], cfg["input_size"], cfg["crop_ratio"]) == (
        "igcv3_d_0.25", 1000, 224, 0.875)
    np.testing.assert_allclose(cfg["mean"], [123.675, 116.28, 103.53])
    np.testing.assert_allclose(cfg["std"], [58.395, 57.12, 57.375])
    assert (cfg["published"]["top1"], cfg["published"]["top5"]) == (46.57, 71.70)
    assert cfg["published"]["url"].startswith(store.url + "/osmr/imgclsmob/releases/download/")
    assert len(store.requests) == 1
    home = str(tmp_path / "home" / "models")
    sha8 = sha1_of(raw)[:8]
    assert _files(home) == sorted([file_name, "igcv3_gluon/igcv3_d_0.25-igcv3_wd4-%s.params"
                                   % sha8, "igcv3_gluon/igcv3_d_0.25-igcv3_wd4-%s-meta.json"
                                   % sha8])
    # a second call reads the cache: no download, the same network
    again = pretrained("igcv3_d_0.25")
    assert len(store.requests) == 1
    np.testing.assert_array_equal(_logits(again), _logits(net))
    # the publisher's own file, downloaded by hand, as pretrained=PATH
    by_hand = pretrained("igcv3_d_0.25", raw)
    np.testing.assert_array_equal(_logits(by_hand), _logits(net))
    assert by_hand.pretrained_cfg["published"]["top1"] == 46.57


@pytest.mark.parametrize("fault, message", [
    ("byte", r"unpacks to a file with SHA-1 [0-9a-f]{12}, imgclsmob lists [0-9a-f]{12}: "
             r"damaged, not cached"),
    ("cut", r"is not a complete zip archive \(damaged or cut off\)"),
    ("missing", r"answered 404")])
def test_damaged_or_missing_downloads_are_one_line_and_nothing_is_cached(
        store, monkeypatch, tmp_path, wd4, fault, message):
    publish_imgclsmob(store, monkeypatch, tmp_path, "igcv3_wd4", wd4,
                      corrupt=None if fault == "missing" else fault)
    if fault == "missing":
        for f in _files(store.root):
            os.remove(os.path.join(store.root, f))
    home = str(tmp_path / "home" / "models")
    with pytest.raises(DownloadError, match=message) as err:
        igcv3_gluon.get_model("igcv3_d_0.25", pretrained=True)
    text = str(err.value)
    assert "\n" not in text and store.url in text and "put igcv3_wd4-2830-" in text
    assert "in %s" % home in text
    assert _files(home) == [], _files(home)


def test_a_partial_file_of_an_interrupted_download_is_discarded(store, monkeypatch, tmp_path,
                                                                 wd4, capsys):
    file_name, _ = publish_imgclsmob(store, monkeypatch, tmp_path, "igcv3_wd4", wd4)
    home = tmp_path / "home" / "models"
    home.mkdir(parents=True)
    (home / (file_name + ".zip.part")).write_bytes(b"PK\x03\x04 half an archive")
    net = pretrained("igcv3_d_0.25")
    assert "discarding %s" % (home / (file_name + ".zip.part")) in capsys.readouterr().err
    assert not (home / (file_name + ".zip.part")).exists()
    want = _logits(wd4)
    assert np.abs(_logits(net) - want).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_without_a_network_one_line_names_the_address_and_where_to_put_the_file(
        store, monkeypatch, tmp_path, wd4):
    file_name, raw = publish_imgclsmob(store, monkeypatch, tmp_path, "igcv3_wd4", wd4)
    monkeypatch.setenv("IGCV3_GLUON_MIRROR", "http://127.0.0.1:9")      # nothing listens
    home = tmp_path / "home" / "models"
    home.mkdir(parents=True)
    (home / file_name).write_bytes(b"a damaged copy")
    with pytest.raises(DownloadError) as err:
        igcv3_gluon.get_model("igcv3_d_0.25", pretrained=True)
    text = str(err.value)
    assert "; the %s that was there failed its SHA-1 check and was removed" % file_name in text
    assert not (home / file_name).exists()
    assert text.startswith("cannot reach http://127.0.0.1:9/osmr/imgclsmob/releases/download/"
                           "v0.0.142/%s.zip" % file_name), text
    assert "put %s (SHA-1 %s; unzipped) in %s" % (file_name, sha1_of(raw), home) in text
    # done by hand, it works without the network
    home.mkdir(parents=True, exist_ok=True)
    with open(raw, "rb") as src, open(str(home / file_name), "wb") as dst:
        dst.write(src.read())
    net = pretrained("igcv3_d_0.25")
    want = _logits(wd4)
    assert np.abs(_logits(net) - want).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_gluoncv_mobilenetv2_converts_from_its_store(store, monkeypatch, tmp_path):
    """GluonCV's layout (gluon/models/NAME-SHA8.zip) and its classifier (a bias-free 1x1
    convolution of the pooled vector) into our MobileNetV2 1.0 with an FC layer."""
    from gluoncv.model_zoo import get_model as gluoncv_model
    from gluoncv.model_zoo import model_store
    theirs = gluoncv_model("mobilenetv2_1.0")
    theirs.initialize()
    theirs(mx.nd.zeros((1, 3, 224, 224)))                  # its shapes are deferred
    theirs = init_like_trained(theirs, seed=2)
    raw = str(tmp_path / "mnv2.params")
    theirs.save_parameters(raw)
    sha1 = sha1_of(raw)
    store.put("gluon/models/mobilenetv2_1.0-%s.zip" % sha1[:8],
              "mobilenetv2_1.0-%s.params" % sha1[:8], open(raw, "rb").read())
    monkeypatch.setitem(model_store._model_sha1, "mobilenetv2_1.0", sha1)
    net = pretrained("mobilenetv2_1.0")
    want = _logits(theirs)
    assert np.abs(_logits(net) - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
    assert net.pretrained_cfg["published"]["top1"] == 72.04
    assert store.requests == ["/gluon/models/mobilenetv2_1.0-%s.zip" % sha1[:8]]


def test_models_without_published_weights_say_so_in_one_line(store):
    """... and those with: our network has the publisher's size (GluonCV's counted from its
    own network; our FC adds 1,000 zero biases)."""
    from gluoncv.model_zoo import get_model as gluoncv_model

    from igcv3_gluon.complexity import count
    assert set(PUBLISHED) == {"igcv3_d_1.0", "igcv3_d_0.75", "igcv3_d_0.5", "igcv3_d_0.25",
                              "mobilenetv2_1.0"}
    for name, pub in PUBLISHED.items():
        assert count(igcv3_gluon.get_model(name))[0] == pub.params + (
            1000 if pub.publisher == "gluoncv" else 0), name
    theirs = gluoncv_model("mobilenetv2_1.0")
    theirs.initialize()
    theirs(mx.nd.zeros((1, 3, 224, 224)))
    assert sum(int(np.prod(p.shape)) for n, p in theirs.collect_params().items()
               if "running" not in n) == PUBLISHED["mobilenetv2_1.0"].params
    for name in ("igcv3_w_1.0", "cifar_igcv3_d_1.0", "ssdlite_320_igcv3_w_coco"):
        with pytest.raises(DownloadError, match="no published ImageNet weights exist for %s"
                                                % name):
            igcv3_gluon.get_model(name, pretrained=True)
    assert store.requests == []


def test_eval_only_pretrained_prints_the_publishers_figures(store, monkeypatch, tmp_path,
                                                            wd4, capsys):
    """`train_imagenet.py --eval-only --pretrained` on generated photos labelled by the
    publisher's own network fed the publisher's preprocessing: the converted weights give
    the same predictions, and the figures are printed beside the publisher's."""
    from igcv3_gluon import imagenet
    labels = photos_labelled_by(wd4, str(tmp_path / "val.rec"))
    assert len(set(labels)) >= 3, labels
    publish_imgclsmob(store, monkeypatch, tmp_path, "igcv3_wd4", wd4)
    code = imagenet.main(["--eval-only", "--pretrained", "--model", "igcv3_d_0.25",
                          "--rec-val", str(tmp_path / "val.rec"), "--no-progress",
                          "--data-nthreads", "1", "--out-dir", str(tmp_path / "ev")])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    import re
    top1 = float(re.search(r"\(24 images\): top-1 ([\d.]+)%", out.out).group(1))
    assert top1 >= 90.0, out.out
    assert "short side 256" in out.err and "(pixel - 123.675,116.28,103.53)" in out.err
    assert re.search(r"published by imgclsmob \(igcv3_wd4, imgclsmob gluon/README.md, "
                     r"ImageNet-1K table\): top-1 46.57%  top-5 71.70%; ours - theirs: "
                     r"[+-][\d.]+ / [+-][\d.]+ points", out.out), out.out
    assert imagenet.main(["--pretrained", "--model", "igcv3_d_0.25", "--rec-val",
                          str(tmp_path / "val.rec")]) == 2
    assert "use it with --eval-only" in capsys.readouterr().err


def test_deploy_export_and_the_detector_backbone_take_the_published_weights(
        store, monkeypatch, tmp_path, wd4, capsys):
    """`deploy export MODEL --params pretrained` writes the publisher's normalisation into the
    export's description; `train_ssdlite.py --backbone-params pretrained` resolves the
    detector's backbone classifier (MobileNetV2 1.0: GluonCV's weights; IGCV3-W: none were
    published, one line)."""
    import json

    from igcv3_gluon import detection
    from igcv3_gluon.deploy.__main__ import main as deploy_main
    from igcv3_gluon.deploy.export import load_symbolblock
    publish_imgclsmob(store, monkeypatch, tmp_path, "igcv3_wd4", wd4)
    out = str(tmp_path / "exp" / "m")
    assert deploy_main(["export", "igcv3_d_0.25", "--params", "pretrained", "--out", out]) == 0
    meta = json.load(open(out + "-meta.json"))
    assert meta["model"] == "igcv3_d_0.25" and meta["classes"] == 1000
    np.testing.assert_allclose(meta["mean"], [123.675, 116.28, 103.53])
    np.testing.assert_allclose(meta["std"], [58.395, 57.12, 57.375])
    want = pretrained("igcv3_d_0.25")
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, 224, 224)))
    assert np.argmax(load_symbolblock(out)(x).asnumpy()) == np.argmax(want(x).asnumpy())
    args = detection.build_parser().parse_args(["--model", "ssdlite_320_mobilenetv2_coco"])
    assert detection._backbone_classifier(args) == "mobilenetv2_1.0"
    capsys.readouterr()
    assert detection.main(["--backbone-params", "pretrained", "--model",
                           "ssdlite_320_igcv3_w_coco", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no published ImageNet weights exist for igcv3_w_1.0" in err[0]


def test_pretrained_path_reads_its_runs_description(tmp_path):
    """Our own run of another class count and width loads by its path alone: the run's
    config.json gives the classes and the width."""
    import json
    net = igcv3_gluon.get_model("igcv3_d_0.25", classes=2, multiplier=0.5)
    net.initialize(mx.init.Xavier())
    run = tmp_path / "run"
    run.mkdir()
    net.save_parameters(str(run / "best.params"))
    json.dump(dict(model="igcv3_d_0.25", classes=2, multiplier=0.5),
              open(str(run / "config.json"), "w"))
    again = igcv3_gluon.get_model("igcv3_d_0.25", pretrained=str(run))
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, 64, 64)))
    np.testing.assert_array_equal(again(x).asnumpy(), net(x).asnumpy())
    assert again.pretrained_cfg["classes"] == 2
