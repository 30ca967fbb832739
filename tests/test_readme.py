"""The README's commands, as written (examples drifted from the code).

Every command of the README's shell blocks is parsed by its entry point's own parser
(an unknown flag or choice fails); the ones that need no data set and no GPU run for real,
in README order, in a sandbox laid out like a user's folder after `make demo` (a short
digits run in runs/demo, and files in the formats of the published weights where the
README converts them). The README's Python example runs too."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

README = os.path.join(ROOT, "README.md")
# the README and the manual it links, in the order a user reads them (the sandbox runs the
# runnable commands in this order)
DOCS = [README] + [os.path.join(ROOT, "docs", name) for name in (
    "design.md", "training.md", "imagenet.md", "detection.md", "distributed.md",
    "deployment.md")]
RUNNABLE = ("igcv3_gluon.deploy", "igcv3_gluon.complexity", "igcv3_gluon.reproduce",
            "igcv3_gluon.convert")


def shell_commands(text):
    """``[(block number, argv)]`` of the README's ```bash blocks: continuations joined,
    comments, environment assignments, ``nohup``, output redirections and trailing ``&``
    dropped."""
    found = []
    for number, block in enumerate(re.findall(r"```bash\n(.*?)```", text, re.S)):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            argv = shlex.split(line, comments=True)
            while argv and re.match(r"^[A-Z_]+=", argv[0]):
                argv = argv[1:]
            if argv and argv[-1] == "&":
                argv = argv[:-1]
            if argv[:1] == ["nohup"]:                  # nohup CMD > FILE 2>&1: CMD
                argv = argv[1:]
            argv = argv[:next((i for i, a in enumerate(argv) if a.startswith((">", "2>"))),
                              len(argv))]
            if argv:
                found.append((number, argv))
    return found


def entry_point(argv):
    """``(name, its arguments)`` for ``python X.py ...`` / ``python -m mod ...``, else None."""
    if not argv or not argv[0].endswith("python") or len(argv) < 2:
        return None
    if argv[1] == "-m":
        return argv[2], [a for a in argv[3:] if a != "..."]
    if argv[1] == "-c":
        return None
    return argv[1], [a for a in argv[2:] if a != "..."]


def parser_for(name):
    import importlib
    modules = {"train_cifar.py": "igcv3_gluon.cifar", "train_imagenet.py": "igcv3_gluon.imagenet",
               "train_ssdlite.py": "igcv3_gluon.detection",
               "igcv3_gluon.deploy": "igcv3_gluon.deploy.__main__"}
    if name.startswith("benchmarks/"):
        return None
    return importlib.import_module(modules.get(name, name)).build_parser()


COMMANDS = shell_commands("\n".join(open(path).read() for path in DOCS))


def test_the_readme_has_the_commands_it_should():
    names = {entry_point(argv)[0] for _, argv in COMMANDS if entry_point(argv)}
    assert {"train_cifar.py", "train_imagenet.py", "train_ssdlite.py", "igcv3_gluon.deploy",
            "igcv3_gluon.convert", "igcv3_gluon.reproduce", "igcv3_gluon.im2rec",
            "igcv3_gluon.train.launch"} <= names
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("number, argv", COMMANDS,
                         ids=[" ".join(a)[:60] for _, a in COMMANDS])
def test_every_readme_command_parses(number, argv):
    if argv[0] == "horovodrun":                       # horovodrun [options] python ...
        argv = argv[argv.index("python"):]
    point = entry_point(argv)
    if point is None:
        assert argv[0] in ("make", "export", "python", ".venv/bin/pip", "pip"), argv
        return
    name, args = point
    if name.startswith("benchmarks/"):
        assert os.path.isfile(os.path.join(ROOT, name)), name
        return
    if name == "igcv3_gluon.train.launch" and "--" in args:
        inner = args[args.index("--") + 1:]
        test_every_readme_command_parses(number, inner)
        args = args[:args.index("--")] + ["--", "true"]
    try:
        parser_for(name).parse_args(args)
    except SystemExit as stop:
        pytest.fail("README command does not parse (exit %s): %s" % (stop.code, " ".join(argv)))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, digits_run):
    """A user's folder after `make demo`: runs/demo (a short digits run, read only); the
    published weights' formats where the README converts them."""
    import shutil

    from igcv3_gluon.deploy.reference import authors_net, save_authors_checkpoint
    from igcv3_gluon.nn import init_like_trained
    root = tmp_path_factory.mktemp("user")
    shutil.copytree(digits_run, str(root / "runs" / "demo"))
    os.makedirs(root / "models")
    save_authors_checkpoint(authors_net(seed=1), str(root / "models" / "igcv3"))
    from gluoncv2.model_provider import get_model
    init_like_trained(get_model("igcv3_wd2"), seed=2).save_parameters(
        str(root / "igcv3_wd2-xxxx.params"))
    return str(root)


