"""The shape of the code, read from its source: library modules raise typed errors phrased in
values and never name a command-line flag (only the command lines do); no function is longer
than 60 lines; imports sit at the top of their module (inside a function only for a heavy
optional dependency); the package's import graph has no cycle and every import between its
parts goes down the layers of docs/design.md."""
import ast
import os
import re

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "igcv3_gluon")
# the command lines: they parse flags, name them in errors and raise UsageError
COMMAND_LINES = {"cli.py", "cifar.py", "imagenet.py", "detection.py", "reproduce.py", "demo.py",
                 "selfcheck.py", "complexity.py", "convert.py", "im2rec.py", "deploy/cli.py",
                 "deploy/commands.py", "deploy/commands_int8.py", "deploy/commands_bench.py",
                 "deploy/__main__.py", "train/cli.py", "train/launch.py"}
# the dependencies a function may import where it needs them (heavy, and optional for most
# commands: OpenVINO and NNCF, ONNX and its runtime, GluonCV and gluoncv2, Horovod,
# matplotlib, OpenCV, tensorboardX, PyYAML, pycocotools, scikit-learn): named here, once
HEAVY_OPTIONAL = {"openvino", "nncf", "onnx", "onnxruntime", "gluoncv", "gluoncv2", "horovod",
                  "matplotlib", "cv2", "tensorboardX", "yaml", "pycocotools", "sklearn"}
# the package's parts, bottom to top (docs/design.md, "The pieces"): a part imports only
# parts of lower layers
LAYERS = [("errors", "version", "environment"), ("utils",), ("nn", "data"), ("models",),
          ("igcv3_gluon", "cli", "complexity", "evaluations"), ("deploy",), ("train",),
          ("cifar", "imagenet", "detection", "convert", "im2rec", "reproduce", "selfcheck"),
          ("demo",)]
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


def _other_programs_arguments(tree):
    """ids of the strings in a command line a module runs (``subprocess.run(["git", ...])``):
    another program's flags, not ours."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in (
                "run", "Popen", "check_output", "call") and node.args and \
                isinstance(node.args[0], (ast.List, ast.Tuple)):
            found.update(id(n) for n in ast.walk(node.args[0]))
    return found


def library_findings(path):
    """``(line, what)`` of each UsageError and each string naming a flag (outside
    docstrings) in a library module."""
    tree = ast.parse(open(path).read())
    skip = _docstrings(tree) | _other_programs_arguments(tree)
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


def _modules():
    """``{module name: path}`` of the package (``igcv3_gluon.data.coco``, ...)."""
    found = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
                found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def _imported(module, path, node, modules):
    """The package's modules an import statement of ``module`` reaches."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    if node.level:
        parts = package.split(".")
        target = ".".join(parts[:len(parts) - node.level + 1] + [node.module or ""]).strip(".")
    else:
        target = node.module or ""
    return [target + "." + a.name if target + "." + a.name in modules else target
            for a in node.names if target + "." + a.name in modules or target in modules]


def import_graph():
    """``{module: {modules it imports}}`` over the package, from every import statement,
    at the top of a module or inside a function."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        graph[module] = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(_imported(module, path, node, modules))
        graph[module].discard(module)
    return graph


def cycles(graph):
    """Every import cycle of ``graph`` once, as the list of modules around it."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_sees_a_loop_and_a_pair():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_modules_of_the_package_import_each_other_around_a_loop():
    graph = import_graph()
    assert len(graph) > 60 and sum(map(len, graph.values())) > 200    # it reads the imports
    assert cycles(graph) == []


def _part(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_import_between_parts_goes_down_the_layers():
    rank = {part: level for level, parts in enumerate(LAYERS) for part in parts}
    graph = import_graph()
    assert {_part(m) for m in graph} == set(rank)          # every part has its layer
    upward = sorted("%s -> %s" % (a, b) for a, targets in graph.items() for b in targets
                    if _part(a) != _part(b) and rank[_part(a)] <= rank[_part(b)])
    assert upward == []


def test_imports_sit_at_the_top_but_for_heavy_optional_dependencies():
    """A module's dependencies show at its top; inside a function only the heavy optional
    ones (``HEAVY_OPTIONAL``), where a command that does not need them is spared them."""
    inside = {}
    for module, path in sorted(_modules().items()):
        tree = ast.parse(open(path).read())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                          .split(".")[0] not in HEAVY_OPTIONAL):
                    inside["%s:%d" % (module, node.lineno)] = "." * node.level + (node.module or "")
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names
                             if a.name.split(".")[0] not in HEAVY_OPTIONAL]
                    if names:
                        inside["%s:%d" % (module, node.lineno)] = names[0]
    assert inside == {}
