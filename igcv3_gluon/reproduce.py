"""Every table of the paper from one place.

    python -m igcv3_gluon.reproduce --table 2          # rows, our sizes beside the paper's,
                                                       # and the command that trains each row
    python -m igcv3_gluon.reproduce --collect runs/    # fill in accuracies from finished runs
    python -m igcv3_gluon.reproduce --doc > docs/reproduction.md

The tables are data (``TABLES``); sizes come from ``igcv3_gluon.complexity`` on the zoo
models, accuracies from the ``config.json`` + ``log.jsonl`` that the training scripts write.
"""
import argparse
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .cli import model_kwargs
from .complexity import graph_stats
from .errors import OutputConflict, WeightsError, started
from .models import CONFIGS, get_model, list_models, model_info
from .models.spec import ARCH_KEYS, ModelSpec
from .models.weights import run_config_of
from .nn.complementary import check_network
from .utils import read_json_object, read_jsonl, refuse_overwrite, save_figure, say

__all__ = ["Row", "TABLES", "row_size", "row_dense", "row_command", "collect_runs",
           "table_markdown", "main"]

DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet",
            "coco": "COCO mAP"}
PAPER_RECIPE = {
    "cifar10": "python train_cifar.py --data-dir DATA --dataset cifar10",
    "cifar100": "python train_cifar.py --data-dir DATA --dataset cifar100",
    "imagenet": "python train_imagenet.py --rec-train DATA/train.rec --rec-val DATA/val.rec",
    "coco": "python train_ssdlite.py --data-dir DATA/coco",
}


@dataclass
class Row:
    """One row of a paper table. ``model`` is the zoo name for the CIFAR columns,
    ``imagenet_model`` for ImageNet; ``flags`` are train_cifar.py flags (ablations);
    ``paper`` maps a data set to ``(mean, std)`` or a single number."""
    label: str
    model: str
    params: float = None
    madds: float = None
    paper: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    imagenet_model: str = None
    with_fc: bool = False                  # the paper's CIFAR counts exclude the final FC


def _cifar(label, model, params, c10, c100, imagenet=None, imagenet_model=None, **flags):
    paper = {"cifar10": c10, "cifar100": c100}
    if imagenet is not None:
        paper["imagenet"] = imagenet
    return Row(label, model, params, None, paper, flags, imagenet_model)