def test_readme_commands_that_need_no_data_run_as_written(sandbox):
    ran, timed = [], []
    env = dict(os.environ, PYTHONPATH=ROOT)
    for _, argv in COMMANDS:
        point = entry_point(argv)
        if point is None or point[0] not in RUNNABLE:
            continue
        proc = subprocess.run([sys.executable, "-m", point[0]] + point[1], cwd=sandbox,
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, (" ".join(argv), proc.stderr[-2000:])
        ran.append(" ".join(argv[1:4]))
        if "--runtime" in argv:
            timed.append(assert_every_runtime_timed_with_the_baseline(argv, proc.stdout))
    # the deployment chain, both converters, the report
    assert sum("igcv3_gluon.deploy" in r for r in ran) >= 6
    assert sum("igcv3_gluon.convert" in r for r in ran) == 2
    assert any("igcv3_gluon.reproduce" in r for r in ran)
    assert {"mxnet", "onnxruntime", "openvino f32", "openvino default"} <= set(sum(timed, []))
    for path in ("exp/digits-opt-symbol.json", "exp/onnx/digits-opt.onnx",
                 "exp/digits-int8-symbol.json", "igcv3_d_1.0.params", "igcv3_d_0.5.params",
                 "exp/igcv3_d-symbol.json", "exp/ov/digits.xml", "exp/ov/digits-int8.xml"):
        assert os.path.isfile(os.path.join(sandbox, path)), path


def assert_every_runtime_timed_with_the_baseline(argv, stdout):
    """`deploy bench --runtime ... --baseline`: a row for every runtime (OpenVINO
    at each precision) and network, GluonCV's MobileNetV2 included, at every batch size."""
    batches = argv[argv.index("--batch") + 1].split(",")
    runtimes = argv[argv.index("--runtime") + 1].split(",")
    if "openvino" in runtimes:
        runtimes.remove("openvino")
        runtimes += ["openvino " + p for p in argv[argv.index("--ov-precision") + 1].split(",")]
    for batch in batches:
        table = stdout.split("batch %s " % batch)[1].split("\n\n")[0]
        for runtime in runtimes:
            for name in ("digits-opt", "gluoncv-mobilenetv2_1.0"):
                assert re.search(r"\| %s %s \| [\d.]+ \| [\d.]+x \|" % (runtime, name), table), \
                    (runtime, name, table)
    return runtimes


def test_the_readme_python_example_runs(tmp_path):
    block = re.search(r"## Using the library\n\n```python\n(.*?)```", open(README).read(),
                      re.S).group(1)
    cwd = os.getcwd()
    os.chdir(str(tmp_path))
    scope = {}
    try:
        exec(compile(block, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    assert os.path.isfile(str(tmp_path / "out" / "igcv3_d-opt-symbol.json"))
    # the example's ONNX export checked itself in ONNX Runtime
    assert scope["onnx"].max_diff is not None and 0 <= scope["onnx"].max_diff < 1e-3
