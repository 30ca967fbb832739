#!/usr/bin/env python
"""CIFAR training for igcv3-gluon: not implemented yet (issue #3)."""
import sys

if __name__ == "__main__":
    sys.stderr.write("train_cifar.py: not implemented yet (CIFAR training is issue #3); "
                     "the networks are ready: igcv3_gluon.get_model(...)\n")
    sys.exit(2)
