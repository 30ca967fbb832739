#!/usr/bin/env python
"""An estimate of the GPU hours of Table 3 (IGCV3-D on ImageNet) and Table 4 (SSDLite2 on
COCO), from throughput measured here. No GPU reaches this project, so:

1. time one training step (forward, backward, SGD) of GluonCV's ResNet-50 v1b and of our
   networks side by side in one process (interleaved rounds, medians), at their inputs;
2. assume each network keeps that speed *relative to ResNet-50* on a V100, whose MXNet
   ResNet-50 training throughput NVIDIA publishes (DeepLearningExamples,
   MxNet/Classification/RN50v1.5, mxnet-20.12, 1x V100 16GB: 384 img/s FP32, 1376 img/s
   mixed precision);
3. multiply by the images of each recipe: ImageNet 1,281,167 x (480 + 50) epochs; COCO
   train2017's 117,266 images with boxes x 240 epochs.

Depthwise convolutions are memory-bound and relatively slower on GPUs than on CPUs, so the
estimate is a lower bound. Prints a table; never asserts.

    python benchmarks/gpu_hours.py [--batch 8] [--rounds 3]
"""
import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

import igcv3_gluon  # noqa: E402
from igcv3_gluon.deploy.bench import interleaved_medians, mxnet_training  # noqa: E402

from common import command_line  # noqa: E402 (puts the project on sys.path)

V100_RESNET50 = {"float32": 384.0, "mixed precision": 1376.0}      # img/s, NVIDIA
IMAGENET = 1281167 * (480 + 50)
COCO = 117266 * 240


def detector_step(batch, size=320):
    """One SSDLite2 training step (GluonCV's SSD targets and loss) on random boxes."""
    from gluoncv.loss import SSDMultiBoxLoss
    net = igcv3_gluon.get_model("ssdlite_320_igcv3_w_coco")
    net.initialize(igcv3_gluon.nn.he_normal())
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.random.uniform(-1, 1, (batch, 3, size, size))
    with autograd.train_mode():
        cls, _, _ = net(x)
    cls_t = mx.nd.array(mx.nd.random.randint(0, 81, cls.shape[:2]).asnumpy())
    box_t = mx.nd.random.uniform(-1, 1, (batch, cls.shape[1], 4))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-4})
    loss_fn = SSDMultiBoxLoss()

    def step():
        with autograd.record():
            c, b, _ = net(x)
            total, _, _ = loss_fn([c], [b], [cls_t], [box_t])
        autograd.backward(total)
        trainer.step(1)
        total[0].wait_to_read()
    return step


def main():
    args = command_line(__doc__, batch=8, rounds=3)
    from gluoncv.model_zoo import get_model
    resnet = get_model("resnet50_v1b", pretrained=False)
    resnet.initialize(mx.init.Xavier())
    steps = {"gluoncv resnet50_v1b (224)": mxnet_training(resnet, args.batch)}
    for name in ("igcv3_d_1.0", "igcv3_w_1.0"):
        net = igcv3_gluon.get_model(name)
        net.initialize(igcv3_gluon.nn.he_normal())
        steps["%s (224)" % name] = mxnet_training(net, args.batch)
    steps["SSDLite2 igcv3_w (320)"] = detector_step(args.batch)
    medians = interleaved_medians(steps, rounds=args.rounds, warmup=1)
    base = medians["gluoncv resnet50_v1b (224)"]
    print("training step, batch %d, this machine (median of %d interleaved rounds):\n"
          % (args.batch, args.rounds))
    print("| network | img/s here | speed vs ResNet-50 |")
    print("|---|---|---|")
    for name, seconds in medians.items():
        print("| %s | %.1f | %.2fx |" % (name, args.batch / seconds, base / seconds))
    print("\n| run | images | V100 hours, FP32 | V100 hours, mixed precision |")
    print("|---|---|---|---|")
    for label, key, images in (
            ("Table 3: IGCV3-D 1.0, 480 + 50 epochs", "igcv3_d_1.0 (224)", IMAGENET),
            ("Table 5: IGCV3-W 1.0 backbone, 480 + 50 epochs", "igcv3_w_1.0 (224)", IMAGENET),
            ("Table 4: SSDLite2, 240 epochs", "SSDLite2 igcv3_w (320)", COCO)):
        ratio = base / medians[key]
        hours = [images / (V100_RESNET50[p] * ratio) / 3600 for p in V100_RESNET50]
        print("| %s | %.0fM | %.0f | %.0f |" % (label, images / 1e6, hours[0], hours[1]))


if __name__ == "__main__":
    main()
