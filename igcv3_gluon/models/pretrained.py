"""Published weights into our networks (what ``get_model(pretrained=...)`` needs), checked
against their source: the publishers' layouts read as layers, the per-publisher converters,
``pretrained_weights`` (download, convert, check, cache) and ``load_pretrained``; and
``resolve_weights``, the one reader of "weights" arguments (a run folder, a ``.params``, the
word ``pretrained``). timm's ``_builder.load_pretrained`` and ``_hub`` play this part there;
the command line is ``igcv3_gluon.convert``.

Matching is by structure, not by names or luck: both graphs are read as their sequence of
layers in topological order (convolutions with kernel, filters, groups, stride and padding;
BatchNorms; ReLU6; channel shuffles with their groups; residual additions; pooling; the
FC layer); the sequences must agree layer for layer, and then every convolution, BatchNorm
(gamma, beta, running mean and variance) and FC tensor is copied to its counterpart, shapes
checked. The converted network is then run beside the source on a random batch: the logits
must agree (max |diff| <= 1e-4 relative), or nothing is written.

    resolve_weights("runs/demo")              -> ("runs/demo/best.params", {config})
    resolve_weights("runs/demo/final.params") -> ("runs/demo/final.params", {config})
    resolve_weights("converted.params")       -> ("converted.params", {its -meta.json} or None)
    resolve_weights("pretrained", model="igcv3_d_1.0") -> (the published weights, converted
                                                 and cached, {their description})
"""
import json
import os
import tempfile
import warnings

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from ..errors import WeightsError, naming
from ..utils import atomic_write, atomic_write_json
from ..utils import say as _say
from .hub import PUBLISHED, fetch, models_root, published, sha1_of, store_entry, writable_folder
from .registry import create, list_models
from .spec import ModelSpec
from .weights import (
    load_weights,
    read_params,
    read_weights_meta,
    run_config_of,
    run_folder_of,
    weights_of_folder,
)

__all__ = ["SOURCES", "IMGCLSMOB_NAMES", "GLUONCV_NAMES", "CONVERTERS", "PREPROCESSING",
           "layers_of", "transfer", "convert_authors", "convert_imgclsmob", "convert_gluoncv",
           "weights_description", "pretrained_weights", "load_pretrained", "resolve_weights",
           "PRETRAINED"]

SOURCES = ("authors", "imgclsmob", "gluoncv")
IMGCLSMOB_NAMES = {"igcv3_d_1.0": "igcv3_w1", "igcv3_d_0.75": "igcv3_w3d4",
                   "igcv3_d_0.5": "igcv3_wd2", "igcv3_d_0.25": "igcv3_wd4"}
GLUONCV_NAMES = {"mobilenetv2_1.0": "mobilenetv2_1.0"}


def _shape(text):
    return tuple(int(v) for v in str(text).strip("()[] ").split(",") if v.strip())


