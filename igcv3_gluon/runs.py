"""Finished runs as inputs: every command that takes weights accepts a run folder (its
``config.json`` knows the model, classes, width and input size) or a ``.params`` file.

    resolve_weights("runs/demo")              -> ("runs/demo/best.params", {config})
    resolve_weights("runs/demo/final.params") -> ("runs/demo/final.params", {config})
    resolve_weights("converted.params")       -> ("converted.params", {its -meta.json} or None)
"""
import json
import os

from .errors import UsageError

__all__ = ["resolve_weights", "run_config_of", "run_folder_of", "adopt_run_settings",
           "record_evaluation", "weights_meta_path", "read_weights_meta"]


def weights_meta_path(params_file):
    """The description written beside a weights file that has no run folder (converted
    weights): ``NAME.params`` -> ``NAME-meta.json``, as an export's ``PREFIX-meta.json``."""
    base = params_file[:-len(".params")] if params_file.endswith(".params") else params_file
    return base + "-meta.json"


def read_weights_meta(params_file):
    """That description as a dict (the model, the classes, the normalisation ``mean``/``std``
    on 0-255 pixels, ``input_size`` and ``crop_ratio`` of its evaluation, where the weights
    came from), or None."""
    path = weights_meta_path(params_file)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        raise UsageError("%s is not a readable description of %s" % (path, params_file))
    return meta if isinstance(meta, dict) else None


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
    folder = run_folder_of(path)
    if folder is None:
        return path, read_weights_meta(path)
    return path, run_config_of(folder)


def run_folder_of(params_file):
    """The run folder a weights file belongs to (its own folder, or the run above its
    ``export/``), or None."""
    folder = os.path.dirname(os.path.abspath(params_file))
    if run_config_of(folder) is not None:
        return folder
    if os.path.basename(folder) == "export" and run_config_of(os.path.dirname(folder)):
        return os.path.dirname(folder)
    return None


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


def record_evaluation(params_file, config, out_dir, metrics, facts):
    """Write an ``--eval-only`` result as ``evaluation.json`` where the reproduction report
    (``reproduce --collect``) finds it: in the run folder the weights came from, else in
    ``out_dir`` beside a ``config.json`` describing what was evaluated (``facts``: model,
    dataset, ...). Returns the path written."""
    from .utils import atomic_write_json
    folder = run_folder_of(params_file)
    if config is None or folder is None:
        folder = out_dir
        existing = run_config_of(folder)
        if existing is not None and existing.get("model") != facts.get("model"):
            raise UsageError("%s holds a run of %s; give --out-dir a folder for this "
                             "evaluation of %s" % (folder, existing.get("model"),
                                                   facts.get("model")))
        if existing is None:
            os.makedirs(folder, exist_ok=True)
            atomic_write_json(os.path.join(folder, "config.json"),
                              dict(facts, stage=facts.get("stage", "train"),
                                   evaluated=os.path.abspath(params_file)), sort_keys=True)
    path = os.path.join(folder, "evaluation.json")
    atomic_write_json(path, dict(metrics, params=os.path.abspath(params_file)), sort_keys=True)
    return path
