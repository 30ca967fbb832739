"""Command-line pieces shared by every entry point (training scripts, ``deploy``,
``reproduce``): the model-override flags and their one parser, the help formatter, shapes.

Library code below raises ValueError phrased in values; this layer names the flags."""
import argparse
import math
import os

from .errors import UsageError
from .models.spec import ARCH_KEYS, MAX_INPUT_VALUES, ModelSpec

__all__ = ["HelpFormatter", "add_model_args", "model_kwargs", "spec_from_args", "parse_ints",
           "parse_floats", "parse_shape", "flag_error", "MODEL_FLAGS", "adopt_run_settings",
           "evaluation_dir"]

# the architecture flags are the ModelSpec's architecture keys (one list: models/spec.py)
MODEL_FLAGS = ARCH_KEYS


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` where a default means something (not for None, False or
    flags whose help already states it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" in text or "default" in text.lower() or action.default is None
                or action.default is False or action.default == argparse.SUPPRESS
                or action.option_strings == []):
            return text
        return text + " (default: %(default)s)"


def flag_error(flag, err):
    """A library ValueError as a one-line usage error naming ``flag``."""
    return UsageError("%s: %s" % (flag, err))


def parse_ints(text, flag, count=None, minimum=1):
    """``"1,2,3"`` -> ``[1, 2, 3]``; a one-line error naming ``flag`` otherwise."""
    try:
        values = [int(v) for v in str(text).split(",")]       # "1,,2" is no list of numbers
    except ValueError:
        raise UsageError("%s takes comma-separated integers such as 1,2,3; got %r" % (flag, text))
    if count is not None and len(values) != count:
        raise UsageError("%s takes %d numbers; got %r" % (flag, count, text))
    if not values or min(values) < minimum:
        raise UsageError("%s takes numbers >= %d; got %r" % (flag, minimum, text))
    return values


def parse_floats(value, flag, count=3):
    """``"123,117,104"`` (or a list, as a run's config.json holds it) -> a tuple of floats."""
    try:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        values = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise UsageError("%s takes %d finite numbers such as R,G,B; got %r"
                         % (flag, count, value))
    return values




def parse_shape(text, flag="--input-shape"):
    """``"1,3,224,224"`` -> ``(1, 3, 224, 224)``."""
    try:
        shape = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise UsageError("%s takes N,C,H,W such as 1,3,224,224; got %r" % (flag, text))
    values = shape[0] * shape[1] * shape[2] * shape[3]
    if values > MAX_INPUT_VALUES:
        raise UsageError("%s %s is %d values, above the %d (1 GiB of float32) a command "
                         "takes; give a smaller shape" % (flag, text, values, MAX_INPUT_VALUES))
    return shape


def add_model_args(parser, title="model", flags=MODEL_FLAGS, group=None):
    """The flags that change a zoo model's architecture (the paper's ablations); ``flags``
    picks which (a detector takes only ``multiplier``)."""
    g = group or parser.add_argument_group(title)
    if "multiplier" in flags:
        g.add_argument("--multiplier", type=float, default=None,
                       help="width multiplier replacing the zoo entry's")
    if "depths" in flags:
        g.add_argument("--depths", default=None,
                       help="blocks per stage replacing the zoo entry's, one number per stage "
                            "of the model (7 for the MobileNetV2 skeleton, 5 for IGCV1/IGCV2), "
                            "e.g. 1,2,3,4,3,3,1")
    if "groups" in flags:
        g.add_argument("--groups", default=None,
                       help="G1,G2 of every IGCV3 block (Table 7), e.g. 2,4")
    if "relu" in flags:
        g.add_argument("--relu", default=None, choices=["dw", "pw1+dw", "pw2", "none"],
                       help="ReLU6 placement in the IGCV3 block (Table 6)")
    if "p2" in flags:
        g.add_argument("--p2", action="store_true", help="apply the second permutation P2")
    return g


def spec_from_args(args, model=None, **described):
    """The ``ModelSpec`` of the model flags of ``args`` (``--model`` unless ``model`` is
    given) plus ``described`` (classes, mean, std, input_size, extra, ...); a value that does
    not fit the model is one line naming its flag."""
    values = {k: getattr(args, k, None) for k in ARCH_KEYS}
    try:
        spec = ModelSpec(model or args.model, **values, **described)
        spec.arch_kwargs()
    except ValueError as err:
        text = str(err)
        flag = next((k for k in ARCH_KEYS if text.startswith(k)), None)
        raise UsageError(("--" + text) if flag else text) from None
    return spec


def model_kwargs(args, model):
    """``get_model`` keyword arguments from the model flags of ``args`` for zoo ``model``,
    checked against the model's own config (its number of stages, its block kind)."""
    return spec_from_args(args, model).arch_kwargs()


def refuse_other_architecture(model, config, flags, source):
    """``UsageError`` when an architecture flag given (``flags``: name -> value) builds
    another network than the run's ``config`` was trained as: weights that load into it
    (``--p2`` changes no shape) would be used with the wrong graph, silently."""
    for key, value in flags.items():
        if key not in ARCH_KEYS or key not in config or value is None:
            continue
        try:
            trained = getattr(ModelSpec.from_dict({"model": model, key: config[key]}), key)
            asked = getattr(ModelSpec.from_dict({"model": model, key: value}), key)
        except ValueError:
            continue
        if trained != asked:
            flag = "--" + key.replace("_", "-") + ("" if value is True else " %s" % (value,))
            raise UsageError("%s: %s was trained with %s %s; the architecture comes from the "
                             "run, drop the flag" % (flag, source, key,
                                                     "(the model's default)" if config[key]
                                                     is None else config[key]))


def adopt_run_settings(args, parser, config, keys):
    """Take ``keys`` from a run's ``config`` into ``args`` where the user left the flag at
    its default; an architecture flag given that differs from the run is refused
    (``refuse_other_architecture``), other flags given win."""
    if not config:
        return args
    refuse_other_architecture(
        config.get("model"), config,
        {k: getattr(args, k) for k in keys if k in ARCH_KEYS and k in vars(args)
         and getattr(args, k) != parser.get_default(k)}, "the run of --params")
    for key in keys:
        if key in config and config[key] is not None and key in vars(args) \
                and getattr(args, key) == parser.get_default(key):
            setattr(args, key, config[key])
    return args


def evaluation_dir(args, parser, val_path):
    """Where an ``--eval-only`` result goes: ``--out-dir`` when given, else
    ``runs/evaluations/MODEL-VALNAME`` (never the training runs' default folder)."""
    if args.out_dir != parser.get_default("out_dir"):
        return args.out_dir
    name = os.path.splitext(os.path.basename(str(val_path or "val").rstrip("/")))[0]
    return os.path.join("runs", "evaluations", "%s-%s" % (args.model, name))