def layers_of(sym):
    """The layers of a graph that define its function, in topological order: a list of
    ``(kind, attributes, tensor names)``. Reshapes, flattening and the copy of our
    ``FlatBatchNorm`` carry no function of their own and are left out."""
    nodes = json.loads(sym.tojson())["nodes"]

    def arg(node, pos):
        return nodes[node["inputs"][pos][0]]["name"] if len(node["inputs"]) > pos else None
    layers = []
    for node in nodes:
        op, attrs = node["op"], node.get("attrs", {})
        if op == "Convolution" and layers and layers[-1][:2] == ("pool", "avg") \
                and _shape(attrs["kernel"]) == (1, 1) and int(attrs.get("num_group", 1)) == 1:
            # a 1x1 convolution of the pooled vector is an FC layer (GluonCV's MobileNetV2
            # classifier, ``pred``: no bias)
            bias = attrs.get("no_bias", "False") != "True"
            layers.append(("fc", int(attrs["num_filter"]),
                           [arg(node, 1)] + ([arg(node, 2)] if bias else [])))
        elif op == "Convolution":
            layers.append(("conv", (_shape(attrs["kernel"]), int(attrs["num_filter"]),
                                    int(attrs.get("num_group", 1)),
                                    _shape(attrs.get("stride", "(1, 1)")),
                                    _shape(attrs.get("pad", "(0, 0)"))),
                           [arg(node, 1)]))
        elif op == "BatchNorm":
            layers.append(("bn", attrs.get("fix_gamma", "True") == "True",
                           [arg(node, i) for i in range(1, 5)]))
        elif op == "FullyConnected":
            bias = attrs.get("no_bias", "False") != "True"
            layers.append(("fc", int(attrs["num_hidden"]),
                           [arg(node, 1)] + ([arg(node, 2)] if bias else [])))
        elif op == "clip" or (op == "Activation" and attrs.get("act_type") == "relu"):
            layers.append(("relu", None, []))
        elif op == "SwapAxis" and attrs.get("dim1", "0") != attrs.get("dim2", "0"):
            source = nodes[node["inputs"][0][0]]
            shape = _shape(source.get("attrs", {}).get("shape", "()"))
            groups = shape[shape.index(-4) + 1] if -4 in shape else shape[1]
            layers.append(("shuffle", groups, []))
        elif op in ("elemwise_add", "_Plus", "_plus", "broadcast_add"):
            layers.append(("add", None, []))
        elif op == "Pooling":
            layers.append(("pool", attrs.get("pool_type", "max"), []))
    return layers


def _describe(layer):
    kind, attrs, names = layer
    if kind == "conv":
        kernel, filters, groups, stride, _ = attrs
        return "%s (conv %dx%d, %d filters, %d groups, stride %d)" % (
            names[0], kernel[0], kernel[1], filters, groups, stride[0])
    if kind == "shuffle":
        return "a channel shuffle of %d groups" % attrs
    if kind == "fc":
        return "%s (FC, %d outputs)" % (names[0], attrs)
    return "%s %s" % (kind, names[0] if names else "")


def transfer(source_sym, source_values, net, source="source"):
    """Copy ``source_values`` (name -> NDArray/array) into the Gluon ``net`` (initialised) by
    matching ``layers_of`` both graphs. Returns counts per kind; WeightsError (one line) at the
    first difference."""
    theirs = layers_of(source_sym)
    ours = layers_of(net(mx.sym.var("data")))
    params = net.collect_params()
    counts = {"conv": 0, "bn": 0, "fc": 0}
    for i, (a, b) in enumerate(zip(theirs, ours)):
        if a[0] != b[0] or (a[0] != "bn" and a[1] != b[1]):
            raise WeightsError("%s differs from %s at layer %d: %s there, %s here"
                               % (source, net.name, i + 1, _describe(a), _describe(b)))
        names = list(zip(a[2], b[2]))
        if a[0] == "fc" and len(a[2]) < len(b[2]):            # a bias-free FC: zero bias
            params[b[2][1]].set_data(mx.nd.zeros(params[b[2][1]].shape))
        for k, (src, dst) in enumerate(names):
            if src not in source_values:
                raise WeightsError("%s lacks tensor %s (of %s)" % (source, src, _describe(a)))
            value = source_values[src]
            value = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
            if a[0] == "bn" and k == 0 and a[1]:                # fix_gamma: gamma is 1
                value = np.ones_like(value)
            if a[0] == "fc" and value.ndim == 4 and value.shape[2:] == (1, 1):
                value = value.reshape(value.shape[:2])          # the 1x1-convolution form
            if tuple(value.shape) != tuple(params[dst].shape):
                raise WeightsError("%s tensor %s has shape %s; %s's %s needs %s" % (
                    source, src, value.shape, net.name, dst, params[dst].shape))
            params[dst].set_data(mx.nd.array(value))
        if a[0] in counts:
            counts[a[0]] += 1
    if len(theirs) != len(ours):
        longer, what = (theirs, source) if len(theirs) > len(ours) else (ours, net.name)
        raise WeightsError("%s has %d layers, %s %d: %s continues with %s" % (
            source, len(theirs), net.name, len(ours), what, _describe(longer[min(
                len(theirs), len(ours))])))
    return counts


