import os
import sys
import warnings

# One OpenMP thread per process: `make test` runs two workers on two cores, each starting
# training subprocesses; with OpenMP's default (a thread per core each) the processes
# oversubscribe the cores and every training step took 2.5x as long (measured: 0.67 s
# against 0.27 s a batch for two concurrent runs). Set before MXNet loads; inherited by
# every subprocess a test starts.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import mxnet as mx  # noqa: E402
import numpy as np
import pytest

from igcv3_gluon.nn import init_like_trained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="Cannot decide type")


def randomize(net, seed=0, input_shape=None):
    """Initialise ``net`` like a trained network (``nn.init_like_trained``), BN running
    statistics calibrated on a random batch when ``input_shape`` is given (as training
    leaves them), so output comparisons exercise every parameter at realistic scales."""
    init_like_trained(net, seed)
    if input_shape is not None:
        rng = np.random.RandomState(seed)
        calibrate_bn(net, mx.nd.array(rng.uniform(-1, 1, input_shape)))
    return net


def calibrate_bn(net, x):
    """Set every BN's running mean/var to the statistics of batch ``x`` (momentum 0)."""
    bns = []

    def walk(block):
        for child in block._children.values():
            if isinstance(child, mx.gluon.nn.BatchNorm):
                bns.append(child)
            walk(child)
    walk(net)
    for bn in bns:
        bn._kwargs["momentum"] = 0.0
    with mx.autograd.record(train_mode=True):     # MXNet updates running stats in backward
        out = net(x)
    out.backward()
    for bn in bns:
        bn._kwargs["momentum"] = 0.9


@pytest.fixture
def rng():
    return np.random.RandomState(0)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photos_labelled_by(source, path, count=24, seed=0):
    """A val.rec of ``count`` generated photos (a colour each, JPEG) labelled by ``source``
    (a publisher's Gluon classifier with random weights) fed the publisher's preprocessing
    (0-1 pixels, ImageNet mean/std, short side 256, centre 224). The FC layer of ``source``
    is first rescaled and centred on these images so that its random weights tell them
    apart; returns the labels."""
    import cv2
    rng = np.random.RandomState(seed)
    jpgs, batch = [], []
    for _ in range(count):
        h, w = rng.randint(240, 330), rng.randint(260, 420)
        texture = rng.randint(0, 60, (h // 16, w // 16, 3)) + rng.randint(0, 190, 3)
        img = cv2.resize(texture.astype(np.uint8), (w, h))
        jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        rgb = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        s = 256 / min(h, w)
        rgb = cv2.resize(rgb, (int(w * s), int(h * s)), interpolation=cv2.INTER_LINEAR)
        top, left = (rgb.shape[0] - 224) // 2, (rgb.shape[1] - 224) // 2
        x = rgb[top:top + 224, left:left + 224].astype(np.float32) / 255.0
        jpgs.append(jpg)
        batch.append(((x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(2, 0, 1))
    batch = mx.nd.array(np.stack(batch))
    feats = source.features(batch).reshape((count, -1))
    fc = [b for b in source.output._children.values() if hasattr(b, "weight")] \
        if hasattr(source.output, "_children") and source.output._children else [source.output]
    weight = fc[0].weight
    flat = weight.data().reshape((weight.shape[0], -1))
    flat = flat / (feats.asnumpy().std(0).mean() + 1e-6)
    weight.set_data(flat.reshape(weight.shape))
    centre = -mx.nd.dot(flat, feats.mean(axis=0))
    if getattr(fc[0], "bias", None) is not None:
        fc[0].bias.set_data(centre)
    labels = source(batch).asnumpy().argmax(1).tolist()
    rec = mx.recordio.MXIndexedRecordIO(path[:-4] + ".idx", path, "w")
    for i, (jpg, label) in enumerate(zip(jpgs, labels)):
        rec.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, float(label), i, 0), jpg))
    rec.close()
    return labels


class OracleDetector:
    """A stand-in detector that answers each image of ``dataset`` (in order) with its own
    ground-truth boxes, scaled by ``scale`` to the network's input, classes shifted by
    ``shift`` (modulo the class count): AP 1 unshifted, 0 shifted."""

    def __init__(self, dataset, scale, shift=0):
        self.dataset, self.scale, self.shift, self.i = dataset, scale, shift, 0

    def set_nms(self, **kwargs):
        pass

    def hybridize(self, **kwargs):
        pass

    def __call__(self, x):
        label = self.dataset.items[self.i][2]
        self.i += 1
        n, classes = len(label), len(self.dataset.classes)
        ids, scores, boxes = np.full((1, 100, 1), -1.0), np.zeros((1, 100, 1)), \
            np.zeros((1, 100, 4))
        ids[0, :n, 0] = (label[:, 4] + self.shift) % classes
        scores[0, :n, 0] = 0.9
        boxes[0, :n] = label[:, :4] * self.scale
        return [mx.nd.array(a) for a in (ids, scores, boxes)]


def fake_cifar10(root, per_file=3, seed=0):
    """Write CIFAR-10 binary files (``per_file`` random images in each of the 5 training
    batches and the test batch) under ``root/cifar-10-batches-bin``; returns the folder and
    ``{file name: (images, labels)}``."""
    from igcv3_gluon.data import write_cifar_binary
    rng = np.random.RandomState(seed)
    folder = os.path.join(str(root), "cifar-10-batches-bin")
    os.makedirs(folder)
    data = {}
    for name in ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]:
        images = rng.randint(0, 256, (per_file, 32, 32, 3)).astype(np.uint8)
        labels = rng.randint(0, 10, per_file)
        write_cifar_binary(os.path.join(folder, name), images, labels)
        data[name] = (images, labels)
    return folder, data


