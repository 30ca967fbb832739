"""What every benchmark script shares: the project on ``sys.path`` (the scripts run from a
checkout: ``python benchmarks/NAME.py``) and its command line, declared as a table."""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

__all__ = ["ROOT", "command_line"]


def command_line(doc, argv=None, **flags):
    """The parsed flags of a benchmark whose docstring is ``doc``: one ``--name`` per keyword
    (``batch_sizes`` -> ``--batch-sizes``) typed by its default (``False``: a switch); a
    ``(default, help)`` pair adds a help text."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in flags.items():
        default, text = value if isinstance(value, tuple) else (value, None)
        flag = "--" + name.replace("_", "-")
        if default is False:
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)
    return parser.parse_args(argv)
