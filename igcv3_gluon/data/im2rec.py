"""Pack an image-folder tree (``ROOT/<class>/*.jpg``) into MXNet RecordIO ``.rec`` + ``.idx``
(the conventions of MXNet's ``tools/im2rec.py``: labels are the sorted class-folder indices,
records are ``IRHeader(flag=0, label, id=i)`` + JPEG, the ``.idx`` maps ``i`` to its offset).

    python -m igcv3_gluon.im2rec ~/data/imagenet/train ~/data/rec/train --resize 480

(the command line is ``igcv3_gluon/im2rec.py``; this module is the library under it)

Writes ``PREFIX.lst`` (index, label, path), ``PREFIX.rec``, ``PREFIX.idx`` and
``PREFIX.classes.txt`` (one class folder name per line, line number = label). The ``.rec``
and ``.idx`` are written under temporary names and renamed at the end, so an interrupted
run leaves no half-written pair behind.
"""
import os
import random
import sys
from multiprocessing.pool import ThreadPool

import mxnet as mx
import numpy as np
from tqdm import tqdm

from ..errors import DataError
from ..utils import atomic_write, remove_files, write_stopped
from .images import TAIL, bytes_problem, missing

__all__ = ["list_images", "pack_folder", "resized_shape", "OUTPUT_SUFFIXES", "EXTENSIONS",
           "RESIZE_MODES"]

# what a packing writes: PREFIX + each
OUTPUT_SUFFIXES = (".rec", ".idx", ".lst", ".classes.txt")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def list_images(root, classes=None):
    """``(relative_path, label)`` of every image under ``root/<class>/`` and the class list
    (sorted folder names, or ``classes`` to keep the train set's labels for val)."""
    problem = missing(root, "image folder", folder=True)
    if problem:
        raise DataError("%s (expected ROOT/<class>/*.jpg)" % problem)
    found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if classes is None:
        classes = found
    if not classes:
        raise DataError("%s has no class sub-folders (expected ROOT/<class>/*.jpg)" % root)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError("%s has class folders missing from the class list: %s"
                        % (root, ", ".join(unknown[:5])))
    odd = [c for c in classes if any(ch in c for ch in "\n\r\t")]
    if odd:
        raise DataError("class folder %r of %s has a line break or tab in its name; the "
                        ".classes.txt and .lst are text, one name per line: rename it"
                        % (odd[0], root))
    _check_class_folders(root, classes)
    items, unnamed = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for dirpath, _, files in sorted(os.walk(folder)):
            for f in sorted(files):
                if f.lower().endswith(EXTENSIONS):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    try:
                        rel.encode("utf-8")
                    except UnicodeEncodeError:       # a name of bytes that are not UTF-8
                        unnamed.append(rel.encode("utf-8", "surrogateescape").decode(
                            "utf-8", "replace"))
                        continue
                    if any(ch in rel for ch in "\n\r\t"):     # would break a .lst row
                        unnamed.append(repr(rel))
                        continue
                    items.append((rel, label))
    if unnamed:
        sys.stderr.write("note: %d image(s) under %s have names that are not UTF-8 or hold a "
                         "line break or tab, and are left out (the .lst is text, one row per "
                         "line), e.g. %s; rename them to pack them\n"
                         % (len(unnamed), root, unnamed[0]))
    if not items:
        raise DataError("no images (%s) under %s/<class>/" % (", ".join(EXTENSIONS), root))
    return items, list(classes)


def _check_class_folders(root, classes):
    """``DataError`` for class folders that lead (through symbolic links) to the image folder
    itself, or to the images of another class folder: their images would be packed under
    the wrong label, or under two."""
    top = os.path.realpath(root)
    real = {name: os.path.realpath(os.path.join(root, name)) for name in classes
            if os.path.isdir(os.path.join(root, name))}
    for name, path in sorted(real.items()):
        if path == top or top.startswith(path + os.sep):
            raise DataError("%s leads to %s, which holds the image folder %s itself (a link to "
                            "a parent?): every class's images would be packed as %s; remove "
                            "or replace it" % (os.path.join(root, name), path, root, name))
        for other, other_path in sorted(real.items()):
            if other != name and (other_path == path or other_path.startswith(path + os.sep)):
                raise DataError("class folders %s and %s lead to the same images (%s): they "
                                "would be packed under both labels; keep one"
                                % (name, other, other_path))


def other_files(root, classes):
    """Files in the class folders that are not of a packed kind (relative paths)."""
    found = []
    for name in classes:
        for dirpath, _, files in sorted(os.walk(os.path.join(root, name))):
            found += [os.path.relpath(os.path.join(dirpath, f), root) for f in sorted(files)
                      if not f.lower().endswith(EXTENSIONS)]
    return found


def empty_classes(items, classes):
    """Class names without any image in ``items`` (they keep their label all the same)."""
    used = {label for _, label in items}
    return [name for label, name in enumerate(classes) if label not in used]


RESIZE_MODES = ("both", "shrink")


def resized_shape(h, w, resize, mode="both"):
    """``(h, w)`` after setting the short side to ``resize`` as MXNet's ``tools/im2rec.py``
    does (``image_encode``: the short side becomes ``resize`` and the long side
    ``long * resize // short``, smaller images enlarged); ``mode="shrink"`` leaves images
    whose short side is already at most ``resize`` as they are."""
    if not resize or (mode == "shrink" and min(h, w) <= resize):
        return h, w
    if h > w:
        return h * resize // w, resize
    return resize, w * resize // h


