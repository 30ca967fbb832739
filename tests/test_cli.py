"""Command lines: the complexity table, the training scripts without data."""
import subprocess
import sys

import pytest

import igcv3_gluon

from conftest import ROOT


def run(*args):
    return subprocess.run([sys.executable] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_complexity_table_lists_every_model_with_paper_figures():
    proc = run("-m", "igcv3_gluon.complexity")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| model |")
    row = next(line for line in lines if line.startswith("| igcv3_d_1.0 |"))
    assert "3,491,688" in row and "313.0M" in row and "3.60M" in row and "Table 3" in row
    assert sum(line.startswith("| ") for line in lines) == 1 + len(igcv3_gluon.list_models()) == 23
    row = next(line for line in lines if line.startswith("| ssdlite_320_mobilenetv2_coco |"))
    assert "4,015,074" in row and "320x320" in row and "4.30M" in row
    row = next(line for line in lines if line.startswith("| ssdlite_320_igcv3_w_coco |"))
    assert "4,217,890" in row and "4.00M" in row


def test_complexity_unknown_model_is_one_line_error():
    proc = run("-m", "igcv3_gluon.complexity", "resnet50")
    assert proc.returncode == 2
    assert "unknown model resnet50" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("script, message", [
    ("train_imagenet.py", "--rec-val is required"),
    ("train_ssdlite.py", "give --data-dir (COCO layout) or --train-ann")])
def test_training_scripts_without_data_say_what_is_missing(script, message):
    proc = run(script)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
