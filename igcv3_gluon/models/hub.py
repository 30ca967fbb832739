"""Published ImageNet weights: which file, where its publisher keeps it, and a download that
never caches a damaged file.

The addresses, file names and SHA-1 sums are read from the publishers' own model stores at
call time (``gluoncv2.models.model_store._model_sha1`` of osmr/imgclsmob, and
``gluoncv.model_zoo.model_store._model_sha1`` of GluonCV), and the URL is built as their
``get_model_file`` builds it:

* imgclsmob: ``https://github.com/osmr/imgclsmob/releases/download/{tag}/{name}-{error}-
  {sha1[:8]}.params.zip``;
* GluonCV: ``$MXNET_GLUON_REPO`` (default Apache's S3 bucket) ``gluon/models/{name}-
  {sha1[:8]}.zip``.

Both keep the file under ``$MXNET_HOME/models`` (default ``~/.mxnet/models``) with its own
name, so a file their code downloaded is found here and the other way round. Set
``IGCV3_GLUON_MIRROR`` to a base URL laid out as both stores (``osmr/imgclsmob/releases/...``,
``gluon/models/...``) to download from a mirror.

The publishers' figures below are their own tables: imgclsmob's ``gluon/README.md`` (ImageNet-1K,
rows "IGCV3 x0.25" .. "IGCV3 x1.0", given there as errors) and GluonCV's
``docs/model_zoo/csv_tables/Classifications/MobileNet.csv`` (row MobileNetV2_1.0).
"""
import os
import shutil
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass

from tqdm import tqdm

from ..errors import DownloadError
from ..utils import file_digest, remove_files
from ..utils import say as _say

__all__ = ["Published", "PUBLISHED", "published", "store_entry", "models_root", "fetch",
           "writable_folder",
           "sha1_of", "MIRROR_ENV"]

MIRROR_ENV = "IGCV3_GLUON_MIRROR"
IMGCLSMOB_REPO = "https://github.com/osmr/imgclsmob"


@dataclass(frozen=True)
class Published:
    """One published set of ImageNet weights for a zoo model."""
    model: str          # our zoo name
    publisher: str      # "imgclsmob" or "gluoncv"
    name: str           # the publisher's model name
    top1: float         # the publisher's ImageNet validation accuracy, % (single 224 crop)
    top5: float
    figures: str        # where the figures are written
    params: int         # the size of the publisher's network (their table; GluonCV: counted)


_IMGCLSMOB_TABLE = "imgclsmob gluon/README.md, ImageNet-1K table"
PUBLISHED = {p.model: p for p in [
    # errors 27.73 / 9.00, 30.71 / 10.96, 39.41 / 17.03, 53.43 / 28.30 in their table
    Published("igcv3_d_1.0", "imgclsmob", "igcv3_w1", 72.27, 91.00, _IMGCLSMOB_TABLE,
              3491688),
    Published("igcv3_d_0.75", "imgclsmob", "igcv3_w3d4", 69.29, 89.04, _IMGCLSMOB_TABLE,
              2638084),
    Published("igcv3_d_0.5", "imgclsmob", "igcv3_wd2", 60.59, 82.97, _IMGCLSMOB_TABLE,
              1985528),
    Published("igcv3_d_0.25", "imgclsmob", "igcv3_wd4", 46.57, 71.70, _IMGCLSMOB_TABLE,
              1534020),
    # GluonCV's classifier is a bias-free 1x1 convolution: ours has 1,000 more (zero) biases
    Published("mobilenetv2_1.0", "gluoncv", "mobilenetv2_1.0", 72.04, 90.57,
              "GluonCV docs/model_zoo/csv_tables/Classifications/MobileNet.csv", 3503872),
]}


def published(model):
    """The ``Published`` entry of zoo ``model``; DownloadError (one line) when its weights
    were never published."""
    if model not in PUBLISHED:
        raise DownloadError(
            "no published ImageNet weights exist for %s (published: %s); train it "
            "(train_imagenet.py / train_cifar.py) or give a weights file's path"
            % (model, ", ".join(PUBLISHED)))
    return PUBLISHED[model]


def models_root(root=None):
    """``root``, else ``$MXNET_HOME/models``, else ``~/.mxnet/models`` (as GluonCV)."""
    if root is None:
        home = os.environ.get("MXNET_HOME")
        root = os.path.join(home, "models") if home else os.path.join("~", ".mxnet", "models")
    return os.path.expanduser(root)


