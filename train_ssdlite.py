#!/usr/bin/env python
"""SSDLite2 detection training for igcv3-gluon: not implemented yet (issue #5)."""
import sys

if __name__ == "__main__":
    sys.stderr.write("train_ssdlite.py: not implemented yet (SSDLite2 detection training is issue #5); "
                     "the networks are ready: igcv3_gluon.get_model(...)\n")
    sys.exit(2)