def _our_net(model, classes):
    """Our ``model`` with plain BatchNorm: the kernels of the source graphs, so the check
    compares like with like (``FlatBatchNorm`` has the same parameters and names, and the
    saved ``.params`` load into either form)."""
    if model not in list_models("classification"):
        raise WeightsError("%s is not a classification model of the zoo" % model)
    net = create(model, classes=classes, norm_layer=nn.BatchNorm)
    net.initialize(mx.init.Zero())
    return net


def _classes(sym):
    fcs = [layer for layer in layers_of(sym) if layer[0] == "fc"]
    if not fcs:
        raise WeightsError("the source network has no FC layer")
    return fcs[-1][1]


def _compare(ours, theirs, net, shape=(2, 3, 224, 224)):
    """Max |diff| of the logits of ``net`` and of the callable ``theirs`` on a random batch,
    relative to the logits' scale; raises when above 1e-4."""
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, shape))
    a, b = ours(x).asnumpy(), theirs(x).asnumpy()
    diff = float(np.abs(a - b).max())
    scale = max(1.0, float(np.abs(b).max()))
    if diff > 1e-4 * scale:
        raise WeightsError("the converted %s differs from the source by %.2e on a random batch "
                           "(logits of scale %.1f): not written" % (net.name, diff, scale))
    return diff, scale


def convert_authors(prefix, model="igcv3_d_1.0", epoch=0):
    """The authors' checkpoint ``prefix-symbol.json`` + ``prefix-%04d.params`` as our
    ``model``; returns ``(net, counts, (max diff, logit scale))``."""
    sym_file, params_file = "%s-symbol.json" % prefix, "%s-%04d.params" % (prefix, epoch)
    for path in (sym_file, params_file):
        if not os.path.isfile(path):
            raise WeightsError("%s does not exist: give the authors' checkpoint prefix (PREFIX-"
                               "symbol.json + PREFIX-%04d.params)" % (path, epoch))
    try:
        sym = mx.sym.load(sym_file)
    except (mx.MXNetError, UnicodeDecodeError, ValueError):
        raise WeightsError("%s is not an MXNet symbol file" % sym_file)
    loaded = read_params(params_file)
    values = {k.split(":", 1)[-1]: v for k, v in loaded.items()}
    internals = sym.get_internals()
    logits = [n for n in internals.list_outputs() if n.startswith("fc") and n.endswith("_output")]
    head = internals[logits[-1]] if logits else sym
    net = _our_net(model, _classes(head))
    counts = transfer(head, values, net, "the authors' %s" % os.path.basename(prefix))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = mx.gluon.SymbolBlock(head, mx.sym.var("data"))
    source = {k: v for k, v in values.items() if k in set(head.list_arguments()) |
              set(head.list_auxiliary_states())}
    theirs.collect_params().load_dict(source, ctx=mx.cpu(), ignore_extra=True)
    return net, counts, _compare(net, theirs, net)


def _from_gluon(theirs, path, model, label):
    """A publisher's Gluon network ``theirs`` loaded with ``path``, converted into our
    ``model``: ``(net, counts, (max diff, logit scale))``."""
    theirs.initialize()
    try:
        load_weights(theirs, path)
    except WeightsError as err:
        raise WeightsError("%s (%s)" % (err, label)) from None
    sym = theirs(mx.sym.var("data"))
    values = {name: p.data() for name, p in theirs.collect_params().items()}
    net = _our_net(model, _classes(sym))
    counts = transfer(sym, values, net, label)
    return net, counts, _compare(net, theirs, net)


