"""Export a trained Gluon network for deployment: MXNet symbol/params and ONNX.

``export`` writes ``prefix-symbol.json`` and ``prefix-0000.params`` (Gluon's HybridBlock.export
format, input named ``data``); ``load_symbolblock`` and ``load_module`` read them back with
``gluon.SymbolBlock.imports`` and the Module API; ``export_onnx`` converts them with
``mx.onnx.export_model`` (possible because ``ChannelShuffle`` avoids the -4 reshape).
"""
import contextlib
import json
import os
import warnings

import mxnet as mx
import numpy as np

from ..errors import CheckFailed, OutputConflict, WeightsError
from ..models.spec import MAX_INPUT_VALUES
from ..models.weights import load_weights, read_params
from ..utils import atomic_write_json, read_json_object, refuse_overwrite, staged

__all__ = ["export", "export_detector", "load_symbolblock", "load_module", "export_onnx",
           "artifact_paths", "load_weights", "read_params", "WeightsError", "read_meta",
           "write_meta", "copy_meta", "meta_input_shape", "export_files", "export_inputs",
           "EXPORT_SUFFIXES", "check_output", "check_input_shape"]


def artifact_paths(prefix, epoch=0):
    """``(symbol_file, params_file)`` for ``prefix`` and ``epoch``."""
    return "%s-symbol.json" % prefix, "%s-%04d.params" % (prefix, epoch)


# the files of an export: PREFIX + each
EXPORT_SUFFIXES = ("-symbol.json", "-0000.params", "-meta.json")


def export_files(prefix):
    """The three files an export ``prefix`` consists of (symbol, params, -meta.json)."""
    return tuple(prefix + suffix for suffix in EXPORT_SUFFIXES)


def export_inputs(prefix, epoch=0):
    """The files a command reading the export ``prefix`` reads, named for messages
    (``utils.refuse_overwrite``)."""
    sym_file, params_file = artifact_paths(prefix, epoch)
    return [(sym_file, "the input export's symbol file"),
            (params_file, "the input export's parameter file"),
            (_meta_path(prefix), "the input export's description")]


def _check_initialized(net):
    try:
        for param in net.collect_params().values():
            param.data()
    except (RuntimeError, mx.MXNetError) as err:
        raise ValueError("cannot export %s: its parameters are not initialized (call "
                         "net.initialize() or load trained parameters first)" % net.name) from err


def _meta_path(prefix):
    return "%s-meta.json" % prefix


def write_meta(prefix, meta):
    """``prefix-meta.json``: what a user of the export needs besides the graph (the input
    shape ``[C, H, W]``, the model, the class names or count, the input normalisation
    ``(pixel - mean) / std`` on 0-255 pixels). Every ``deploy`` command reads it."""
    atomic_write_json(_meta_path(prefix), json.loads(json.dumps(meta)), sort_keys=True)


def read_meta(prefix):
    """The export's ``-meta.json`` as a dict ({} when there is none)."""
    try:
        return read_json_object(_meta_path(prefix)) or {}
    except ValueError:                   # the commands name a file that is there but unread
        return {}


