"""The model zoo: the named models of the paper, registered as data (``registry.py``: which
config, which width multiplier, the input it is meant for, and the paper's figures for it,
used by ``igcv3_gluon.complexity`` and the docs), and ``get_model`` (GluonCV / timm style),
which builds one and loads its published or given weights (``pretrained.py``).
"""
from ..errors import naming
from .configs import CIFAR_DEPTHS
from .hub import published
from .pretrained import load_pretrained, resolve_weights
from .registry import ModelInfo, create, list_models, model_info, register_model
from .spec import ModelSpec
from .ssdlite import ssdlite

__all__ = ["ModelInfo", "register_model", "get_model", "list_models", "model_info"]


_KEEP_WITH_WEIGHTS = ("norm_layer", "norm_kwargs", "prefix", "dropout")


def _described_by(name, path, classes, kwargs):
    """The classes and architecture keys a weights file's description (its run's
    ``config.json``, its ``-meta.json``) gives ``name``, where the caller gave none."""
    with naming("pretrained"):
        _, described = resolve_weights(path)
    if not described or described.get("model") != name:
        return classes, kwargs
    spec = ModelSpec.from_dict(described)
    if classes is None and isinstance(spec.classes, (int, list)):
        classes = spec.classes
    return classes, dict(spec.arch_kwargs(), **kwargs)


def get_model(name, classes=None, pretrained=False, root=None, ctx=None, **kwargs):
    """Build zoo model ``name``.

    ``classes`` defaults to 1000 for ImageNet models and 10 for CIFAR ones; other keyword
    arguments reach the builder (e.g. ``groups=(2, 4)``, ``relu="pw2"``, ``p2=True``, or
    ``multiplier=`` / ``depths=`` to resize the entry). Without ``pretrained`` the
    parameters are created but not initialised.

    ``pretrained=True`` loads the published ImageNet weights (``models.hub.PUBLISHED``:
    imgclsmob's IGCV3-D 1.0 / 0.75 / 0.5 / 0.25, GluonCV's MobileNetV2 1.0), downloaded
    once into ``root`` (default ``$MXNET_HOME/models``), converted and checked;
    ``pretrained="PATH"`` loads a run folder, a ``.params`` file, or the publisher's own
    file. ``net.pretrained_cfg`` then describes the weights (normalisation, eval resize and
    crop, the publisher's top-1/top-5).
    """
    info = model_info(name)
    if pretrained and pretrained is not True:
        classes, kwargs = _described_by(name, str(pretrained), classes, kwargs)
    elif pretrained:
        changed = sorted(k for k in kwargs if k not in _KEEP_WITH_WEIGHTS)
        if changed or (classes is not None and classes != info.classes):
            raise ValueError("pretrained weights of %s are for its published architecture "
                             "with %s classes: drop %s" % (
                                 name, info.classes, ", ".join(changed + (
                                     ["classes=%s" % classes] if classes is not None and
                                     classes != info.classes else []))))
        if pretrained is True:
            published(name)                      # one line when nothing was published
    net = create(name, classes, **kwargs)
    if pretrained:
        load_pretrained(net, name, pretrained, root=root, ctx=ctx)
    return net


def _paper(params, madds=None, with_fc=True, source=""):
    return dict(params=params, madds=madds, with_fc=with_fc, source=source)


# The paper's "(0.7)" rows (Table 3: 210M MAdds for both networks) are the standard
# MobileNetV2 alpha = 0.75 configuration (209M MAdds for MobileNetV2); alpha = 0.7 gives
# 174-178M. The zoo keeps the paper's names and builds what its figures describe.
for _name, _cfg, _mult, _paper_fig in [
        ("igcv3_d_0.7", "igcv3_d", 0.75, _paper(2.7e6, 210e6, source="Table 3")),
        ("igcv3_d_1.0", "igcv3_d", 1.0, _paper(3.6e6, 318e6, source="Table 3")),
        ("igcv3_d_1.4", "igcv3_d", 1.4, _paper(7.2e6, 610e6, source="Table 3")),
        ("igcv3_w_1.0", "igcv3_w", 1.0, _paper(2.3e6, None, False, "Table 5 (no FC)")),
        ("mobilenetv2_0.7", "mobilenetv2", 0.75, _paper(2.4e6, 210e6, source="Table 3")),
        ("mobilenetv2_1.0", "mobilenetv2", 1.0, _paper(3.4e6, 300e6, source="Table 3")),
        ("mobilenetv2_1.4", "mobilenetv2", 1.4, _paper(6.9e6, 585e6, source="Table 3"))]:
    register_model(ModelInfo(_name, _cfg, _mult, paper=_paper_fig))