def convert_imgclsmob(path, model="igcv3_d_1.0", source=None):
    """imgclsmob's ``.params`` of ``source`` (a gluoncv2 name; default: the counterpart of
    ``model``) as our ``model``; returns ``(net, counts, (max diff, logit scale))``."""
    source = source or IMGCLSMOB_NAMES.get(model)
    if source is None:
        raise WeightsError("%s has no imgclsmob counterpart; known: %s (or name their model)"
                           % (model, ", ".join("%s <- %s" % kv
                                               for kv in IMGCLSMOB_NAMES.items())))
    try:
        from gluoncv2.model_provider import get_model as imgclsmob_model
    except ImportError:
        raise WeightsError("converting imgclsmob weights needs their network definitions: "
                           "pip install gluoncv2")
    fcs = [v.shape[0] for v in read_params(path).values() if len(v.shape) == 2]
    try:           # the file's own class count (fine-tuned weights need not have 1000)
        theirs = imgclsmob_model(source, **({"classes": fcs[-1]} if len(fcs) == 1 else {}))
    except ValueError as err:
        raise WeightsError("imgclsmob's %s: %s" % (source, err)) from None
    return _from_gluon(theirs, path, model, "imgclsmob's %s" % source)


def convert_gluoncv(path, model="mobilenetv2_1.0", source=None):
    """GluonCV's ``.params`` of ``source`` (a GluonCV model name; default: the counterpart of
    ``model``) as our ``model``; returns ``(net, counts, (max diff, logit scale))``. GluonCV's
    MobileNetV2 ends with a bias-free 1x1 convolution of the pooled vector (``output_pred``):
    it becomes our FC layer with a zero bias."""
    from gluoncv.model_zoo import get_model as gluoncv_model
    source = source or GLUONCV_NAMES.get(model)
    if source is None:
        raise WeightsError("%s has no GluonCV counterpart; known: %s" % (
            model, ", ".join("%s <- %s" % kv for kv in GLUONCV_NAMES.items())))
    try:
        theirs = gluoncv_model(source)
    except ValueError as err:
        raise WeightsError("GluonCV's %s: %s" % (source, str(err).splitlines()[0])) from None
    return _from_gluon(theirs, path, model, "GluonCV's %s" % source)


CONVERTERS = {"authors": convert_authors, "imgclsmob": convert_imgclsmob,
              "gluoncv": convert_gluoncv}


# How each publisher's weights expect their input (0-255 pixels, (x - mean) / std), written
# beside the converted weights so that evaluation and deployment use it without flags.
PREPROCESSING = {
    # the authors' train_imagenet.py / common/data.py: mean subtraction only (rgb mean
    # 123.68,116.779,103.939, no std); validation: the 480 records rescaled to 256, centre 224
    "authors": dict(mean=[123.68, 116.779, 103.939], std=[1.0, 1.0, 1.0], input_size=224,
                    crop_ratio=0.875),
    # imgclsmob (gluoncv2): ToTensor ([0, 1]) then Normalize((0.485, 0.456, 0.406),
    # (0.229, 0.224, 0.225)), i.e. these x 255 on 0-255 pixels; validation: resize to
    # ceil(224 / 0.875) = 256, centre crop 224
    "imgclsmob": dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                      input_size=224, crop_ratio=0.875),
}
# GluonCV (scripts/classification/imagenet/train_imagenet.py): the same normalisation and
# validation resize / crop as imgclsmob
PREPROCESSING["gluoncv"] = PREPROCESSING["imgclsmob"]


def weights_description(source, model, classes, src):
    """What travels with converted weights (a ``ModelSpec``; ``runs.read_weights_meta`` reads
    it)."""
    return ModelSpec(model, classes=int(classes), source="%s %s" % (
        source, os.path.basename(src)), extra=dict(input_shape=[3, 224, 224]),
        **PREPROCESSING[source]).to_dict()


def _published_record(pub, entry=None):
    """The publisher's figures (and, for a download, its address and SHA-1) as the weights'
    description carries them."""
    record = dict(top1=pub.top1, top5=pub.top5, figures=pub.figures, publisher=pub.publisher,
                  name=pub.name)
    if entry is not None:
        record.update(url=entry["url"], sha1=entry["sha1"])
    return record


