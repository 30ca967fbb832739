#!/usr/bin/env python
"""ImageNet training for igcv3-gluon: not implemented yet (issue #4)."""
import sys

if __name__ == "__main__":
    sys.stderr.write("train_imagenet.py: not implemented yet (ImageNet training is issue #4); "
                     "the networks are ready: igcv3_gluon.get_model(...)\n")
    sys.exit(2)
