# igcv3-gluon: `make demo` and `make test` are the two entry points (README, Quick start).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# what `make demo` needs; GPU machines: make test EXTRAS=cu112,onnx
EXTRAS ?= cpu,onnx
# what `make test` adds: test tools, OpenVINO and NNCF, and Horovod
TEST_EXTRAS ?= test,openvino
# Horovod compiles against the installed MXNet (Gloo for CPUs; NCCL where CUDA is found)
HOROVOD_ENV := HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
               HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1

.PHONY: venv demo test check lint bench clean

venv: $(STAMP)

# constraints.txt keeps numpy < 1.24 (MXNet 1.9.1) whatever an extra asks for
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26" setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS),$(TEST_EXTRAS)]"
	$(HOROVOD_ENV) $(PY) -m pip install --quiet --no-build-isolation -c constraints.txt \
	    -e ".[$(EXTRAS),horovod]"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(PY) -m igcv3_gluon.demo

# most tests train small models, which keep one core busy: two workers use both cores;
# the tests that read the demo's run share one worker (tests/conftest.py)
TEST_WORKERS ?= 2

# the linter's rules: ruff.toml (pyflakes, pycodestyle, import order)
LINTED := igcv3_gluon symbols benchmarks tests train_cifar.py train_imagenet.py \
          train_ssdlite.py setup.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check $(LINTED)

test: lint
	$(PY) -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
	    -n $(TEST_WORKERS) --dist loadgroup tests

# the fast inner loop: the linter and the tests that train nothing (docs/development.md)
check: lint
	$(PY) -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
	    -n $(TEST_WORKERS) -m "not trains" tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