# imgclsmob's published IGCV3-D widths (gluoncv2 ``igcv3_w3d4``, ``igcv3_wd2``, ``igcv3_wd4``;
# ``igcv3_w1`` is ``igcv3_d_1.0``): channels x alpha rounded to even numbers, so that their
# weights convert (``python -m igcv3_gluon.convert imgclsmob``).
for _name, _mult, _theirs in [("igcv3_d_0.75", 0.75, "igcv3_w3d4"),
                              ("igcv3_d_0.5", 0.5, "igcv3_wd2"),
                              ("igcv3_d_0.25", 0.25, "igcv3_wd4")]:
    register_model(ModelInfo(_name, "igcv3_d", _mult, kwargs=dict(divisor=2),
                             paper=_paper(None, None, source="imgclsmob %s" % _theirs)))

for _name, _cfg, _depths, _paper_fig in [
        ("cifar_igcv3_d_0.5", "igcv3_d", "igcv3_d_0.5", _paper(1.2e6, None, False, "Table 2")),
        ("cifar_igcv3_d_0.7", "igcv3_d", "igcv3_d_0.7", _paper(1.7e6, None, False, "Table 2")),
        ("cifar_igcv3_d_1.0", "igcv3_d", None, _paper(2.4e6, None, False, "Tables 1, 2")),
        ("cifar_igcv3_w_1.0", "igcv3_w", None, _paper(2.3e6, None, False, "Table 5")),
        ("cifar_mobilenetv2_1.0", "mobilenetv2", None, _paper(2.3e6, None, False, "Table 2"))]:
    register_model(ModelInfo(_name, _cfg, 1.0, cifar=True, classes=10, paper=_paper_fig,
                             depths=None if _depths is None else tuple(CIFAR_DEPTHS[_depths])))

# Table 1 baselines on the MobileNetV1 skeleton, widened to the table's 2.3M parameters
# (CIFAR, without FC): IGCV1 x1.2 = 2.39M, IGCV2 x2.2 = 2.40M. Table 5's IGCV3-Widest: the
# IGCV3-W plan 1.5x wider, every block under the strict condition (Condition 1): 2.35M.
for _name, _cfg, _mult, _cifar, _kwargs, _paper_fig in [
        ("cifar_igcv1", "igcv1", 1.2, True, {}, _paper(2.3e6, None, False, "Table 1")),
        ("cifar_igcv2", "igcv2", 2.2, True, {}, _paper(2.3e6, None, False, "Table 1")),
        ("cifar_igcv3_widest", "igcv3_w", 1.5, True, dict(strict=True, groups=(0, 0)),
         _paper(2.3e6, None, False, "Table 5")),
        ("igcv1", "igcv1", 1.2, False, {}, _paper(None, None, source="Table 1 (no ImageNet row)")),
        ("igcv2", "igcv2", 2.2, False, {},
         _paper(None, None, source="Table 1 (70.7%, size not given)"))]:
    register_model(ModelInfo(_name, _cfg, _mult, cifar=_cifar, classes=10 if _cifar else 1000,
                             paper=_paper_fig, kwargs=_kwargs))


# Table 4: SSDLite detectors at 320x320 on COCO (80 classes + background). ``classes`` takes
# a list of class names for custom data sets (an int n gives names "class0".."class<n-1>";
# ``ssdlite.class_names``).
def _detector(backbone):
    def construct(classes=None, **kwargs):
        return ssdlite(backbone, classes=classes, **kwargs)
    return construct


for _name, _backbone, _paper_fig in [
        ("ssdlite_320_igcv3_w_coco", "igcv3_w", _paper(4.0e6, None, source="Table 4 (SSDLite2)")),
        ("ssdlite_320_mobilenetv2_coco", "mobilenetv2", _paper(4.3e6, None, source="Table 4"))]:
    register_model(ModelInfo(_name, _backbone, classes=None, paper=_paper_fig,
                             constructor=_detector(_backbone), task="detection",
                             input_size=320))
