"""COCO-format detection data (COCO itself or any ``instances``-style json + image folder).

GluonCV's ``COCODetection`` insists on the 80 COCO names and COCO's file layout; this reader
takes any COCO-format set and checks it at the edge:

* a missing or unreadable annotation file, or a json without ``images`` / ``annotations`` /
  ``categories``: one-line error;
* images referenced by the json but absent from the folder: one-line error naming how many
  and the first one;
* boxes partly outside the image are clipped to it; boxes with no area left (or ``iscrowd``)
  are dropped, and the counts are reported (``self.stats``);
* images without any box are skipped for training (``skip_empty=True``: SSD's target
  generator needs at least one box) and kept for evaluation.

Labels are ``(N, 6)`` float32 rows ``x1, y1, x2, y2, class, difficult`` with class indices
0..C-1 in the order of the sorted category ids (``self.cat_ids``).
"""
import json
import os

import numpy as np
from mxnet import gluon

from ..errors import UsageError

__all__ = ["COCOFormat", "coco_split_paths"]


def coco_split_paths(data_dir, split):
    """``(annotation json, image folder)`` of split ``split`` in COCO's standard layout."""
    return (os.path.join(data_dir, "annotations", "instances_%s.json" % split),
            os.path.join(data_dir, split))


class COCOFormat(gluon.data.Dataset):
    def __init__(self, ann_file, image_dir, skip_empty=True):
        if not os.path.isfile(ann_file):
            raise UsageError("annotation file %s does not exist" % ann_file)
        if not os.path.isdir(image_dir):
            raise UsageError("image folder %s does not exist" % image_dir)
        try:
            with open(ann_file) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as err:
            raise UsageError("%s is not a readable json file (%s)" % (ann_file, err))
        missing_keys = [k for k in ("images", "annotations", "categories") if k not in data]
        if missing_keys:
            raise UsageError("%s is not COCO-format: no %s" % (ann_file, ", ".join(missing_keys)))
        self.ann_file, self.image_dir = ann_file, image_dir
        cats = sorted(data["categories"], key=lambda c: c["id"])
        if not cats:
            raise UsageError("%s has no categories" % ann_file)
        self.cat_ids = [c["id"] for c in cats]
        self.classes = [c["name"] for c in cats]
        index = {cid: i for i, cid in enumerate(self.cat_ids)}
        boxes = {}
        self.stats = dict(clipped=0, dropped=0, empty_images=0)
        images = {img["id"]: img for img in data["images"]}
        for ann in data["annotations"]:
            img = images.get(ann["image_id"])
            if img is None or ann.get("iscrowd", 0) or ann["category_id"] not in index:
                self.stats["dropped"] += 1
                continue
            x, y, w, h = ann["bbox"]
            x1, y1 = max(0.0, x), max(0.0, y)
            x2, y2 = min(float(img["width"]), x + w), min(float(img["height"]), y + h)
            if (x1, y1, x2, y2) != (x, y, x + w, y + h):
                self.stats["clipped"] += 1
            if x2 - x1 < 1 or y2 - y1 < 1:
                self.stats["dropped"] += 1
                continue
            boxes.setdefault(img["id"], []).append([x1, y1, x2, y2, index[ann["category_id"]], 0])
        missing = [img["file_name"] for img in data["images"]
                   if not os.path.isfile(os.path.join(image_dir, img["file_name"]))]
        if missing:
            raise UsageError("%d image(s) listed in %s are missing from %s (first: %s)"
                             % (len(missing), ann_file, image_dir, missing[0]))
        self.items = []
        for img in sorted(data["images"], key=lambda i: i["id"]):
            label = np.array(boxes.get(img["id"], []), np.float32).reshape(-1, 6)
            if not len(label):
                self.stats["empty_images"] += 1
                if skip_empty:
                    continue
            self.items.append((img["id"], os.path.join(image_dir, img["file_name"]), label,
                               (img["width"], img["height"])))
        if not self.items:
            raise UsageError("%s has no image with a usable box" % ann_file)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import mxnet as mx
        _, path, label, _ = self.items[i]
        return mx.image.imread(path), label

    @property
    def image_ids(self):
        return [item[0] for item in self.items]
