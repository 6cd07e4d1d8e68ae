# ganrt: `make demo` and `make test` work from a fresh clone (they create .venv and install what they need).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# -qq keeps errors only: a machine's pip config (an index folder that is not there) otherwise prints a warning
# per package on every install, which is not ganrt's to fix; setuptools' notice that every editable install of this layout gets
# (a meta path finder, not a .pth) is filtered by its exact text.
PIP := PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install -qq --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.ganrt-runtime
DEV_STAMP := $(VENV)/.ganrt-dev
OUT ?= out

.PHONY: demo test test-fast bundle bench bench-quick bench-realscan clean help

help:
	@echo "make demo    bundled ultrasound cine -> bundled student -> $(OUT)/ (video, record, report)"
	@echo "make test    ruff, then the full test suite (installs dev deps, CPU torch)"
	@echo "make bundle  retrain + export the bundled us-enhance student (about 20-30 min on 2 cores)"
	@echo "make bench   every committed benchmark result, plot and docs/benchmarks.md (about 10 min on 2 cores)"
	@echo "make bench-quick  a tiny version of make bench into $(OUT)/bench-quick (docs untouched)"
	@echo "make bench-realscan  students vs filters on the real ultrasound scans -> benchmarks/results/realscan (a few min)"

$(VENV)/bin/python:
	@echo "creating $(VENV) (first run only)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) --upgrade pip

# Runtime only: numpy, opencv, onnx, onnxruntime (no torch on the cart) + pydicom for the echo cine.
$(RUNTIME_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "installing the runtime into $(VENV)"
	@$(PIP) -e '.[dicom]'
	@touch $@

# Everything for tests and export, with torch pinned to the CPU build.
$(DEV_STAMP): pyproject.toml requirements/cpu-dev.txt | $(VENV)/bin/python
	@echo "installing the dev dependencies into $(VENV) (CPU torch)"
	@$(PIP) -c requirements/cpu-dev.txt -e '.[dev]'
	@touch $@ $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	@$(VENV)/bin/ganrt demo --out $(OUT)

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-fast: $(DEV_STAMP)
	$(PY) -m pytest -q -m "not slow"

bundle: $(DEV_STAMP)
	$(VENV)/bin/ganrt export pipeline --task us-enhance --run-dir runs/us-enhance

bench: $(DEV_STAMP)
	$(PY) -m ganrt.benchmarks.run_all --out benchmarks/results

bench-quick: $(DEV_STAMP)
	$(PY) -m ganrt.benchmarks.run_all --quick --out $(OUT)/bench-quick

bench-realscan: $(DEV_STAMP)
	$(VENV)/bin/ganrt bench realscan --out benchmarks/results/realscan > /dev/null
	$(PY) -m ganrt.benchmarks.despeckle_frontier --out benchmarks/results/realscan > /dev/null

clean:
	rm -rf $(OUT) runs .pytest_cache
