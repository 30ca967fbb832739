#!/usr/bin/env python
"""How far apart the two SSD loss normalisations are on a real batch: the authors'
(``train.ssd_loss.AuthorsMultiBoxLoss``, MXNet's 'valid' normalisation) and GluonCV's
``SSDMultiBoxLoss`` (the positives), on one batch of 8 generated 320x320 shape images
(``data.synthetic.shapes_coco``) through the SSD training transform and SSDLite2 (IGCV3-W
1.0, random weights). Prints the ratio of the losses, of their two terms and of the gradient
norms (whole network).

    python benchmarks/ssd_loss_scale.py
"""
import tempfile
import warnings

from common import command_line  # puts the project on sys.path

warnings.simplefilter("ignore", UserWarning)


def main():
    command_line(__doc__)                   # --help; no flags
    import mxnet as mx
    import numpy as np
    from mxnet import autograd

    from igcv3_gluon import get_model
    from igcv3_gluon.data.coco import COCOFormat
    from igcv3_gluon.data.detection import AUTHORS_MEAN, AUTHORS_STD, ssd_train_transform
    from igcv3_gluon.data.synthetic import shapes_coco
    from igcv3_gluon.train.ssd_loss import make_loss
    with tempfile.TemporaryDirectory() as tmp:
        ann, images = shapes_coco(tmp, images=8, size=320, seed=0)
        data = COCOFormat(ann, images)
        net = get_model("ssdlite_320_igcv3_w_coco", classes=list(data.classes))
        net.initialize(mx.init.Xavier())
        with autograd.train_mode():
            _, _, anchors = net(mx.nd.zeros((1, 3, 320, 320)))
        transform = ssd_train_transform("ssd", 320, anchors, AUTHORS_MEAN, AUTHORS_STD)
        mx.random.seed(0)
        np.random.seed(0)
        samples = [transform(*data[i]) for i in range(len(data))]
        x, cls_t, box_t = (mx.nd.stack(*[s[k] for s in samples]) for k in range(3))
        results = {}
        for kind in ("authors", "gluoncv"):
            with autograd.record():
                cls_p, box_p, _ = net(x)
                total, cls_l, box_l = make_loss(kind)([cls_p], [box_p], [cls_t], [box_t])
            autograd.backward(total)
            grads = [p.grad() for p in net.collect_params().values() if p.grad_req != "null"]
            norm = float(np.sqrt(sum(float((g ** 2).sum().asscalar()) for g in grads)))
            results[kind] = dict(cls=float(cls_l[0].sum().asscalar()),
                                 box=float(box_l[0].sum().asscalar()), grad=norm)
        positives = int((cls_t > 0).sum().asscalar())
    a, g = results["authors"], results["gluoncv"]
    print("batch: 8 images, %d positive anchors" % positives)
    print("| | authors | GluonCV | GluonCV / authors |\n|---|---|---|---|")
    for key, label in (("cls", "class term"), ("box", "box term"), ("grad", "gradient norm")):
        print("| %s | %.4f | %.4f | %.2fx |" % (label, a[key], g[key], g[key] / a[key]))
    print("| loss | %.4f | %.4f | %.2fx |" % (a["cls"] + a["box"], g["cls"] + g["box"],
                                             (g["cls"] + g["box"]) / (a["cls"] + a["box"])))


if __name__ == "__main__":
    main()