def meta_input_shape(prefix, batch=1):
    """``(batch, C, H, W)`` from the export's ``-meta.json`` (None when it gives none);
    ``WeightsError`` naming the file when its ``input_shape`` is not three whole numbers
    >= 1, or is larger than a command takes (2^28 values per batch)."""
    shape = read_meta(prefix).get("input_shape")
    if shape is None:
        return None
    if not (isinstance(shape, list) and len(shape) == 3 and
            all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
        raise WeightsError("%s: input_shape %r is not [C, H, W] (three whole numbers >= 1): "
                           "repair it or export again" % (_meta_path(prefix), shape))
    full = (int(batch),) + tuple(shape)
    if int(np.prod(full, dtype=np.int64)) > MAX_INPUT_VALUES:
        raise WeightsError("%s: input_shape %s at batch %d is %d values, above the %d (1 GiB "
                           "of float32) a command takes" % (
                               _meta_path(prefix), shape, batch,
                               int(np.prod(full, dtype=np.int64)), MAX_INPUT_VALUES))
    return full


def copy_meta(prefix, out_prefix, **changes):
    """Carry an export's metadata over to a derived export (optimised, quantized)."""
    meta = read_meta(prefix)
    if meta or changes:
        write_meta(out_prefix, dict(meta, **changes))


def export(net, prefix, input_shape=(1, 3, 224, 224), epoch=0, ctx=None, meta=None):
    """Hybridize ``net``, trace it once on zeros of ``input_shape`` and write
    ``prefix-symbol.json`` + ``prefix-%04d.params`` (and ``prefix-meta.json``: the input
    shape and ``meta``). Returns the two paths. The files are written under staging names
    and renamed together (``utils.staged``): an export that fails (a full disk, a size
    limit, Ctrl-C) leaves the previous files of ``prefix``, if any, as they were. An empty
    prefix, one ending in a folder separator, or an input shape that is not four whole
    numbers >= 1 is refused first."""
    check_output(prefix)
    input_shape = check_input_shape(input_shape)
    _check_initialized(net)
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    ctx = ctx or next(iter(net.collect_params().values())).list_ctx()[0]
    net.hybridize()
    net(mx.nd.zeros(input_shape, ctx=ctx))
    suffixes = ("-symbol.json", "-%04d.params" % epoch, "-meta.json")
    with staged(prefix, suffixes) as stage:
        net.export(stage, epoch=epoch)
        write_meta(stage, dict(meta or {}, input_shape=list(input_shape[1:])))
    return artifact_paths(prefix, epoch)


def check_input_shape(shape):
    """``shape`` as a tuple of four whole numbers >= 1 (N, C, H, W) holding at most
    ``MAX_INPUT_VALUES``, or ``ValueError`` saying what it is."""
    values = tuple(shape) if isinstance(shape, (tuple, list)) else None
    if values is None or len(values) != 4 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in values):
        raise ValueError("input shape %r: give four whole numbers >= 1 (N, C, H, W)"
                         % (shape,))
    if int(np.prod(values, dtype=np.int64)) > MAX_INPUT_VALUES:
        raise ValueError("input shape %r is %d values, above the %d (1 GiB of float32) a "
                         "command takes" % (values, int(np.prod(values, dtype=np.int64)),
                                            MAX_INPUT_VALUES))
    return tuple(int(v) for v in values)


def export_detector(net, prefix, size, ctx=None, meta=None, nms=None):
    """A GluonCV SSD in inference mode with NMS: traced once in that mode, then exported
    (a hybridized SSD keeps the mode of its first trace); ``meta`` should carry the class
    names and the normalisation."""
    ctx = ctx or next(iter(net.collect_params().values())).list_ctx()[0]
    net.set_nms(**(nms or dict(nms_thresh=0.45, nms_topk=400, post_nms=100)))
    net.hybridize()
    net(mx.nd.zeros((1, 3, size, size), ctx=ctx))
    return export(net, prefix, (1, 3, size, size), ctx=ctx, meta=meta)


def _require(paths):
    for path in paths:
        if os.path.isdir(path):
            raise WeightsError("%s is a folder, not a file of an export: give the prefix of an "
                               "export (PREFIX-symbol.json + PREFIX-0000.params)" % path)
        if not os.path.isfile(path):
            raise WeightsError("%s not found: export the model first (igcv3_gluon.deploy."
                               "export), or give the prefix of an export" % path)


def check_output(out, label="output", onnx=False):
    """An output prefix (or, with ``onnx``, the ONNX file's path) that is empty or ends in a
    folder separator is refused before anything is written: ``OutputConflict`` naming it as
    ``label``. (That it is not a file the command reads is ``utils.refuse_overwrite``'s
    check.)"""
    if not str(out).strip() or str(out).endswith(os.sep):
        if onnx:
            raise OutputConflict("%s %r: give the path of the ONNX file to write, such as "
                                 "exp/model.onnx" % (label, out))
        raise OutputConflict("%s %r: give an output prefix such as exp/model (its files are "
                             "PREFIX-symbol.json, ...)" % (label, out))


def load_symbolblock(prefix, epoch=0, ctx=None):
    """Reload an export as a ``gluon.SymbolBlock``."""
    if ctx is not None and not isinstance(ctx, mx.Context):
        raise TypeError("ctx must be an MXNet context such as mx.cpu() or mx.gpu(0), got %r"
                        % (ctx,))
    sym_file, params_file = artifact_paths(prefix, epoch)
    _require((sym_file, params_file))
    with warnings.catch_warnings():     # "Cannot decide type for ... data": harmless
        warnings.simplefilter("ignore", UserWarning)
        return mx.gluon.SymbolBlock.imports(sym_file, ["data"], params_file,
                                            ctx=ctx or mx.cpu())


