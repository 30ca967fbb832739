"""COCO-format detection data (COCO itself or any ``instances``-style json + image folder).

GluonCV's ``COCODetection`` insists on the 80 COCO names and COCO's file layout; this reader
takes any COCO-format set and checks it at the edge:

* a missing or unreadable annotation file, or a json without ``images`` / ``annotations`` /
  ``categories``: one-line error;
* images referenced by the json but absent from the folder: one-line error naming how many
  and the first one;
* every entry's keys are checked up front (images: id, file_name, width, height;
  annotations: image_id, category_id, bbox; categories: id, name): one line naming the
  first bad entry; ids match as text (``"1"`` and ``1`` are one image);
* image files that are empty, not JPEG/PNG/BMP (the kinds MXNet decodes) or JPEGs cut off
  before their end marker are named before training starts (``images.file_problem``: two
  small reads per file); one that still fails to decode stops the run naming the file;
* boxes partly outside the image are clipped to it; boxes with no area left, ``iscrowd``,
  of unknown categories or of images not in the json are left out, and the counts are
  printed (``self.stats``, ``describe()``);
* images without any box are skipped for training (``skip_empty=True``: SSD's target
  generator needs at least one box) and kept for evaluation.

Labels are ``(N, 6)`` float32 rows ``x1, y1, x2, y2, class, difficult`` with class indices
0..C-1 in the order of the sorted category ids (``self.cat_ids``).
"""
import json
import math
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import DataError
from .images import file_problem, missing

__all__ = ["COCOFormat", "coco_split_paths"]


def coco_split_paths(data_dir, split):
    """``(annotation json, image folder)`` of split ``split`` in COCO's standard layout."""
    return (os.path.join(data_dir, "annotations", "instances_%s.json" % split),
            os.path.join(data_dir, split))


