"""``python -m igcv3_gluon.deploy``: the command line is ``deploy/cli.py``, the commands
``deploy/commands.py``."""
import sys

from .cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