TABLES = {
    1: dict(title="Table 1: IGC blocks (CIFAR parameters without the final FC)",
            columns=("cifar10", "cifar100", "imagenet"), rows=[
                _cifar("IGCV1 (our impl.)", "cifar_igcv1", 2.3e6, (91.77, 0.14), (70.07, 0.17)),
                _cifar("IGCV2 (our impl.)", "cifar_igcv2", 2.3e6, (94.76, 0.11), (77.45, 0.35),
                       70.7, "igcv2"),
                _cifar("IGCV3-D", "cifar_igcv3_d_1.0", 2.4e6, (94.96, 0.07), (77.95, 0.39),
                       72.2, "igcv3_d_1.0")]),
    2: dict(title="Table 2: MobileNetV2 and IGCV3-D on CIFAR (parameters without FC)",
            columns=("cifar10", "cifar100"), rows=[
                _cifar("MobileNetV2 (our impl.)", "cifar_mobilenetv2_1.0", 2.3e6, (94.56, 0.16),
                       (77.09, 0.17)),
                _cifar("IGCV3-D 0.5x", "cifar_igcv3_d_0.5", 1.2e6, (94.73, 0.14), (77.29, 0.25)),
                _cifar("IGCV3-D 0.7x", "cifar_igcv3_d_0.7", 1.7e6, (94.92, 0.16), (77.83, 0.38)),
                _cifar("IGCV3-D 1.0x", "cifar_igcv3_d_1.0", 2.4e6, (94.96, 0.07), (77.95, 0.39))]),
    3: dict(title="Table 3: ImageNet (224x224, parameters and MAdds with the FC)",
            columns=("imagenet",), rows=[
                Row("MobileNetV2 (0.7) (our impl.)", None, 2.4e6, 210e6, {"imagenet": 66.51},
                    imagenet_model="mobilenetv2_0.7", with_fc=True),
                Row("IGCV3-D (0.7)", None, 2.7e6, 210e6, {"imagenet": 68.45},
                    imagenet_model="igcv3_d_0.7", with_fc=True),
                Row("MobileNetV2 (our impl.)", None, 3.4e6, 300e6, {"imagenet": 71.3},
                    imagenet_model="mobilenetv2_1.0", with_fc=True),
                Row("IGCV3-D", None, 3.6e6, 318e6, {"imagenet": 72.2},
                    imagenet_model="igcv3_d_1.0", with_fc=True),
                Row("MobileNetV2 (1.4) (our impl.)", None, 6.9e6, 585e6, {"imagenet": 73.76},
                    imagenet_model="mobilenetv2_1.4", with_fc=True),
                Row("IGCV3-D (1.4)", None, 7.2e6, 610e6, {"imagenet": 74.55},
                    imagenet_model="igcv3_d_1.4", with_fc=True)]),
    4: dict(title="Table 4: COCO detection, SSDLite at 320x320", columns=("coco",), rows=[
                Row("MobileNetV2 SSDLite (our impl.)", "ssdlite_320_mobilenetv2_coco", 4.3e6,
                    None, {"coco": 22.1}, with_fc=True),
                Row("IGCV3-W SSDLite2", "ssdlite_320_igcv3_w_coco", 4.0e6, None,
                    {"coco": 22.2}, with_fc=True)]),
    5: dict(title="Table 5: deeper vs wider (CIFAR parameters without FC)",
            columns=("cifar10", "cifar100", "imagenet"), rows=[
                _cifar("IGCV3-W", "cifar_igcv3_w_1.0", 2.3e6, (94.68, 0.21), (76.48, 0.25), 71.1,
                       "igcv3_w_1.0"),
                _cifar("IGCV3-Widest", "cifar_igcv3_widest", 2.3e6, (94.62, 0.19), (76.39, 0.27)),
                _cifar("IGCV3-D", "cifar_igcv3_d_1.0", 2.4e6, (94.88, 0.08), (77.95, 0.39), 72.2,
                       "igcv3_d_1.0")]),
    6: dict(title="Table 6: ReLU placement in the IGCV3 block (CIFAR, IGCV3-D)",
            columns=("cifar10", "cifar100"), rows=[
                _cifar("G1x1_ReLU_Dw3x3_ReLU_G1x1", "cifar_igcv3_d_1.0", 2.4e6, (94.44, 0.11),
                       (76.61, 0.29), relu="pw1+dw"),
                _cifar("G1x1_Dw3x3_ReLU_G1x1", "cifar_igcv3_d_1.0", 2.4e6, (94.88, 0.07),
                       (77.95, 0.39)),
                _cifar("G1x1_Dw3x3_G1x1_ReLU", "cifar_igcv3_d_1.0", 2.4e6, (93.76, 0.08),
                       (75.53, 0.25), relu="pw2")]),
    7: dict(title="Table 7: branches of the two group convolutions (CIFAR, IGCV3-D)",
            columns=("cifar10", "cifar100"), rows=[
                _cifar("IGCV3-D (G1 = 2, G2 = 2)", "cifar_igcv3_d_1.0", 2.4e6, (94.88, 0.07),
                       (77.95, 0.39)),
                _cifar("IGCV3-D (G1 = 2, G2 = 4)", "cifar_igcv3_d_1.0", 2.4e6, (94.89, 0.11),
                       (78.12, 0.36), groups="2,4"),
                _cifar("IGCV3-D (G1 = 4, G2 = 2)", "cifar_igcv3_d_1.0", 2.4e6, (94.71, 0.26),
                       (77.84, 0.40), groups="4,2")]),
}

# Sec. 3.3 variants without a table in the paper: reachable with these flags.
EXTRA_VARIANTS = [("linear IGCV3-D (no ReLU in the block)", "cifar_igcv3_d_1.0", {"relu": "none"}),
                  ("normal (non-inverted) IGCV3-D", "cifar_igcv3_d_1.0", {"inverted": False})]


def _row_net(row):
    name = row.model if row.model and not row.with_fc else (row.imagenet_model or row.model)
    if name not in list_models():
        return None, None
    return name, get_model(name, **model_kwargs(argparse.Namespace(**row.flags), name))


def row_size(row):
    """``(params, madds)`` of a row as the paper counts it, or None if not built here."""
    name, net = _row_net(row)
    if net is None:
        return None
    stats = graph_stats(net, model_info(name).input_shape)
    return (stats.params if row.with_fc else stats.params_without_fc), stats.madds


