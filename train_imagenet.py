#!/usr/bin/env python
"""Train or evaluate IGCV3 / MobileNetV2 on ImageNet from RecordIO (paper Sec. 4.1, Table 3).

    python train_imagenet.py --rec-train ~/data/rec/train.rec --rec-val ~/data/rec/val.rec \\
        --gpus 0,1,2,3 --kvstore device
    python train_imagenet.py --rec-val ~/data/rec/val.rec --eval-only --params best.params
"""
import sys

from igcv3_gluon.imagenet import main

if __name__ == "__main__":
    sys.exit(main())
