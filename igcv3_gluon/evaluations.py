"""Evaluations recorded where the reproduction report finds them (``evaluation.json`` and a
``config.json`` saying which weights, in an output folder of their own: never in the
training run the weights came from). Weights as inputs (run folders, ``.params``, published
weights) are ``models.weights`` and ``models.pretrained``."""
import os

from .errors import OutputConflict, RunMismatch
from .utils import atomic_write_json, read_json_object

__all__ = ["record_evaluation", "check_evaluation_folder"]


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