def _cached_paths(pub, entry, root):
    base = os.path.join(models_root(root), "igcv3_gluon",
                        "%s-%s-%s" % (pub.model, pub.name, entry["sha1"][:8]))
    return base + ".params", base + "-meta.json"


def pretrained_weights(model, root=None, progress=True, say=None):
    """``(params file, description)`` of the published ImageNet weights of zoo ``model``:
    downloaded from the publisher's store (``models.hub``), converted once, checked (logits
    equal to the publisher's network), cached under ``$MXNET_HOME/models/igcv3_gluon`` with
    their description (model, classes, normalisation, eval resize/crop, the publisher's
    top-1/top-5, address, SHA-1). A second call reads the cache, without a network."""
    say = say or _say
    pub = published(model)
    entry = store_entry(pub)
    params, meta_path = _cached_paths(pub, entry, root)
    if os.path.isfile(params) and os.path.isfile(meta_path):
        meta = read_weights_meta(params)
        if meta and meta.get("converted_sha1") == sha1_of(params):
            return params, meta
        say("%s does not match its description: converting again" % params)
    raw = fetch(pub, root, progress=progress, say=say)
    net, counts, (diff, scale) = CONVERTERS[pub.publisher](raw, model, pub.name)
    writable_folder(os.path.dirname(params))
    atomic_write(params, net.save_parameters)
    meta = dict(weights_description(pub.publisher, model, net.output.weight.shape[0], raw),
                published=_published_record(pub, entry), converted_sha1=sha1_of(params))
    atomic_write_json(meta_path, meta, sort_keys=True)
    say("converted %s's %s into %s (%d convolutions, %d BatchNorms; logits equal within "
        "%.1e): %s" % (pub.publisher, pub.name, model, counts["conv"], counts["bn"], diff,
                       params))
    return params, meta


def load_pretrained(net, model, pretrained, root=None, ctx=None, say=None):
    """Load ``pretrained`` into ``net`` (zoo ``model``): True = the published weights
    (``pretrained_weights``); a path = a run folder, our ``.params``, or the publisher's own
    file of ``model`` (converted on the way). Sets ``net.pretrained_cfg`` (the description
    that travels with the weights) and returns it."""
    if pretrained is True:
        params, meta = pretrained_weights(model, root, say=say)
    else:
        with naming("pretrained"):
            params, meta = resolve_weights(str(pretrained))
    try:
        load_weights(net, params, ctx=ctx)
    except WeightsError:
        pub = PUBLISHED.get(model)
        if pretrained is True or pub is None:
            raise
        try:                       # the publisher's own file, downloaded by hand
            converted, _, _ = CONVERTERS[pub.publisher](params, model, pub.name)
        except WeightsError:
            raise WeightsError("%s is neither weights of %s nor %s's %s file"
                               % (params, model, pub.publisher, pub.name)) from None
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "converted.params")
            converted.save_parameters(path)
            load_weights(net, path, ctx=ctx)
        meta = dict(weights_description(pub.publisher, model,
                                        converted.output.weight.shape[0], params),
                    published=_published_record(pub))
    net.pretrained_cfg = meta
    return meta


PRETRAINED = "pretrained"


def resolve_weights(path, model=None):
    """``(params file, run config or None)`` for a run folder or a weights file; the word
    ``pretrained``: the published ImageNet weights of zoo ``model`` (downloaded, converted
    and cached once: ``pretrained_weights``) with their description."""
    if not path:
        raise WeightsError("no weights given: give a .params file or a run folder")
    if path == PRETRAINED and not os.path.exists(path):
        if not model:
            raise WeightsError("pretrained: name the model whose published weights to use")
        return pretrained_weights(model)
    if os.path.isdir(path):
        return weights_of_folder(path)
    if not os.path.isfile(path):
        raise WeightsError("%s does not exist" % path)
    folder = run_folder_of(path)
    if folder is None:
        return path, read_weights_meta(path)
    return path, run_config_of(folder)


