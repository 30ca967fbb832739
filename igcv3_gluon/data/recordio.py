"""The ImageNet input pipeline: RecordIO through MXNet's C++ ``ImageRecordIter`` (threaded
JPEG decoding and augmentation outside the GIL).

Training augmentation presets (``train_augmentation``):

* ``authors``: what the authors' ``train_imagenet.py`` ran (MXNet's ``example/image-
  classification`` "aug level 2"): the image (packed at short side 480) rescaled by a random
  factor in [``min_random_scale`` = 0.533, 1] (short side 256-480), a random 224 crop,
  horizontal flip, HSL jitter (hue 36, saturation 50, lightness 50);
* ``inception``: GluonCV's: random resized crop (area 0.08-1, aspect ratio 3/4-4/3),
  horizontal flip, colour jitter (brightness, contrast, saturation 0.4; PCA lighting 0.1).

Normalisation is ``(x - mean) / std`` on 0-255 pixels (the authors: mean only, std 1).
Validation: the short side resized to ``input_size / crop_ratio`` (256 for 224: the
authors' 0.533 x 480), then the centre crop.

``RecordImages`` is both the loader and the "sampler" the training toolkit expects
(``set_epoch(epoch, start_batch)``, ``len``): every epoch builds a fresh iterator whose shuffle
seed is ``seed + epoch``, so an epoch's order is reproducible and an interrupted epoch resumes
by skipping the batches already trained on. A distributed worker reads its own part
(``num_parts`` / ``part_index``), and every worker yields the same number of batches (the
smallest part's), so ``dist_sync`` never waits for a worker that has run out of data.
"""
import math
import os
import struct

import mxnet as mx
import numpy as np

from ..errors import DataError
from .images import span_problem

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "AUGMENTATIONS", "RecordImages", "check_labels",
           "check_record_pair", "part_sizes", "scan_records", "short_sides",
           "train_augmentation"]

IMAGENET_MEAN = (123.68, 116.779, 103.939)
IMAGENET_STD = (58.393, 57.12, 57.375)
_MAGIC = 0xCED7230A


def _read_index(idx_path):
    offsets = []
    with open(idx_path, errors="replace") as fh:       # binary junk: a line that fails
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                offsets.append(int(parts[1]))
            except (IndexError, ValueError):
                raise DataError("%s line %d is not 'key<TAB>offset': not an MXNet .idx file"
                                % (idx_path, n))
            if offsets[-1] < 0:
                raise DataError("%s line %d has the offset %d: not an MXNet .idx file"
                                % (idx_path, n, offsets[-1]))
    return offsets


def check_record_pair(rec_path, idx_path):
    """Validate a ``.rec`` / ``.idx`` pair (exists, non-empty, every indexed offset inside the
    ``.rec``, a RecordIO record at sampled offsets); returns the number of records."""
    for path in (rec_path, idx_path):
        if path and os.path.isdir(path):
            raise DataError("%s is a folder: give the .rec file (its .idx beside it), e.g. %s"
                            % (path, os.path.join(path, "train.rec")))
        if not path or not os.path.isfile(path):
            raise DataError("%s does not exist; build the .rec/.idx pair with "
                            "`python -m igcv3_gluon.im2rec IMAGE_DIR PREFIX`" % path)
    offsets = _read_index(idx_path)
    if not offsets:
        raise DataError("the index %s is empty" % idx_path)
    size = os.path.getsize(rec_path)
    if max(offsets) >= size:
        raise DataError("the index %s does not belong to %s (offset %d beyond its %d bytes): "
                        "rebuild the pair or pass the matching .idx"
                        % (idx_path, rec_path, max(offsets), size))
    picks = sorted(set(offsets[i] for i in np.linspace(0, len(offsets) - 1, 16).astype(int)))
    with open(rec_path, "rb") as fh:
        for off in picks:
            fh.seek(off)
            head = fh.read(4)
            if len(head) < 4 or struct.unpack("<I", head)[0] != _MAGIC:
                raise DataError("the index %s does not match %s (no record at offset %d): "
                                "rebuild the pair or pass the matching .idx"
                                % (idx_path, rec_path, off))
    return len(offsets)


DECODE_ALL_UP_TO = 50000     # sets this small (ImageNet's val) have every image decoded
DECODE_SAMPLE = 2000         # larger ones: this many, spread over the file


