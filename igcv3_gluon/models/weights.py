"""Weights files as inputs, below everything that reads them: MXNet ``.params`` files
(``read_params``, ``load_weights`` into a Gluon network, whichever way they were saved) and
the descriptions that travel with them (a run's ``config.json``, the ``-meta.json`` beside
converted or published weights), checked to describe a zoo model.

    run_folder_of("runs/demo/final.params") -> "runs/demo"
    read_weights_meta("converted.params")   -> {its -meta.json} or None
"""
import glob
import os

import mxnet as mx

from ..errors import WeightsError
from ..utils import read_json_object
from .registry import list_models
from .spec import ModelSpec

__all__ = ["read_params", "load_weights", "weights_meta_path", "read_weights_meta",
           "run_config_of", "run_folder_of", "check_description", "weights_of_folder"]


def read_params(path):
    """The tensors of an MXNet ``.params`` file as a dict; WeightsError if it is not one."""
    if os.path.isdir(path):
        raise WeightsError("%s is a folder, not a .params file" % path)
    if not os.path.isfile(path):
        raise WeightsError("%s does not exist" % path)
    try:
        loaded = mx.nd.load(path)
    except mx.MXNetError:
        raise WeightsError("%s is not an MXNet parameter file (truncated, corrupt, or another "
                           "format)" % path)
    if not isinstance(loaded, dict) or not loaded:
        raise WeightsError("%s holds no named parameters" % path)
    return loaded


def load_weights(net, path, ctx=None):
    """Load ``path`` into a Gluon ``net``: a ``save_parameters`` file (training checkpoints,
    ``best.params``, converted weights) or an exported ``-0000.params`` (``arg:``/``aux:``
    names, as written by ``export`` for a network built with the same zoo name). Raises
    WeightsError naming what went wrong."""
    loaded = read_params(path)
    try:
        if any(k.startswith(("arg:", "aux:")) for k in loaded):
            net.collect_params().load_dict(loaded, ctx=ctx, filename=path)
        else:
            net.load_parameters(path, ctx=ctx)
    except (AssertionError, mx.MXNetError, ValueError, KeyError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise WeightsError("%s does not fit %s: %s" % (path, net.name, first[:200]))
    return net


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


def weights_of_folder(path):
    config = run_config_of(path)
    if config is None:
        raise WeightsError("%s is a folder without config.json: give a run folder (the output "
                           "folder of a training run) or a .params file" % path)
    for name in ("best.params", "final.params"):
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name), config
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