def digits_cifar(root, train_per_class=16, test_per_class=8):
    """A small real data set in CIFAR-10's binary layout under ``root/cifar-10-batches-bin``:
    the first ``train_per_class`` / ``test_per_class`` images of each digit of the embedded
    digits set (32x32x3), for runs that need real data but not many epochs of it (``--data-dir
    ROOT``: 160 training images are 5 batches of 32). Returns ``root``."""
    from igcv3_gluon.data import load_digits32, write_cifar_binary
    train_x, train_y, test_x, test_y = load_digits32()
    folder = os.path.join(str(root), "cifar-10-batches-bin")
    os.makedirs(folder, exist_ok=True)

    def first(x, y, n):
        pick = np.concatenate([np.flatnonzero(y == d)[:n] for d in range(10)])
        return x[pick], y[pick]
    x, y = first(train_x, train_y, train_per_class)
    parts = np.array_split(np.random.RandomState(0).permutation(len(x)), 5)
    for k, part in enumerate(parts, 1):
        write_cifar_binary(os.path.join(folder, "data_batch_%d.bin" % k), x[part], y[part])
    write_cifar_binary(os.path.join(folder, "test_batch.bin"),
                       *first(test_x, test_y, test_per_class))
    return str(root)


_SMALL_DIGITS = []


def small_digits():
    """The folder of a ``digits_cifar`` set of 32 training images per digit (320: ten
    batches of 32) and 8 test images per digit, made once per test process: the data of the
    runs that need real images but neither accuracy nor many of them."""
    if not _SMALL_DIGITS:
        import tempfile
        _SMALL_DIGITS.append(digits_cifar(tempfile.mkdtemp(prefix="small-digits-"), 32, 8))
    return _SMALL_DIGITS[0]


def fake_image_folder(root, per_class=30, classes=4, seed=0):
    """``root/class<k>/<i>.jpg`` (``data.synthetic.colour_folders``)."""
    from igcv3_gluon.data.synthetic import colour_folders
    return colour_folders(root, per_class, classes, seed)


@pytest.fixture(scope="session")
def tiny_rec(tmp_path_factory):
    """A tiny ImageNet-style RecordIO pair: 4 classes, 30 train / 10 val images per class,
    packed with the project's im2rec. Returns ``{"train": prefix, "val": prefix}``."""
    from igcv3_gluon.data.im2rec import pack_folder
    base = tmp_path_factory.mktemp("tinyrec")
    train = fake_image_folder(base / "images" / "train", 30, seed=0)
    val = fake_image_folder(base / "images" / "val", 10, seed=1)
    _, classes, _ = pack_folder(train, str(base / "rec" / "train"), progress=False)
    pack_folder(val, str(base / "rec" / "val"), classes=classes, shuffle=False, progress=False)
    return {"train": str(base / "rec" / "train"), "val": str(base / "rec" / "val"),
            "images": str(base / "images")}


def fake_coco(root, images=40, size=320, seed=0, name="shapes"):
    """A COCO-format set of generated shapes (``data.synthetic.shapes_coco``)."""
    from igcv3_gluon.data.synthetic import shapes_coco
    return shapes_coco(root, images, size, seed, name)


