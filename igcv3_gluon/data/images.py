"""Is an image whole? One cheap check of image bytes, shared by every reader that must name a
damaged image before a long run meets it: COCO-format sets (``coco``), RecordIO records
(``recordio.scan_records``) and the packer (``im2rec``).

Only the first bytes and the last 64 are looked at, so the check costs two small reads per
file even for COCO's 118k images: a file that is empty, does not start like an image of an
accepted kind, or is a JPEG without its end marker (cut off: libjpeg fills the missing part
with grey and only warns, MXNet's C++ decoder aborts the process) is named. What passes may
still fail to decode; the readers name those when they meet them.
"""
import os

__all__ = ["MAGIC", "TAIL", "bytes_problem", "file_problem", "span_problem", "missing"]

# how each kind of image file starts: the kinds MXNet's decoder (OpenCV's imdecode) reads;
# GIF is not one of them (``mx.image.imdecode`` fails on it)
MAGIC = {"JPEG": b"\xff\xd8", "PNG": b"\x89PNG", "BMP": b"BM"}
TAIL = 64                       # bytes read at the end, where a JPEG's end marker sits
_JPEG_END = b"\xff\xd9"


def missing(path, what, folder=False):
    """Why ``path`` cannot be the ``what`` (a file, or a folder with ``folder=True``), or
    None: it does not exist, or it is the other kind."""
    if folder and not os.path.isdir(path):
        return "%s %s %s" % (what, path, "is a file, not a folder" if os.path.exists(path)
                             else "does not exist")
    if not folder and not os.path.isfile(path):
        return "%s %s %s" % (what, path, "is a folder, not a file" if os.path.isdir(path)
                             else "does not exist")
    return None


def bytes_problem(head, tail, kinds=tuple(MAGIC)):
    """Why bytes starting with ``head`` (8 bytes are enough) and ending with ``tail`` (the
    last ``TAIL``) are not a whole image of one of ``kinds``, or None. ``kinds=None``
    accepts any start (a packer that lets OpenCV read TIFF or WebP)."""
    if not head:
        return "empty"
    if kinds is not None and not head.startswith(tuple(MAGIC[k] for k in kinds)):
        return "not a %s image (starts %r)" % ("/".join(kinds), bytes(head[:4]))
    if head.startswith(MAGIC["JPEG"]) and _JPEG_END not in tail:
        return "a JPEG cut off before its end marker"
    return None


def file_problem(path, kinds=tuple(MAGIC)):
    """``bytes_problem`` of the file at ``path`` (reads its first 8 and last ``TAIL`` bytes)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - TAIL))
        return bytes_problem(head, fh.read(), kinds)


def span_problem(fh, start, end, kinds=tuple(MAGIC)):
    """``bytes_problem`` of the bytes ``[start, end)`` of an open file (an image inside a
    record)."""
    fh.seek(start)
    head = fh.read(min(8, end - start))
    tail_start = max(start, end - TAIL)
    fh.seek(tail_start)
    return bytes_problem(head, fh.read(end - tail_start), kinds)