def _number(value):
    """A JSON number that is finite (Python ints of any size are; 10**30 is no float64)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _key(value):
    """An id as text for matching: 1, 1.0 and "1" are one id."""
    if _number(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _duplicates(entries, ann_file, part):
    seen = {}
    for pos, entry in enumerate(entries):
        key = _key(entry["id"])
        if key in seen:
            raise DataError("%s: %s[%d] and %s[%d] share id %s; every %s needs its own id"
                            % (ann_file, part, seen[key], part, pos, entry["id"],
                               {"images": "image", "categories": "category"}[part]))
        seen[key] = pos


def _id_order(value):
    """Numbers in their order, then text ids in theirs."""
    return (0, value, "") if _number(value) else (1, 0, str(value))


def _ground_truth(data, images, index):
    """The set as pycocotools' ``COCO.dataset`` with ids of our own: images numbered 0..N-1
    (in the json's id order), annotations 1..M, categories by their class index; the boxes
    as written (unclipped), crowd boxes kept (COCO's metric ignores detections on them),
    ``area`` as given (else w*h). The metric is the official one on the same boxes, and
    text ids, missing or repeated annotation ids cannot derail it. ``image_index`` maps
    each json id (as ``_key``) to its number."""
    order = sorted(data["images"], key=lambda i: _id_order(i["id"]))
    image_index = {_key(img["id"]): n for n, img in enumerate(order)}
    gt_images = [dict(id=n, width=img["width"], height=img["height"])
                 for n, img in enumerate(order)]
    annotations = []
    for ann in data["annotations"]:
        if _key(ann["image_id"]) not in images or _key(ann["category_id"]) not in index:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        area = ann.get("area")
        annotations.append(dict(id=len(annotations) + 1,
                                image_id=image_index[_key(ann["image_id"])],
                                category_id=index[_key(ann["category_id"])],
                                bbox=[x, y, w, h], iscrowd=int(bool(ann.get("iscrowd", 0))),
                                area=float(area) if _number(area) else w * h))
    categories = [dict(id=i, name=str(i)) for i in sorted(set(index.values()))]
    return dict(images=gt_images, annotations=annotations, categories=categories,
                image_index=image_index)


def _check_entries(ann_file, data):
    """Every entry the reader uses has its keys, with usable values: one line naming the
    first entry that does not (its list, position and id)."""
    need = {"images": (("id", None), ("file_name", str), ("width", "size"), ("height", "size")),
            "annotations": (("image_id", None), ("category_id", None), ("bbox", "box")),
            "categories": (("id", None), ("name", "name"))}
    for part, keys in need.items():
        if not isinstance(data[part], list):
            raise DataError("%s: %s must be a list" % (ann_file, part))
        for pos, entry in enumerate(data[part]):
            if not isinstance(entry, dict):
                raise DataError("%s: %s[%d] is not an object" % (ann_file, part, pos))
            for key, kind in keys:
                value = entry.get(key)
                bad = (value is None or (kind is str and not isinstance(value, str))
                       or (kind == "name" and not (isinstance(value, str) and value.strip()))
                       or (kind == "size" and not (_number(value) and value > 0))
                       or (kind == "box" and not (isinstance(value, list) and len(value) == 4
                                                  and all(_number(v) for v in value))))
                if bad:
                    what = "no %s" % key if key not in entry else "%s %r" % (key, value)
                    raise DataError("%s: %s[%d] (id %s) has %s; every entry of %s needs %s"
                                    % (ann_file, part, pos, entry.get("id", "?"), what, part,
                                       ", ".join(k for k, _ in keys)))


def _unreadable_images(paths):
    """``(path, reason)`` of the image files that cannot be images whole
    (``images.file_problem``: two small reads per file, cheap even for COCO's 118k)."""
    found = ((path, file_problem(path)) for path in paths)
    return [(path, problem) for path, problem in found if problem]


def _read_json(ann_file, image_dir):
    """The annotation file as a dict with ``images``, ``annotations`` and ``categories``
    whose every entry has the keys the reader uses."""
    problem = (missing(ann_file, "annotation file")
               or missing(image_dir, "image folder", folder=True))
    if problem:
        raise DataError(problem)
    try:
        with open(ann_file) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise DataError("%s is not a readable json file (%s)" % (ann_file, err))
    if not isinstance(data, dict):
        raise DataError("%s is not COCO-format: not a json object" % ann_file)
    missing_keys = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing_keys:
        raise DataError("%s is not COCO-format: no %s" % (ann_file, ", ".join(missing_keys)))
    _check_entries(ann_file, data)
    _duplicates(data["images"], ann_file, "images")
    _duplicates(data["categories"], ann_file, "categories")
    names = {}
    for pos, category in enumerate(data["categories"]):
        if category["name"] in names:
            raise DataError("%s: categories[%d] and categories[%d] share the name %r; every "
                            "category needs its own name (it names the detector's class)"
                            % (ann_file, names[category["name"]], pos, category["name"]))
        names[category["name"]] = pos
    if not data["categories"]:
        raise DataError("%s has no categories" % ann_file)
    return data


def _check_image_files(paths, ann_file, image_dir):
    """Every listed image is a file that looks whole, before any training starts."""
    folders = [p for p in paths if os.path.isdir(p)]
    if folders:
        raise DataError("%s (listed in %s) is a folder, not an image file"
                        % (folders[0], ann_file))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError("%d image(s) listed in %s are missing from %s (first: %s)"
                        % (len(missing), ann_file, image_dir,
                           os.path.relpath(missing[0], image_dir)))
    damaged = _unreadable_images(paths)
    if damaged:
        raise DataError("%d file(s) in %s are not whole images (first: %s, %s): replace "
                        "them or remove them from %s"
                        % (len(damaged), image_dir, damaged[0][0], damaged[0][1], ann_file))


def _usable_boxes(data, images, index, stats):
    """Boxes per image id (as ``_key``): ``[x1, y1, x2, y2, class, 0]`` clipped to the image;
    crowd boxes, boxes of unknown categories or images and boxes without area are counted
    in ``stats`` and left out."""
    boxes = {}
    for ann in data["annotations"]:
        img = images.get(_key(ann["image_id"]))
        if img is None:
            stats["orphan"] += 1
            continue
        if ann.get("iscrowd", 0):
            stats["crowd"] += 1
            continue
        if _key(ann["category_id"]) not in index:
            stats["unknown_category"] += 1
            continue
        x, y, w, h = ann["bbox"]
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(img["width"]), x + w), min(float(img["height"]), y + h)
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            stats["clipped"] += 1
        if x2 - x1 < 1 or y2 - y1 < 1:
            stats["no_area"] += 1
            continue
        boxes.setdefault(_key(img["id"]), []).append(
            [x1, y1, x2, y2, index[_key(ann["category_id"])], 0])
    return boxes


class COCOFormat(gluon.data.Dataset):
    def __init__(self, ann_file, image_dir, skip_empty=True):
        data = _read_json(ann_file, image_dir)
        self.ann_file, self.image_dir = ann_file, image_dir
        cats = sorted(data["categories"], key=lambda c: _id_order(c["id"]))
        self.cat_ids = [c["id"] for c in cats]
        self.classes = [c["name"] for c in cats]
        # ids matched as text: "1" and 1 are one image (sets written by other tools mix them)
        index = {_key(cid): i for i, cid in enumerate(self.cat_ids)}
        self.stats = dict(crowd=0, orphan=0, unknown_category=0, clipped=0, no_area=0,
                          empty_images=0)
        images = {_key(img["id"]): img for img in data["images"]}
        boxes = _usable_boxes(data, images, index, self.stats)
        _check_image_files([os.path.join(image_dir, img["file_name"])
                            for img in data["images"]], ann_file, image_dir)
        self.ground_truth = _ground_truth(data, images, index)
        self.items = []
        for img in sorted(data["images"], key=lambda i: _id_order(i["id"])):
            label = np.array(boxes.get(_key(img["id"]), []), np.float32).reshape(-1, 6)
            if not len(label):
                self.stats["empty_images"] += 1
                if skip_empty:
                    continue
            self.items.append((self.ground_truth["image_index"][_key(img["id"])],
                               os.path.join(image_dir, img["file_name"]), label,
                               (img["width"], img["height"])))
        self.boxes = sum(len(item[2]) for item in self.items)
        if not self.items or not self.boxes:
            hint = ""
            if self.stats["orphan"] and data["images"]:
                hint = ("; no annotation's image_id matches an image id (e.g. image_id %r, "
                        "image ids such as %r)" % (data["annotations"][0]["image_id"],
                                                   data["images"][0]["id"]))
            raise DataError("%s has no image with a usable box (%s)%s"
                            % (ann_file, self.describe(), hint))

    def describe(self):
        """The counts of what was left out or changed, for the log."""
        s = self.stats
        return ("%d boxes clipped to their image; left out: %d crowd, %d without area, %d of "
                "unknown categories, %d of images not in the json; %d image(s) without a box"
                % (s["clipped"], s["crowd"], s["no_area"], s["unknown_category"], s["orphan"],
                   s["empty_images"]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        _, path, label, (width, height) = self.items[i]
        try:
            image = mx.image.imread(path)
        except mx.MXNetError:
            image = None
        if image is None or image.size == 0:
            raise DataError("%s cannot be decoded as an image (damaged or cut off): replace "
                            "it or remove it from %s" % (path, self.ann_file))
        if (image.shape[1], image.shape[0]) != (int(width), int(height)):
            raise DataError("%s is %dx%d pixels but %s says %dx%d: its boxes are in the "
                            "json's coordinates; fix width/height there"
                            % (path, image.shape[1], image.shape[0], self.ann_file, width,
                               height))
        return image, label

    @property
    def image_ids(self):
        return [item[0] for item in self.items]