def check_labels(labels, num_classes, rec_path):
    """``DataError`` naming the first record of ``rec_path`` whose label (``scan_records``) is
    not a class of ``num_classes``: a whole number in ``0 .. num_classes - 1`` (MXNet's
    reader would truncate 2.5 to class 2, and a label >= the class count fails the loss
    mid-epoch or, on a GPU, silently)."""
    labels = np.asarray(labels, np.float64)
    bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)) |
                         (labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError("%s: record %d has label %g, not a class number 0..%d of %d classes "
                        "(%d record(s) so); repack it with whole class numbers, or give the "
                        "class count" % (rec_path, bad[0], labels[bad[0]], num_classes - 1,
                                         num_classes, len(bad)))


def scan_records(rec_path, idx_path, images=True):
    """Every record the ``.idx`` lists, read only as far as its header (cheap: 32 bytes a
    record): ``(labels, problem)``, the label of each record (``IRHeader.label``, or the first
    value of a label array when ``flag > 0``) and a description of the first record that is
    not whole (no record magic at its offset, or its length runs past the end of the file),
    None when every record is. MXNet's RecordIO: ``uint32 magic, uint32 lrecord`` (length in
    the low 29 bits), then the data, whose first 24 bytes are ``IRHeader(flag, label, id,
    id2)``. ``images``: the image after the header must start as a JPEG/PNG/BMP, and a JPEG
    must end with its end marker (two more small reads per record); every image of a set of
    at most 50,000 records is decoded (OpenCV), 2,000 spread over a larger one; and nothing
    may follow the last record (MXNet's reader aborts the process on it)."""
    offsets = _read_index(idx_path)
    size = os.path.getsize(rec_path)
    if offsets:
        labels, problem = _scan(rec_path, offsets, size, images)
        if problem or not images:
            return labels, problem
        end = _record_end(rec_path, max(offsets))
        if end is not None and end < size:
            return labels, ("%d bytes follow the last record (offset %d): junk appended, or "
                            "the .idx of a shorter file" % (size - end, end))
        step = 1 if len(offsets) <= DECODE_ALL_UP_TO else len(offsets) // DECODE_SAMPLE
        problem = _undecodable(rec_path, offsets[::step], step)
        return labels, problem
    return np.zeros(0), None


def _record_end(rec_path, offset):
    """Where the record at ``offset`` ends (its data padded to 4 bytes), or None."""
    with open(rec_path, "rb") as fh:
        fh.seek(offset)
        head = fh.read(8)
    if len(head) < 8:
        return None
    length = struct.unpack("<I", head[4:8])[0] & ((1 << 29) - 1)
    return offset + 8 + (length + 3) // 4 * 4


def _undecodable(rec_path, offsets, step):
    """The first of the records at ``offsets`` whose image OpenCV cannot decode, described;
    None when all decode."""
    import cv2
    with open(rec_path, "rb") as fh:
        for k, off in enumerate(offsets):
            fh.seek(off)
            head = fh.read(8)
            lrec = struct.unpack("<I", head[4:8])[0]
            if lrec >> 29:                       # a record in parts: not an image of ours
                continue
            data = fh.read(lrec & ((1 << 29) - 1))
            flag = struct.unpack("<I", data[:4])[0]
            image = np.frombuffer(data[24 + 4 * flag:], np.uint8)
            img = cv2.imdecode(image, cv2.IMREAD_COLOR) if image.size else None
            if img is None or img.size == 0:
                return ("record %d (offset %d) holds an image that does not decode (damaged "
                        "inside)" % (k * step, off))
    return None


def _scan(rec_path, offsets, size, images):
    labels = np.zeros(len(offsets), np.float64)
    with open(rec_path, "rb") as fh:
        for n, off in enumerate(offsets):
            fh.seek(off)
            head = fh.read(36)
            if len(head) < 8 or struct.unpack("<I", head[:4])[0] != _MAGIC:
                return labels[:n], "record %d (offset %d) is not a record" % (n, off)
            lrec = struct.unpack("<I", head[4:8])[0]
            length, cflag = lrec & ((1 << 29) - 1), lrec >> 29
            if (cflag == 0 and off + 8 + length > size) or len(head) < 32:
                return labels[:n], ("record %d (offset %d) is cut: %d bytes of %d present"
                                    % (n, off, max(0, size - off - 8), length))
            flag, label = struct.unpack("<If", head[8:16])
            if flag > 1:                   # MXNet's reader stops on it (label_width 1)
                return labels[:n], ("record %d (offset %d) has %d labels; a classification "
                                    "set has one per record" % (n, off, flag))
            if flag > 0 and len(head) >= 36:
                label = struct.unpack("<f", head[32:36])[0]
            labels[n] = label
            if images and cflag == 0:
                problem = span_problem(fh, off + 8 + 24 + 4 * flag, off + 8 + length)
                if problem:
                    return labels[:n + 1], "record %d (offset %d): %s" % (n, off, problem)
    return labels, None


def _first_records(rec_path, idx_path, limit, read):
    """``read(record bytes)`` of the first ``limit`` records of a ``.rec``."""
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "r")
    try:
        return [read(reader.read_idx(key)) for key in reader.keys[:limit]]
    finally:
        reader.close()