def _encode(root, rel, resize, quality, mode="both"):
    """``(JPEG bytes, None)`` of one image, its short side set to ``resize``
    (``resized_shape``; 0 keeps the size), with cv2.resize's default (bilinear)
    interpolation, as MXNet's im2rec; ``(None, reason)`` for a damaged file."""
    import cv2
    try:
        with open(os.path.join(root, rel), "rb") as fh:
            data = fh.read()
    except OSError as err:                      # a broken link, no permission, a folder
        return None, "unreadable: %s" % (err.strerror or err)
    damage = bytes_problem(data[:8], data[-TAIL:], kinds=None)
    if damage:
        return None, damage
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None, "not decodable"
    h, w = img.shape[:2]
    nh, nw = resized_shape(h, w, resize, mode)
    if max(nh, nw) > 65500:
        return None, "%dx%d after the resize: beyond JPEG's 65500 pixels a side" % (nw, nh)
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return (buf.tobytes(), None) if ok else (None, "not encodable")


def _write_text(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def _note_left_out(root, items, classes):
    """Say what the packing leaves out: files of other kinds, class folders without images."""
    others = other_files(root, classes)
    if others:
        sys.stderr.write("note: %d file(s) under %s are not of the packed kinds (%s) and are "
                         "left out, e.g. %s\n" % (len(others), root, ", ".join(EXTENSIONS),
                                                  others[0]))
    empty = empty_classes(items, classes)
    if empty:
        sys.stderr.write("warning: %d class folder(s) of %s hold no image and keep their "
                         "label all the same: %s\n" % (len(empty), root, ", ".join(empty[:5])))


def _write_records(root, items, tmp_idx, tmp_rec, encode, threads, on_damaged, progress, desc):
    """Encode ``items`` on ``threads`` threads and write them to the record pair; returns the
    ``.lst`` lines and the skipped ``(path, reason)``. Whatever stops it (a damaged image
    with ``on_damaged="stop"``, a full disk, Ctrl-C) removes the pair."""

    open(tmp_rec, "wb").close()          # an unwritable folder: OSError, one line (errors.py)
    writer = mx.recordio.MXIndexedRecordIO(tmp_idx, tmp_rec, "w")
    skipped, lines = [], []
    pool = ThreadPool(max(1, threads))               # OpenCV releases the GIL while coding
    try:
        encoded = pool.imap(lambda it: encode(it[0]), items, chunksize=8)
        with tqdm(total=len(items), desc=desc, unit="img", disable=not progress,
                  dynamic_ncols=True) as bar:
            for (rel, label), (jpg, damage) in zip(items, encoded):
                bar.update(1)
                if jpg is None:
                    if on_damaged == "stop":
                        raise DataError("%s: %s; repair or remove it, or let the packing skip "
                                        "damaged images" % (os.path.join(root, rel), damage))
                    skipped.append((rel, damage))
                    continue
                n = len(lines)
                header = mx.recordio.IRHeader(0, float(label), n, 0)
                writer.write_idx(n, mx.recordio.pack(header, jpg))
                lines.append("%d\t%f\t%s\n" % (n, label, rel))
    except BaseException as err:
        # the encoding threads are stopped and joined before anything else: a thread left
        # inside OpenCV or MXNet while the interpreter exits aborts the process (SIGABRT)
        pool.terminate()
        pool.join()
        stopped = write_stopped(err, tmp_rec) if isinstance(err, Exception) else None
        try:
            writer.close()
        except Exception:
            pass
        remove_files(tmp_rec, tmp_idx)
        if stopped is not None:
            stopped.filename = tmp_rec[:-len(".part")]
            raise stopped from None
        raise
    pool.close()
    pool.join()
    writer.close()
    return lines, skipped


def pack_folder(root, prefix, resize=0, quality=95, threads=4, shuffle=True, seed=0,
                classes=None, progress=True, resize_mode="both", on_damaged="skip"):
    """Pack ``root`` into ``prefix.rec/.idx/.lst/.classes.txt``; returns (records, classes,
    skipped ``(path, reason)``). Images are shuffled once (``seed``) as im2rec does for
    training sets. A damaged image (``images.bytes_problem``, or one OpenCV cannot decode) is
    skipped
    and named, or stops the packing (``on_damaged="stop"``); nothing is left behind by a
    packing that stops or packs nothing."""

    if not os.path.basename(prefix):
        raise DataError("the output prefix %s is a folder: give PREFIX (writes PREFIX.rec, "
                        ".idx, .lst, .classes.txt), e.g. %s" % (
                            prefix, os.path.join(prefix.rstrip(os.sep) or ".", "train")))
    items, classes = list_images(root, classes)
    _note_left_out(root, items, classes)
    if shuffle:
        random.Random(seed).shuffle(items)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    tmp_rec, tmp_idx = prefix + ".rec.part", prefix + ".idx.part"
    lines, skipped = _write_records(
        root, items, tmp_idx, tmp_rec,
        lambda rel: _encode(root, rel, resize, quality, resize_mode), threads, on_damaged,
        progress, "packing %s" % os.path.basename(prefix))
    if not lines:
        remove_files(tmp_rec, tmp_idx)
        raise DataError("no image under %s could be decoded (%d damaged, e.g. %s: %s)"
                        % (root, len(skipped), skipped[0][0], skipped[0][1]))
    try:                                  # the text files first, the record pair last
        atomic_write(prefix + ".lst", lambda p: _write_text(p, "".join(lines)))
        atomic_write(prefix + ".classes.txt",
                     lambda p: _write_text(p, "".join(c + "\n" for c in classes)))
    except BaseException:
        remove_files(tmp_rec, tmp_idx)
        raise
    os.replace(tmp_rec, prefix + ".rec")
    os.replace(tmp_idx, prefix + ".idx")
    return len(lines), classes, skipped