def row_dense(row):
    """"yes" when the checker finds every block of the row's network dense, else the names of
    the blocks that are not; "-" when the network is not built here."""
    _, net = _row_net(row)
    if net is None:
        return "-"
    bad = [name for name, report in check_network(net) if not report.dense]
    return "yes" if not bad else "no: " + ", ".join(bad)


def row_command(row, dataset, table):
    if dataset in ("cifar10", "cifar100"):
        flags = "".join(" --%s %s" % (k, v) for k, v in sorted(row.flags.items()))
        slug = (row.model + flags.replace(" --", "-").replace(" ", "").replace(",", "")
                .replace("+", ""))
        return "%s --model %s%s --seeds 5 --out-dir runs/table%d/%s-%s" % (
            PAPER_RECIPE[dataset], row.model, flags, table, slug, dataset)
    if dataset == "imagenet" and row.imagenet_model:
        return "%s --model %s --out-dir runs/table%d/%s" % (
            PAPER_RECIPE["imagenet"], row.imagenet_model, table, row.imagenet_model)
    if dataset == "coco":
        return "%s --model %s --out-dir runs/table%d/%s" % (PAPER_RECIPE["coco"], row.model,
                                                           table, row.model)
    return None


STAGES = ("train", "retrain")       # ImageNet: before and after the 50 retraining epochs
# the authors' README gives both numbers for IGCV3-D 1.0: 70.6 before, 72.2 after retraining
PAPER_BEFORE_RETRAINING = {"igcv3_d_1.0": 70.6}


def _key(model, dataset, flags, stage="train"):
    """What identifies a row's runs: model, data set, the architecture flags (a run with a
    changed width or depth is not a paper row) and the stage (ImageNet's training and
    retraining are two numbers, not two seeds)."""
    return (model, dataset, flags.get("relu") or "dw", flags.get("groups") or "default",
            bool(flags.get("p2")), flags.get("multiplier"), flags.get("depths"), stage)


def _metric(dataset, record):
    """The number a table reports, in percent: COCO mAP for detection, top-1 otherwise."""
    value = record.get("val_AP" if dataset == "coco" else "val_acc")
    if value is None:
        value = record.get("AP" if dataset == "coco" else "acc")
    return None if value is None else 100.0 * value


def collect_runs(runs_dir):
    """Finished runs under ``runs_dir`` -> ``{key: [number (%) per run]}``. A training run
    counts when its log holds the configured number of epochs (its last evaluation); an
    ``evaluation.json`` (written by ``--eval-only``) beside a run's config replaces it."""
    found = defaultdict(list)
    for root, _, files in os.walk(runs_dir):
        if "config.json" not in files:
            continue
        try:
            config = run_config_of(root)
            evaluation = read_json_object(os.path.join(root, "evaluation.json"))
        except (WeightsError, ValueError) as err:
            say("note: %s is left out of the report: %s" % (root, err))
            continue
        dataset = config.get("dataset", "imagenet")
        number = None
        if evaluation is not None:
            number = _metric(dataset, evaluation)
        elif "log.jsonl" in files:
            records = read_jsonl(os.path.join(root, "log.jsonl"))
            if records and records[-1].get("epoch") == config.get("epochs"):
                number = _metric(dataset, records[-1])
        if number is None:
            continue
        flags = _arch_flags(config)
        model = config.get("model")
        if flags["groups"] and model in list_models():
            default = ",".join(str(g) for g in _default_groups(model))
            if flags["groups"] == default:
                flags["groups"] = None
        found[_key(model, dataset, flags, config.get("stage") or "train")].append(number)
    return dict(found)


def run_files(runs_dir):
    """The files of the run folders under ``runs_dir`` (each folder with a ``config.json``),
    as ``(path, what)`` for :func:`utils.refuse_overwrite`: what ``--collect`` reads, and
    the runs' own records, which a plot must not replace."""
    found = []
    for root, _, files in os.walk(runs_dir):
        if "config.json" in files:
            found += [(os.path.join(root, name), "a file of the run %s" % root)
                      for name in files]
    return found


def _arch_flags(config):
    """The architecture keys of a run's or an evaluation's description, as the table rows
    write them (``groups="2,4"``), whichever form the file holds (flags or values)."""
    try:
        spec = ModelSpec.from_dict(dict(config, model=config.get("model") or "?"))
    except ValueError:
        return {k: config.get(k) for k in ARCH_KEYS}
    def joined(v):
        return ",".join(map(str, v)) if v is not None else None
    return dict(relu=spec.relu, groups=joined(spec.groups), p2=spec.p2,
                multiplier=spec.multiplier, depths=joined(spec.depths))


