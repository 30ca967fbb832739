"""The shape of the code, read from its source: library modules raise typed errors phrased in
values and never name a command-line flag (only the command lines do); no function is longer
than 60 lines."""
import ast
import os
import re

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "igcv3_gluon")
# the command lines: they parse flags, name them in errors and raise UsageError
COMMAND_LINES = {"cli.py", "cifar.py", "imagenet.py", "detection.py", "reproduce.py", "demo.py",
                 "selfcheck.py", "complexity.py", "convert.py", "deploy/cli.py",
                 "deploy/commands.py", "deploy/__main__.py", "train/cli.py", "train/launch.py"}
# a library module may carry its own small command line in these functions (data/im2rec.py)
COMMAND_FUNCTIONS = {"main", "build_parser"}
FLAG = re.compile(r"(^|[\s(`'\"])--[a-z][a-z0-9-]+")


def _sources(folders=("igcv3_gluon", "benchmarks", "symbols"), extra=("train_cifar.py",
             "train_imagenet.py", "train_ssdlite.py")):
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.join(dirpath, name)
    for name in extra:
        yield os.path.join(ROOT, name)


def _docstrings(tree):
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and ast.get_docstring(node) is not None}


def _command_line_nodes(tree):
    """ids of every node inside a ``main`` / ``build_parser`` function."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in COMMAND_FUNCTIONS:
            inside.update(id(n) for n in ast.walk(node))
    return inside


def library_findings(path):
    """``(line, what)`` of each UsageError and each string naming a flag (outside
    docstrings and outside ``main`` / ``build_parser``) in a library module."""
    tree = ast.parse(open(path).read())
    skip = _docstrings(tree) | _command_line_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Name) and node.id == "UsageError":
            found.append((node.lineno, "UsageError"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and FLAG.search(node.value)):
            found.append((node.lineno, node.value[:60]))
    return found


def test_library_modules_raise_typed_errors_and_name_no_flag():
    found = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, PACKAGE).replace(os.sep, "/")
            if name.endswith(".py") and rel not in COMMAND_LINES:
                found.update({"%s:%d" % (rel, line): what
                              for line, what in library_findings(path)
                              if not (rel == "errors.py" and what == "UsageError")})
    assert found == {}
    # the scan sees what it looks for: a command line of the list is full of both
    assert len(library_findings(os.path.join(PACKAGE, "train", "cli.py"))) > 20


def test_no_function_is_longer_than_60_lines():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long["%s:%s" % (os.path.relpath(path, ROOT), node.name)] = lines
    assert long == {}
