#!/usr/bin/env python
"""Train IGCV3 / MobileNetV2 on CIFAR-10/100 or the embedded digits set (paper Sec. 4.1).

    python train_cifar.py --data-dir ~/data/cifar --dataset cifar10 --gpus 0,1,2,3
    python train_cifar.py                      # digits, no download: see README
"""
import sys

from igcv3_gluon.cifar import main

if __name__ == "__main__":
    sys.exit(main())