def launch_dist_sync(script, args, timeout=300):
    """Run ``python script args --kvstore dist_sync`` as two workers with a scheduler and a
    server on loopback (igcv3_gluon.train.launch); fails the test on a non-zero exit."""
    import subprocess
    cmd = [sys.executable, "-m", "igcv3_gluon.train.launch", "-n", "2", "-s", "1",
           "--timeout", str(timeout - 60), "--", sys.executable, script] + list(args) + \
        ["--kvstore", "dist_sync"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_identical_workers(out_dir, min_trained):
    """Every trainable parameter of ``final-rank0.params`` equals ``final-rank1.params``."""
    ranks = [mx.nd.load(os.path.join(out_dir, "final-rank%d.params" % r)) for r in (0, 1)]
    trained = [k for k in ranks[0] if "running" not in k]
    assert len(trained) > min_trained
    for key in trained:
        np.testing.assert_array_equal(ranks[0][key].asnumpy(), ranks[1][key].asnumpy(), key)


def start_script(script, args):
    """Start ``python script args`` from the repository root in its own session (so a test
    can send it SIGINT or kill its whole process group)."""
    import subprocess
    return subprocess.Popen([sys.executable, script] + list(args), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(path, proc):
    """Wait until ``path`` exists while ``proc`` keeps running (fails if it ends first). No
    deadline of its own: a slow machine only makes the wait longer; a run that hangs is
    ended by pytest-timeout (pytest.ini)."""
    import time
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


DEMO_FIXTURES = {"demo_run", "digits_run", "sandbox"}
# fixtures made once and read by several tests: their tests share one worker (a group),
# or each worker would make its own (test_int8's two quantized IRs took 35 s a worker)
SHARED_FIXTURES = {"detector": {"trained_detector"}, "int8-ir": {"quantized"}}


# what starts a training run (or another long job) in a test's code or in a fixture it uses
TRAINS = ("train_cifar.py", "train_imagenet.py", "train_ssdlite.py", "launch_dist_sync",
          "horovodrun", "igcv3_gluon.demo", "igcv3_gluon.selfcheck", "quantize(",
          "quantize_ir(", "quantize_gated(", "\"quantize\"", "\"--int8\"")


def _helpers(function, module):
    """The functions of ``module`` that ``function`` calls by name (the tests' ``train``,
    ``run`` helpers)."""
    import ast
    import inspect
    import textwrap
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (TypeError, OSError, SyntaxError):
        return []
    names = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return [getattr(module, n) for n in names if inspect.isfunction(getattr(module, n, None))]


def _trains(item):
    """Whether ``item`` trains (or quantizes): its function's code, the code of a fixture it
    uses, or of a helper of its module they call, starts one (``TRAINS``). `make check` runs
    the others."""
    import inspect
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        functions += [d.func for d in defs]
    module = getattr(item, "module", None)
    functions += [h for f in list(functions) if f is not None for h in _helpers(f, module)]
    for function in functions:
        try:
            source = inspect.getsource(function)
        except (TypeError, OSError):
            continue
        if any(token in source for token in TRAINS):
            return True
    return False


def pytest_itemcollected(item):
    """`make test` runs the suite on 2 workers (pytest-xdist, ``--dist loadgroup``): every
    test that reads the demo's run goes to one worker, so the run is trained once; so do the
    tests of each of the ``SHARED_FIXTURES``. (Marked as each test is collected: xdist reads
    the groups in its collection_modifyitems.) Tests that train are marked ``trains``."""
    names = set(getattr(item, "fixturenames", ()))
    groups = [name for name, fixtures in SHARED_FIXTURES.items() if fixtures & names]
    if DEMO_FIXTURES & names:
        item.add_marker(pytest.mark.xdist_group("demo"))
    elif groups:
        item.add_marker(pytest.mark.xdist_group(groups[0]))
    if _trains(item):
        item.add_marker(pytest.mark.trains)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`make demo`'s job, run once for the whole suite (about 2 minutes):
    ``python -m igcv3_gluon.demo`` trains cifar_igcv3_d_0.5 at half width on digits for 8
    epochs, exports, reloads and checks ONNX. Returns ``(run folder, stdout)``; the demo
    test checks the run, the deployment, new-user and README tests read it (none writes
    into it)."""
    import subprocess
    out = str(tmp_path_factory.mktemp("demo") / "demo")
    proc = subprocess.run([sys.executable, "-m", "igcv3_gluon.demo", "--out-dir", out],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


@pytest.fixture(scope="session")
def digits_run(demo_run):
    """The demo's run folder: a digits model trained by train_cifar.py (>= 95% top-1)."""
    return demo_run[0]


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    """An SSDLite2 (width 0.5, 128 px) trained for 6 epochs on 320 generated COCO-format
    images of 3 classes, validated on 24 others (``train_ssdlite.py``; measured: AP50 0.65 to
    0.85, about 100 s on 2 cores). Returns ``(run folder, validation (ann, images))``."""
    import subprocess
    root = tmp_path_factory.mktemp("detector")
    train = fake_coco(root, 320, seed=0, name="train")
    val = fake_coco(root, 24, seed=1, name="val")
    out = str(root / "run")
    proc = subprocess.run([sys.executable, "train_ssdlite.py", "--train-ann", train[0],
                           "--train-images", train[1], "--val-ann", val[0], "--val-images",
                           val[1], "--multiplier", "0.5", "--data-shape", "128", "--augment",
                           "light", "--epochs", "6", "--batch-size", "8", "--lr", "0.05",
                           "--lr-mode", "cosine", "--warmup-epochs", "1", "--workers", "0",
                           "--val-interval", "3", "--no-progress", "--out-dir", out],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, val
