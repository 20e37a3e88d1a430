# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv at .venv and installs what it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check --quiet
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
# tflite-runtime 2.14 needs numpy < 2, so it lives in its own virtualenv; the
# harness runs its agent there to check which variants that runtime can load
# (harness/convert/loadability.py; found by harness.paths.tflite214_python).
VENV_TFLITE214 := .venv-tflite214
STAMP_TFLITE214 := $(VENV_TFLITE214)/.installed
PYTEST_ARGS ?=
# setuptools announces every editable install of a mapped layout (ours maps
# devices/ and models/ into the package) with an "Editable installation."
# notice about same-named folders in the working directory; it is information
# only, and the one message the install would print, so it is filtered by its
# text (tests/integration/test_packaging.py checks nothing else is printed).
EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: demo test bench install dev train-demo clean tflite214

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(EDITABLE) $(PIP) install -e '.[convert,runtime]'
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(EDITABLE) $(PIP) install -e '.[convert,runtime,dev]'
	touch $@ $(STAMP_RUN)

$(STAMP_TFLITE214):
	$(PYTHON) -m venv $(VENV_TFLITE214)
	$(VENV_TFLITE214)/bin/pip --disable-pip-version-check --quiet install 'tflite-runtime==2.14.0' 'numpy<2'
	touch $@

install: $(STAMP_RUN)
dev: $(STAMP_DEV)
tflite214: $(STAMP_TFLITE214)

demo: $(STAMP_RUN) $(STAMP_TFLITE214)
	$(BIN)/harness demo

# The suite in two pytest runs sharing one conversion cache: unit and
# integration tests on every core (pytest-xdist: a test module per worker,
# the demo detector converted once for all, tests/conftest.py), then the
# fault suite and the benchmarks in one process, so nothing else competes
# with their timeouts, rate limits and timings.
TEST_WORKERS ?= auto
test: $(STAMP_DEV) $(STAMP_TFLITE214)
	@cache=$$(mktemp -d /tmp/edge-harness-test-cache.XXXXXX) && trap 'rm -rf "$$cache"' EXIT; \
	HARNESS_TEST_CACHE="$$cache" $(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit tests/integration $(PYTEST_ARGS); \
	first=$$?; \
	HARNESS_TEST_CACHE="$$cache" $(BIN)/python -m pytest -p no:xdist tests/faults tests/benchmarks $(PYTEST_ARGS); \
	second=$$?; \
	echo "make test: unit+integration exit $$first, faults+benchmarks exit $$second"; \
	[ $$first -eq 0 ] && [ $$second -eq 0 ]

# The harness's own benchmarks: overhead ratios against a bare invoke() loop
# and the runtime's reference benchmark script, per-pair overhead over SSH.
bench: $(STAMP_DEV)
	$(BIN)/python -m pytest tests/benchmarks -q -p no:cacheprovider $(PYTEST_ARGS)

# Retrains the bundled demo detector (fixed seeds; about 10 minutes on 2 cores).
train-demo: $(STAMP_RUN)
	$(BIN)/python models/demo-detector/train.py --out models/demo-detector

clean:
	rm -rf $(VENV) $(VENV_TFLITE214) build *.egg-info
