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
            parser.add_argument(flag, type=_kind(name, default), default=default, help=text)
    return parser.parse_args(argv)


def _kind(name, default):
    """How a flag's text is read: counts are integers >= 1 (``workers`` >= 0), a list like
    ``1,16`` holds such integers, other values keep the type of their default."""
    lowest = 0 if name == "workers" or default == 0 else 1

    def count(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lowest:
            raise argparse.ArgumentTypeError("takes an integer >= %d; got %r" % (lowest, text))
        return value

    def counts(text):
        for part in str(text).split(","):
            count(part)
        return text

    if isinstance(default, bool) or not isinstance(default, (int, str)):
        return type(default)
    if isinstance(default, int):
        return count
    if all(part.isdigit() for part in default.split(",")):
        return counts
    return str