@contextlib.contextmanager
def _subgraph_backend(name):
    old = os.environ.get("MXNET_SUBGRAPH_BACKEND")
    os.environ["MXNET_SUBGRAPH_BACKEND"] = name
    try:
        yield
    finally:
        if old is None:
            del os.environ["MXNET_SUBGRAPH_BACKEND"]
        else:
            os.environ["MXNET_SUBGRAPH_BACKEND"] = old


def load_module(prefix, epoch=0, input_shape=(1, 3, 224, 224), ctx=None, fuse=True):
    """Reload an export into an inference-bound ``mx.mod.Module``.

    With ``fuse=True`` (MXNet's default on a CPU build with MKLDNN) the executor fuses
    conv + BN (+ ReLU6) into single oneDNN primitives: faster, but the float rounding differs
    from Gluon's unfused graph (measured: 1e-2 absolute on logits of magnitude 13 of a randomly
    initialised IGCV3-D). ``fuse=False`` binds the graph op for op, bit-comparable to Gluon.
    """
    _require(artifact_paths(prefix, epoch))
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, epoch)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None, context=ctx or mx.cpu())
    backend = contextlib.nullcontext() if fuse else _subgraph_backend("NONE")
    with backend:
        mod.bind(data_shapes=[("data", tuple(input_shape))], for_training=False)
    mod.set_params(arg_params, aux_params)
    return mod


class CheckedPath(str):
    """A path written by a converter, with what its check measured: ``max_diff`` (the
    largest |difference| to the source relative to the output's scale, None: unchecked)."""
    max_diff = None


ONNX_TOLERANCE = 1e-3


def onnx_difference(prefix, onnx_path, shape, epoch=0):
    """Max |ONNX Runtime - MXNet| of the export ``prefix`` and ``onnx_path`` on a random batch
    of ``shape``, relative to the outputs' scale (at least 1)."""
    import onnxruntime as ort
    x = np.random.RandomState(shape[0]).uniform(-1, 1, shape).astype(np.float32)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = load_symbolblock(prefix, epoch)(mx.nd.array(x)).asnumpy()
    return float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))


def export_onnx(prefix, onnx_path, input_shape=(1, 3, 224, 224), epoch=0, dynamic=True,
                check=False):
    """Convert an export (``prefix``) to ONNX at ``onnx_path``; returns the path. With
    ``dynamic`` (the default) the batch axis is free: one file serves every batch size.
    ``check=True`` runs the file in ONNX Runtime beside MXNet on random batches (the given
    batch size, and one more when the axis is free): the returned path's ``max_diff`` is the
    largest relative difference, and above 1e-3 ``CheckFailed`` is raised. The file is
    written under a temporary name and named only once checked; an ``onnx_path`` that is
    one of the export's own files is refused before anything is written."""
    import onnx
    sym_file, params_file = artifact_paths(prefix, epoch)
    _require((sym_file, params_file))
    check_output(onnx_path, "the ONNX path", onnx=True)
    input_shape = check_input_shape(input_shape)
    refuse_overwrite([onnx_path], export_inputs(prefix, epoch))
    os.makedirs(os.path.dirname(os.path.abspath(onnx_path)), exist_ok=True)
    extra = {}
    if dynamic:
        extra = dict(dynamic=True, dynamic_input_shapes=[(None,) + tuple(input_shape[1:])])
    max_diff = None
    with staged(onnx_path, ("",)) as stage:
        mx.onnx.export_model(sym_file, params_file, in_shapes=[tuple(input_shape)],
                             in_types=[np.float32], onnx_file_path=stage, verbose=False,
                             **extra)
        # mx2onnx lists every weight as a graph input too; ONNX Runtime then treats them as
        # overridable and skips constant folding. Keep only the real input.
        model = onnx.load(stage)
        weights = {init.name for init in model.graph.initializer}
        real_inputs = [i for i in model.graph.input if i.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(real_inputs)
        onnx.save(model, stage)
        if check:
            shape = tuple(input_shape)
            batches = [shape[0]] + ([shape[0] + 1] if dynamic else [])
            max_diff = max(onnx_difference(prefix, stage, (b,) + shape[1:], epoch)
                           for b in batches)
            if max_diff > ONNX_TOLERANCE:
                raise CheckFailed("%s in ONNX Runtime differs from the MXNet export %s by %.1e "
                                  "(relative; limit %g): not written" % (
                                      onnx_path, prefix, max_diff, ONNX_TOLERANCE),
                                  max_diff, ONNX_TOLERANCE)
    path = CheckedPath(onnx_path)
    path.max_diff = max_diff
    return path
