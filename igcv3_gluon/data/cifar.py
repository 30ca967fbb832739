"""CIFAR-10/100 in the official *binary* format, and the embedded digits set.

The python-format CIFAR files are pickles; unpickling untrusted files can run code, so they
are never read here. Accepted layouts under the data folder:

* ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (or ``cifar-10-binary.tar.gz``)
* ``cifar-100-binary/{train,test}.bin`` (or ``cifar-100-binary.tar.gz``)
  (the files may also sit directly in the data folder).

Each CIFAR-10 record is 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32); a
CIFAR-100 record has a coarse and a fine label byte first (the fine label is used).
"""
import os
import tarfile

import numpy as np

from ..errors import DataError
from .images import missing

__all__ = ["DATASETS", "load_dataset", "load_cifar", "load_digits32", "write_cifar_binary"]

_LAYOUT = {
    "cifar10": dict(folder="cifar-10-batches-bin", archive="cifar-10-binary.tar.gz",
                    train=["data_batch_%d.bin" % i for i in range(1, 6)],
                    test=["test_batch.bin"], label_bytes=1, classes=10),
    "cifar100": dict(folder="cifar-100-binary", archive="cifar-100-binary.tar.gz",
                     train=["train.bin"], test=["test.bin"], label_bytes=2, classes=100),
}
DATASETS = ("digits", "cifar10", "cifar100")
_PIXELS = 3 * 32 * 32


def _parse(blob, label_bytes, name):
    record = label_bytes + _PIXELS
    if len(blob) == 0 or len(blob) % record:
        raise DataError("%s: %d bytes is not a whole number of %d-byte CIFAR records "
                        "(truncated or not the binary version?)" % (name, len(blob), record))
    rows = np.frombuffer(blob, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int32)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_split(data_dir, layout, files):
    folder_candidates = [os.path.join(data_dir, layout["folder"]), data_dir]
    for folder in folder_candidates:
        if all(os.path.isfile(os.path.join(folder, f)) for f in files):
            parts = []
            for f in files:
                with open(os.path.join(folder, f), "rb") as fh:
                    parts.append(_parse(fh.read(), layout["label_bytes"], f))
            return parts
    archive = os.path.join(data_dir, layout["archive"])
    if os.path.isfile(archive):
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
                missing = [f for f in files if f not in members]
                if missing:
                    raise DataError("%s lacks %s: is it the CIFAR *binary* archive?"
                                    % (archive, ", ".join(missing)))
                return [_parse(tar.extractfile(members[f]).read(), layout["label_bytes"], f)
                        for f in files]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError("%s is not a readable .tar.gz (%s)" % (archive, err))
    raise DataError("no CIFAR binary files in %s: expected %s/{%s} or %s"
                    % (data_dir, layout["folder"], ",".join(files), layout["archive"]))


def load_cifar(data_dir, dataset="cifar10"):
    """``(train_images, train_labels, test_images, test_labels)``; images uint8 NHWC."""
    if dataset not in _LAYOUT:
        raise DataError("unknown dataset %r: choose cifar10 or cifar100" % dataset)
    problem = missing(data_dir, "data directory", folder=True)
    if problem:
        raise DataError("%s (give the folder that holds %s/ or %s)"
                        % (problem, _LAYOUT[dataset]["folder"], _LAYOUT[dataset]["archive"]))
    layout = _LAYOUT[dataset]
    out = []
    for split in ("train", "test"):
        parts = _read_split(data_dir, layout, layout[split])
        out.append(np.concatenate([p[0] for p in parts]))
        labels = np.concatenate([p[1] for p in parts])
        if labels.max() >= layout["classes"]:
            raise DataError("%s labels reach %d: these are not %s files"
                            % (split, labels.max(), dataset))
        out.append(labels)
    return tuple(out)


def load_digits32(test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8x8 digits (1,797 real images, no download) as 32x32x3 uint8,
    split into train/test with a fixed stratified split (1,437 / 360 images)."""
    import cv2
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    small = (digits.images * (255.0 / 16.0)).astype(np.float32)
    big = np.stack([cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR) for img in small])
    images = np.repeat(np.clip(big, 0, 255).astype(np.uint8)[..., None], 3, axis=3)
    labels = digits.target.astype(np.int32)
    tr_x, te_x, tr_y, te_y = train_test_split(images, labels, test_size=test_fraction,
                                              random_state=seed, stratify=labels)
    return tr_x, tr_y, te_x, te_y


def load_dataset(name, data_dir=None):
    """``(train_x, train_y, test_x, test_y, num_classes)`` for ``digits`` / ``cifar10`` /
    ``cifar100``."""
    if name == "digits":
        return load_digits32() + (10,)
    if data_dir is None:
        raise DataError("%s is read from a data folder (the one with %s/); none was given"
                        % (name, _LAYOUT.get(name, {}).get("folder", "its files")))
    return load_cifar(data_dir, name) + (_LAYOUT[name]["classes"],)


def write_cifar_binary(path, images, labels, coarse_labels=None):
    """Write records in CIFAR binary format (for tests and for converting own data)."""
    images = np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    cols = [np.asarray(labels, dtype=np.uint8)[:, None]]
    if coarse_labels is not None:
        cols.insert(0, np.asarray(coarse_labels, dtype=np.uint8)[:, None])
    with open(path, "wb") as fh:
        fh.write(np.concatenate(cols + [images], axis=1).tobytes())
