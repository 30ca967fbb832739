# igcv3-gluon: `make demo` and `make test` are the two entry points (README, Quick start).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS ?= cpu,onnx,test

.PHONY: venv demo test bench clean

venv: $(STAMP)

# constraints.txt keeps numpy < 1.24 (MXNet 1.9.1) whatever an extra asks for
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26" setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m igcv3_gluon.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
