"""Small generated data sets, so that every pipeline runs without a download: tests,
benchmarks and first tries use them.

* ``colour_folders``: an ImageNet-style folder tree (``ROOT/class<k>/*.jpg``) whose classes
  are the colour of a large rectangle on a textured background;
* ``shape_folders``: the same layout, one object of the detection set's three kinds per
  image (a classification set to pretrain a detector's backbone on);
* ``shapes_coco``: a COCO-format detection set of red rectangles, green ellipses and blue
  rectangles (1-3 per image) on textured backgrounds.
"""
import json
import os

import numpy as np

__all__ = ["colour_folders", "shape_folders", "shapes_coco", "SHAPE_CLASSES"]

COLOURS_BGR = [(0, 0, 220), (0, 200, 0), (220, 0, 0), (0, 210, 210)]
SHAPE_CLASSES = ("red_box", "green_ellipse", "blue_box")
SHAPE_COLOURS_RGB = [(220, 30, 30), (30, 180, 30), (40, 60, 230)]


def _background(rng, h, w, coarse=8):
    import cv2
    noise = rng.rand(max(1, h // coarse), max(1, w // coarse), 3) * 90 + 80
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)


def _draw_shape(img, kind, x, y, w, h):
    import cv2
    colour = tuple(int(v) for v in SHAPE_COLOURS_RGB[kind][::-1])         # BGR for OpenCV
    if kind == 1:
        cv2.ellipse(img, (int(x + w // 2), int(y + h // 2)), (int(w // 2), int(h // 2)),
                    0, 0, 360, colour, -1)
    else:
        cv2.rectangle(img, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), colour, -1)


def colour_folders(root, per_class=30, classes=4, seed=0):
    """``root/class<k>/<i>.jpg``: textured backgrounds of random sizes (64-95 px) with a large
    rectangle whose colour is the class (learnable despite crops, flips and jitter)."""
    import cv2
    rng = np.random.RandomState(seed)
    for c in range(classes):
        folder = os.path.join(str(root), "class%d" % c)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            h, w = rng.randint(64, 96, 2)
            img = (rng.rand(h, w, 3) * 80 + 80).astype(np.uint8)
            x, y = rng.randint(0, w // 3), rng.randint(0, h // 3)
            cv2.rectangle(img, (int(x), int(y)), (int(x + w // 2 + 5), int(y + h // 2 + 5)),
                          COLOURS_BGR[c], -1)
            cv2.imwrite(os.path.join(folder, "%d.jpg" % i), img)
    return str(root)


def shape_folders(root, per_class=100, size=96, seed=0):
    """``root/<kind>/<i>.jpg``: one object of each of ``SHAPE_CLASSES`` per image, of random
    size and place, on the detection set's textured backgrounds."""
    import cv2
    rng = np.random.RandomState(seed)
    for kind, name in enumerate(SHAPE_CLASSES):
        folder = os.path.join(str(root), name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            img = _background(rng, size, size)
            w, h = rng.randint(size // 3, size - 8, 2)
            x, y = rng.randint(0, size - w), rng.randint(0, size - h)
            _draw_shape(img, kind, x, y, w, h)
            cv2.imwrite(os.path.join(folder, "%d.jpg" % i), img)
    return str(root)


def shapes_coco(root, images=40, size=320, seed=0, name="shapes"):
    """A COCO-format detection set: ``images`` size x size JPEGs of textured backgrounds
    with 1-3 objects each (class 0 red rectangles, 1 green ellipses, 2 blue rectangles).
    Writes ``root/<name>.json`` and ``root/<name>/``; returns the two paths."""
    import cv2
    rng = np.random.RandomState(seed)
    folder = os.path.join(str(root), name)
    os.makedirs(folder, exist_ok=True)
    anns, imgs = [], []
    for i in range(images):
        img = _background(rng, size, size)
        for _ in range(rng.randint(1, 4)):
            c = int(rng.randint(0, 3))
            w, h = rng.randint(size // 5, size // 2, 2)
            x, y = rng.randint(0, size - w), rng.randint(0, size - h)
            _draw_shape(img, c, x, y, w, h)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1,
                         "bbox": [int(x), int(y), int(w), int(h)], "area": int(w * h),
                         "iscrowd": 0})
        cv2.imwrite(os.path.join(folder, "%04d.jpg" % i), img)
        imgs.append({"id": i + 1, "file_name": "%04d.jpg" % i, "width": size, "height": size})
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(SHAPE_CLASSES)]
    path = os.path.join(str(root), name + ".json")
    with open(path, "w") as fh:
        json.dump({"images": imgs, "annotations": anns, "categories": cats}, fh)
    return path, folder