def _default_groups(model):
    """(G1, G2) a zoo model is built with, read from its entry and config table."""
    info = model_info(model)
    return tuple(info.kwargs.get("groups", CONFIGS[info.config]["groups"]))


def _fmt_paper(value):
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "%.2f ± %.2f" % value
    return "%.2f" % value


def _fmt_ours(accs):
    if not accs:
        return "-"
    if len(accs) == 1:
        return "%.2f (1 run)" % accs[0]
    return "%.2f ± %.2f (%d runs)" % (np.mean(accs), np.std(accs, ddof=1), len(accs))


def table_markdown(number, results=None, commands=True):
    """Markdown of paper table ``number``; ``results`` from :func:`collect_runs`."""
    table = TABLES[number]
    results = results or {}
    head = ["network", "dense", "params (ours)", "params (paper)"]
    if any(r.madds for r in table["rows"]):
        head += ["MAdds (ours)", "MAdds (paper)"]
    for ds in table["columns"]:
        head += ["%s paper" % DATASETS[ds], "%s ours" % DATASETS[ds]]
    lines = ["### " + table["title"], "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    cmds = []
    for row in table["rows"]:
        size = row_size(row)
        cells = [row.label + ("".join(" `--%s %s`" % kv for kv in sorted(row.flags.items()))),
                 row_dense(row),
                 "not built" if size is None else "%.2fM" % (size[0] / 1e6),
                 "%.1fM" % (row.params / 1e6)]
        if "MAdds (ours)" in head:
            cells += ["-" if size is None else "%.0fM" % (size[1] / 1e6),
                      "-" if not row.madds else "%.0fM" % (row.madds / 1e6)]
        for ds in table["columns"]:
            model = row.model if ds.startswith("cifar") else (row.imagenet_model or row.model)
            paper = _fmt_paper(row.paper.get(ds))
            if ds == "imagenet" and model in PAPER_BEFORE_RETRAINING:
                paper += " (before retraining %.1f)" % PAPER_BEFORE_RETRAINING[model]
            cells += [paper, _fmt_row_ours(results, model, ds, row.flags)
                      if row.paper.get(ds) is not None else "-"]
            if commands and row.paper.get(ds) is not None:
                cmd = row_command(row, ds, number)
                if cmd:
                    cmds.append("%s, %s: `%s`" % (row.label, DATASETS[ds], cmd))
        lines.append("| " + " | ".join(cells) + " |")
    if commands and cmds:
        lines += ["", "Commands (the paper's recipe is each script's default; DATA is yours):", ""]
        lines += ["- " + c for c in cmds]
    return "\n".join(lines)


def _stages(results, model, dataset, flags):
    """``(final numbers, numbers before retraining)``: ImageNet's final number is the
    retrained one when a retraining stage finished, else the training stage's."""
    trained = results.get(_key(model, dataset, flags, "train"), [])
    retrained = results.get(_key(model, dataset, flags, "retrain"), [])
    return (retrained, trained) if retrained else (trained, [])


def _fmt_row_ours(results, model, dataset, flags):
    final, before = _stages(results, model, dataset, flags)
    if dataset != "imagenet" or not final:
        return _fmt_ours(final)
    if not before:
        return "%s before retraining" % _fmt_ours(final)
    return "%s after retraining; %s before" % (_fmt_ours(final), _fmt_ours(before))


def bar_chart(results, path):
    """Paper vs ours, every row with both, as grouped bars (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels, paper, ours = [], [], []
    for number, table in sorted(TABLES.items()):
        for row in table["rows"]:
            for ds in table["columns"]:
                model = row.model if ds.startswith("cifar") else (row.imagenet_model or
                                                                  row.model)
                accs = _stages(results, model, ds, row.flags)[0]
                value = row.paper.get(ds)
                if accs and value is not None:
                    labels.append("T%d %s\n%s" % (number, row.label, DATASETS[ds]))
                    paper.append(value[0] if isinstance(value, tuple) else value)
                    ours.append(float(np.mean(accs)))
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 4))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, paper, 0.4, label="paper")
    ax.bar(x + 0.2, ours, 0.4, label="ours")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("top-1 or COCO mAP (%)")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=int, action="append", choices=sorted(TABLES),
                        help="table number (repeatable; default: all)")
    parser.add_argument("--collect", metavar="RUNS_DIR",
                        help="fill the accuracy columns from finished runs under RUNS_DIR")
    parser.add_argument("--plot", metavar="PNG", help="with --collect: bar chart paper vs ours")
    parser.add_argument("--doc", action="store_true", help="docs/reproduction.md, whole")
    parser.add_argument("--no-commands", action="store_true")
    return parser


def main(argv=None):
    started()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.collect and not os.path.isdir(args.collect):
        parser.exit(2, "%s: error: --collect %s is not a directory of training runs\n"
                    % (parser.prog, args.collect))
    if args.plot and not args.collect:
        parser.exit(2, "%s: error: --plot draws the collected runs: give --collect RUNS_DIR "
                    "too\n" % parser.prog)
    if args.plot:
        parent = os.path.dirname(os.path.abspath(args.plot))
        try:
            refuse_overwrite([args.plot], run_files(args.collect))
            if not os.path.isdir(parent):
                raise OutputConflict("--plot %s: the folder %s does not exist; create it or "
                                     "give another path" % (args.plot, parent))
        except OutputConflict as err:
            parser.exit(2, "%s: error: %s\n" % (parser.prog, err))
    results = collect_runs(args.collect) if args.collect else {}
    numbers = args.table or sorted(TABLES)
    parts = []
    if args.doc:
        parts.append(DOC_HEADER)
    for number in numbers:
        parts.append(table_markdown(number, results, commands=not args.no_commands))
    if args.doc:
        parts.append(doc_footer())
    print("\n\n".join(parts))
    if args.plot:
        path = bar_chart(results, args.plot)
        print("\nbar chart: %s" % (path or "nothing to plot (no finished runs matched)"),
              file=sys.stderr)
    return 0


DOC_HEADER = """# Reproducing the paper

Generated by `python -m igcv3_gluon.reproduce --doc`. Each table lists whether the
complementary checker finds every block of the row's network dense, our networks' sizes
(counted on the graph, `igcv3_gluon.complexity`) beside the paper's figures, the paper's
accuracies, and the command that trains each row with the paper's recipe (the scripts'
defaults). After training, `python -m igcv3_gluon.reproduce --collect runs/ [--plot bars.png]`
fills the "ours" columns with mean ± std over the runs found: CIFAR over the seeds;
ImageNet as the authors report it, after the 50 retraining epochs and before them (the
training and retraining stages are two numbers, never averaged); COCO as mAP. An
`--eval-only` result (`evaluation.json`, e.g. of converted published weights) counts as its
folder's number.

