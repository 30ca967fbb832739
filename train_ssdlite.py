#!/usr/bin/env python
"""Train / evaluate / run SSDLite2 (IGCV3-W) and SSDLite (MobileNetV2) detectors (Table 4).

    python train_ssdlite.py --data-dir ~/data/coco --train-sets train2017 --val-sets val2017 \\
        --gpus 0,1,2,3
    python train_ssdlite.py --data-dir ~/data/coco --eval-only --params runs/ssdlite/best.params
    python train_ssdlite.py --data-dir ~/data/coco --predict a.jpg b.jpg --params best.params
"""
import sys

from igcv3_gluon.detection import main

if __name__ == "__main__":
    sys.exit(main())