def writable_folder(folder):
    """Create ``folder`` (a folder of the weights cache) if needed and check that files can
    be written in it; ``DownloadError`` in one line otherwise, naming ``MXNET_HOME`` when the
    folder comes from it (a file in the way, no permission, a read-only file system)."""
    home = os.environ.get("MXNET_HOME")
    source = (" (from MXNET_HOME=%s)" % home if home and os.path.abspath(folder).startswith(
        os.path.abspath(os.path.expanduser(home))) else "")
    fix = "set MXNET_HOME to a writable folder" if source else "give a writable root"
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise DownloadError("the weights cache %s%s cannot be created (%s): %s"
                            % (folder, source, err.strerror or err, fix)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DownloadError("the weights cache %s%s is not writable: %s" % (folder, source, fix))
    return folder


def store_entry(pub):
    """``dict(sha1, file_name, url)`` of ``pub`` from its publisher's own table."""
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    if pub.publisher == "imgclsmob":
        from gluoncv2.models.model_store import _model_sha1
        error, sha1, tag = _model_sha1[pub.name]
        file_name = "%s-%s-%s.params" % (pub.name, error, sha1[:8])
        repo = mirror + "/osmr/imgclsmob" if mirror else IMGCLSMOB_REPO
        url = "%s/releases/download/%s/%s.zip" % (repo, tag, file_name)
    else:
        from gluoncv.model_zoo.model_store import _model_sha1, apache_repo_url
        sha1 = _model_sha1[pub.name]
        file_name = "%s-%s.params" % (pub.name, sha1[:8])
        repo = mirror + "/" if mirror else os.environ.get("MXNET_GLUON_REPO", apache_repo_url)
        repo = repo if repo.endswith("/") else repo + "/"
        url = "%sgluon/models/%s.zip" % (repo, file_name[:-len(".params")])
    return dict(sha1=sha1, file_name=file_name, url=url)


def sha1_of(path):
    """The SHA-1 the publishers list for their files."""
    return file_digest(path, "sha1")


def _download(url, part, progress, timeout):
    """``url`` into ``part``; DownloadError (one line) on any network failure."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise DownloadError("%s answered %d %s" % (url, err.code, err.reason)) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError("cannot reach %s (%s)" % (url, reason)) from None
    total = int(response.headers.get("Content-Length") or 0)
    bar = None
    if progress:
        bar = tqdm(total=total or None, unit="B", unit_scale=True, leave=False,
                   desc=os.path.basename(url))
    received = 0
    try:
        with response, open(part, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise DownloadError("the download of %s broke off after %d bytes (%s)"
                            % (url, received, err)) from None
    finally:
        if bar is not None:
            bar.close()
    if total and received != total:
        raise DownloadError("the download of %s stopped at %d of %d bytes" % (url, received,
                                                                             total))


def fetch(pub, root=None, progress=True, timeout=60, say=None):
    """The publisher's weights file of ``pub`` in ``models_root(root)``, downloaded if it is
    not there (or not the publisher's: its SHA-1 differs). A damaged or cut-off download is
    refused in one line and nothing is kept; a partial file left by an interrupted download
    (``NAME.zip.part``) is discarded. Returns the path."""
    say = say or _say
    entry = store_entry(pub)
    root = models_root(root)
    path = os.path.join(root, entry["file_name"])
    replaced = ""
    by_hand = ("; without a network, download it elsewhere and put %s (SHA-1 %s; unzipped) "
               "in %s (or give that file's path instead)" % (entry["file_name"],
                                                             entry["sha1"], root))
    if os.path.isfile(path):
        if sha1_of(path) == entry["sha1"]:
            return path
        say("%s is not %s's file (SHA-1 differs): downloading it again" % (path, pub.publisher))
        os.remove(path)
        replaced = "; the %s that was there failed its SHA-1 check and was removed" % (
            entry["file_name"])
    writable_folder(root)
    archive = path + ".zip" if pub.publisher == "imgclsmob" else path[:-len(".params")] + ".zip"
    part = archive + ".part"
    if os.path.exists(part):
        say("discarding %s (left by an interrupted download)" % part)
        os.remove(part)
    say("downloading %s's %s from %s" % (pub.publisher, pub.name, entry["url"]))
    try:
        _download(entry["url"], part, progress, timeout)
        try:
            with zipfile.ZipFile(part) as zf:
                if entry["file_name"] not in zf.namelist():
                    raise DownloadError("%s holds no %s (it holds %s)" % (
                        entry["url"], entry["file_name"], ", ".join(zf.namelist()[:3])))
                with zf.open(entry["file_name"]) as src, open(path + ".part", "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, EOFError, zlib.error):
            raise DownloadError("%s is not a complete zip archive (damaged or cut off)"
                                % entry["url"]) from None
        got = sha1_of(path + ".part")
        if got != entry["sha1"]:
            raise DownloadError("%s unpacks to a file with SHA-1 %s, %s lists %s: damaged, "
                                "not cached; try again" % (entry["url"], got[:12],
                                                            pub.publisher, entry["sha1"][:12]))
        os.replace(path + ".part", path)
    except DownloadError as err:
        remove_files(part, path + ".part")
        raise DownloadError(str(err) + replaced + by_hand) from None
    except BaseException:
        remove_files(part, path + ".part")
        raise
    finally:
        remove_files(part)
    return path
