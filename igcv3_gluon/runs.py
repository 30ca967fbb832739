"""Finished runs as inputs: every command that takes weights accepts a run folder (its
``config.json`` knows the model, classes, width and input size) or a ``.params`` file.

    resolve_weights("runs/demo")              -> ("runs/demo/best.params", {config})
    resolve_weights("runs/demo/final.params") -> ("runs/demo/final.params", {config})
    resolve_weights("converted.params")       -> ("converted.params", None)
"""
import json
import os

from .errors import UsageError

__all__ = ["resolve_weights", "run_config_of", "adopt_run_settings"]


def run_config_of(folder):
    """The ``config.json`` of a run folder, or None."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        raise UsageError("%s is not a readable run config" % path)


def resolve_weights(path, flag="--params"):
    """``(params file, run config or None)`` for a run folder or a weights file."""
    if not path:
        raise UsageError("%s is required (a .params file or a run folder)" % flag)
    if os.path.isdir(path):
        config = run_config_of(path)
        if config is None:
            raise UsageError("%s %s is a folder without config.json: give a run folder "
                             "(--out-dir of a training run) or a .params file" % (flag, path))
        for name in ("best.params", "final.params"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name), config
        raise UsageError("%s %s holds no best.params or final.params yet (has the run "
                         "finished an epoch?)" % (flag, path))
    if not os.path.isfile(path):
        raise UsageError("%s %s does not exist" % (flag, path))
    folder = os.path.dirname(os.path.abspath(path))
    config = run_config_of(folder)
    if config is None and os.path.basename(folder) == "export":
        config = run_config_of(os.path.dirname(folder))
    return path, config


def adopt_run_settings(args, parser, config, keys):
    """Take ``keys`` from a run's ``config`` into ``args`` where the user left the flag at
    its default (an explicit flag wins)."""
    if not config:
        return args
    for key in keys:
        if key in config and config[key] is not None and key in vars(args) \
                and getattr(args, key) == parser.get_default(key):
            setattr(args, key, config[key])
    return args
