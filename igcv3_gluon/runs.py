"""Finished runs as inputs: every command that takes weights accepts a run folder (its
``config.json`` knows the model, classes, width and input size) or a ``.params`` file.

    resolve_weights("runs/demo")              -> ("runs/demo/best.params", {config})
    resolve_weights("runs/demo/final.params") -> ("runs/demo/final.params", {config})
    resolve_weights("converted.params")       -> ("converted.params", {its -meta.json} or None)
    resolve_weights("pretrained", model="igcv3_d_1.0") -> (the published weights, converted
                                                 and cached, {their description})
"""
import os

from .errors import OutputConflict, RunMismatch, WeightsError
from .models.spec import ModelSpec
from .models.zoo import list_models
from .utils import read_json_object

__all__ = ["resolve_weights", "run_config_of", "run_folder_of", "record_evaluation",
           "weights_meta_path", "read_weights_meta", "check_description",
           "check_evaluation_folder"]


def weights_meta_path(params_file):
    """The description written beside a weights file that has no run folder (converted
    weights): ``NAME.params`` -> ``NAME-meta.json``, as an export's ``PREFIX-meta.json``."""
    base = params_file[:-len(".params")] if params_file.endswith(".params") else params_file
    return base + "-meta.json"


def read_weights_meta(params_file):
    """That description as a dict (the model, the classes, the normalisation ``mean``/``std``
    on 0-255 pixels, ``input_size`` and ``crop_ratio`` of its evaluation, where the weights
    came from), or None; ``WeightsError`` naming the file when it does not describe a model
    (``check_description``)."""
    path = weights_meta_path(params_file)
    try:
        description = read_json_object(path)
    except ValueError as err:
        raise WeightsError("%s is not a readable description of %s (%s)"
                           % (path, params_file, err)) from None
    return check_description(description, path)


def run_config_of(folder):
    """The ``config.json`` of a run folder, or None."""
    path = os.path.join(folder, "config.json")
    try:
        config = read_json_object(path)
    except ValueError as err:
        raise WeightsError("not a readable run config: %s" % err) from None
    return check_description(config, path)


def check_description(description, path):
    """``description`` (read from ``path``), or ``WeightsError`` naming the file and the key
    when it does not describe a model of the zoo (an unknown model, a ``mean`` that is not
    three numbers, ...): a hand-edited file is named as such, never met later as a bad flag."""
    if description is None or description.get("evaluated"):
        return description
    try:
        spec = ModelSpec.from_dict(description)
        if spec.model not in list_models():
            raise ValueError("model %r is not in the zoo" % spec.model)
        for key in ("mean", "std"):
            if getattr(spec, key) is not None and len(getattr(spec, key)) != 3:
                raise ValueError("%s takes three numbers (R,G,B); got %r"
                                 % (key, description[key]))
    except ValueError as err:
        raise WeightsError("%s does not describe a model (%s): repair it, or write it again "
                           "(convert, export or train anew)" % (path, err)) from None
    return description


PRETRAINED = "pretrained"


def resolve_weights(path, model=None):
    """``(params file, run config or None)`` for a run folder or a weights file; the word
    ``pretrained``: the published ImageNet weights of zoo ``model`` (downloaded, converted
    and cached once: ``convert.pretrained_weights``) with their description."""
    if not path:
        raise WeightsError("no weights given: give a .params file or a run folder")
    if path == PRETRAINED and not os.path.exists(path):
        if not model:
            raise WeightsError("pretrained: name the model whose published weights to use")
        from .convert import pretrained_weights
        return pretrained_weights(model)
    if os.path.isdir(path):
        return _weights_of_folder(path)
    if not os.path.isfile(path):
        raise WeightsError("%s does not exist" % path)
    folder = run_folder_of(path)
    if folder is None:
        return path, read_weights_meta(path)
    return path, run_config_of(folder)


def _weights_of_folder(path):
    config = run_config_of(path)
    if config is None:
        raise WeightsError("%s is a folder without config.json: give a run folder (the output "
                           "folder of a training run) or a .params file" % path)
    for name in ("best.params", "final.params"):
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name), config
    import glob
    ckpts = sorted(glob.glob(os.path.join(path, "checkpoints", "ckpt-*.params")))
    if ckpts:
        raise WeightsError("%s holds no best.params or final.params yet: its training stopped "
                           "before an evaluation finished; run the training command again to "
                           "finish it, or give its last checkpoint %s" % (path, ckpts[-1]))
    raise WeightsError("%s holds no best.params or final.params yet (has the run finished an "
                       "epoch?)" % path)


def run_folder_of(params_file):
    """The run folder a weights file belongs to (its own folder, or the run above its
    ``export/``), or None."""
    folder = os.path.dirname(os.path.abspath(params_file))
    for candidate in (folder, os.path.dirname(folder) if os.path.basename(folder) == "export"
                      else None):
        if candidate and _names_a_model(os.path.join(candidate, "config.json")):
            run_config_of(candidate)                     # a damaged one is named
            return candidate
    return None


def _names_a_model(config_path):
    """Whether ``config_path`` is a JSON object with a ``model`` (another program's
    ``config.json`` beside a weights file does not make a run folder)."""
    try:
        return bool((read_json_object(config_path) or {}).get("model"))
    except ValueError:
        return True                                      # damaged: run_config_of says so


def check_evaluation_folder(folder, model):
    """That an evaluation of ``model`` may be recorded in ``folder`` (before it is computed):
    new, empty, or holding an evaluation of the same model. A training run's folder, another
    model's evaluation or a folder of other files is ``RunMismatch`` / ``OutputConflict``."""
    if os.path.isdir(folder) and os.listdir(folder) and \
            not os.path.isfile(os.path.join(folder, "config.json")):
        raise OutputConflict("%s holds files that are not an evaluation (%s): give a new or "
                             "empty output folder" % (folder, ", ".join(sorted(
                                 os.listdir(folder))[:3])))
    try:
        existing = read_json_object(os.path.join(folder, "config.json"))
    except ValueError as err:
        raise RunMismatch("%s: give another output folder for this evaluation" % err,
                          ["config.json"]) from None
    if existing is not None and not existing.get("evaluated"):
        raise RunMismatch("%s holds a training run of %s; give another output folder for this "
                          "evaluation" % (folder, existing.get("model")), ["evaluated"])
    if existing is not None and existing.get("model") != model:
        raise RunMismatch("%s holds an evaluation of %s; give another output folder for this "
                          "evaluation of %s" % (folder, existing.get("model"), model),
                          ["model"], {"model": existing.get("model")})


def record_evaluation(params_file, config, out_dir, metrics, facts):
    """Write an evaluation's result as ``evaluation.json`` in ``out_dir`` (never into the
    training run the weights came from), beside a ``config.json`` describing what was
    evaluated (``facts``: model, dataset, ...; the weights' path as ``evaluated``), where the
    reproduction report (``reproduce --collect``) finds it. Returns the path written."""
    from .utils import atomic_write_json
    folder = out_dir
    check_evaluation_folder(folder, facts.get("model"))
    os.makedirs(folder, exist_ok=True)
    source = {k: config[k] for k in ("stage", "recipe") if config and config.get(k)}
    atomic_write_json(os.path.join(folder, "config.json"),
                      dict(facts, stage=source.get("stage", facts.get("stage", "train")),
                           evaluated=os.path.abspath(params_file)), sort_keys=True)
    path = os.path.join(folder, "evaluation.json")
    atomic_write_json(path, dict(metrics, params=os.path.abspath(params_file)), sort_keys=True)
    return path