def short_sides(rec_path, idx_path, limit=8):
    """Short sides (pixels) of the first ``limit`` images of a ``.rec``, as packed."""
    def side(record):
        image = mx.recordio.unpack_img(record)[1]
        return int(min(image.shape[:2])) if image is not None else None
    return [s for s in _first_records(rec_path, idx_path, limit, side) if s is not None]


AUGMENTATIONS = ("authors", "inception")


def train_augmentation(preset, min_random_scale=0.533, hsl=(36, 50, 50), jitter=0.4,
                       lighting=0.1):
    """``ImageRecordIter`` arguments of a training augmentation preset (module doc)."""
    if preset == "authors":
        return dict(rand_crop=True, rand_mirror=True, min_random_scale=min_random_scale,
                    max_random_scale=1.0, random_h=int(hsl[0]), random_s=int(hsl[1]),
                    random_l=int(hsl[2]))
    if preset == "inception":
        return dict(rand_mirror=True, random_resized_crop=True, min_random_area=0.08,
                    max_random_area=1.0, min_aspect_ratio=3.0 / 4, max_aspect_ratio=4.0 / 3,
                    brightness=jitter, contrast=jitter, saturation=jitter, pca_noise=lighting)
    raise ValueError("unknown augmentation %r: choose one of %s"
                     % (preset, ", ".join(AUGMENTATIONS)))


def part_sizes(num_records, num_parts):
    """Records per part as ``ImageRecordIter`` splits them (``ceil(n / parts)`` each, the
    last part the rest)."""
    chunk = math.ceil(num_records / num_parts)
    return [max(0, min(chunk, num_records - k * chunk)) for k in range(num_parts)]


class RecordImages:
    """Batches ``(data, label)`` (float32 NCHW, float32 labels) of one ``.rec`` part.

    Training: ``augmentation`` (``train_augmentation``), reshuffled every epoch with seed
    ``seed + epoch`` (order and augmentation: ``seed_aug``), full batches, the same number on
    every worker. Evaluation: every image of the set once, whatever its size (the batch
    shrinks to the set when the set is smaller)."""

    def __init__(self, rec_path, idx_path, batch_size, train, input_size=224, crop_ratio=0.875,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=0, threads=4, rank=0,
                 num_parts=1, num_records=None, augmentation=None):
        self.num_records = num_records or check_record_pair(rec_path, idx_path)
        self.train, self.seed = train, seed
        sizes = part_sizes(self.num_records, num_parts)
        if train:       # every worker the same count (the smallest part's), full batches only
            self.batches = min(sizes) // batch_size
            self.images = self.batches * batch_size
        else:           # evaluation: the whole set, the last batch trimmed
            num_parts, rank = 1, 0
            self.images = self.num_records
            batch_size = max(1, min(batch_size, self.images - 1)) if self.images > 1 else 1
            self.batches = math.ceil(self.images / batch_size)
        self.batch_size = batch_size
        self.epoch, self.start_batch = 0, 0
        self.kwargs = dict(path_imgrec=rec_path, path_imgidx=idx_path,
                           data_shape=(3, input_size, input_size), batch_size=batch_size,
                           preprocess_threads=threads, num_parts=num_parts, part_index=rank,
                           mean_r=mean[0], mean_g=mean[1], mean_b=mean[2],
                           std_r=std[0], std_g=std[1], std_b=std[2])
        if train:
            self.kwargs.update(shuffle=True,
                               **(augmentation or train_augmentation("inception")))
        else:
            self.kwargs.update(shuffle=False, resize=int(round(input_size / crop_ratio)),
                               rand_crop=False, rand_mirror=False)

    @property
    def batches_per_epoch(self):
        return self.batches

    def __len__(self):
        return self.batches

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start_batch = epoch, start_batch

    def iterator(self):
        return mx.io.ImageRecordIter(seed=self.seed + self.epoch, seed_aug=self.seed + self.epoch,
                                     **self.kwargs)

    def __iter__(self):
        it = self.iterator()
        done = 0
        for batch in it:
            if done >= self.batches:
                break
            done += 1
            if done <= self.start_batch:
                continue
            data, label = batch.data[0], batch.label[0]
            take = min(self.batch_size, self.images - (done - 1) * self.batch_size)
            if take < self.batch_size:
                data, label = data[:take], label[:take]
            yield data, label
        self.start_batch = 0