**Status.** Parameter counts and MAdds: verified here (tests/test_reproduce.py). Accuracies:
not yet run. CIFAR rows need the CIFAR data and days of GPU time per row (400 epochs x 5
seeds); ImageNet rows need the ImageNet RecordIO and GPU weeks (`train_imagenet.py`); Table 4
needs COCO and GPU days (`train_ssdlite.py`). None of these data sets can be downloaded on the
machine this project is developed on.

Size notes: rows built on IGCV3-D 1.0x (Tables 1, 2, 5, 6, 7) have 2.21M parameters without
the FC, the size of the authors' released IGCV3-D, where the paper prints 2.4M (see docs/design.md,
"Known deviations"); with 4 branches in one group conv (Table 7) the network has fewer
parameters still, since the paper gives no width change for those rows. IGCV1 and IGCV2 are
the MobileNetV1 skeleton widened x1.2 and x2.2 to reach Table 1's 2.3M; IGCV3-Widest is the
IGCV3-W plan x1.5 with every block under the strict condition (2.35M). The Table 4
detectors are built as the authors' detection code builds them (2-group extra layers, heads
ending with a BatchNorm): 4.22M for SSDLite2 and 4.02M for the MobileNetV2 baseline, where
the table prints 4.0M and 4.3M (docs/design.md, "Known deviations").
"""


def doc_footer():
    lines = ["### Sec. 3.3 variants (no table in the paper)", ""]
    for label, model, kwargs in EXTRA_VARIANTS:
        flags = " ".join("%s=%r" % kv for kv in kwargs.items())
        lines.append("- %s: `igcv3_gluon.get_model(%r, %s)`" % (label, model, flags))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
