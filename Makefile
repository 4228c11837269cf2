# kwsgui: `make run` starts the app, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.kwsgui-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test fuzz bench setup sysdeps lint default-model clean

run: setup
	$(PY) main.py

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q tests

# >= 10,000 seeded mutations per file format, per-case timeout and memory cap (tests/fuzz).
fuzz: setup
	$(PY) scripts/fuzz.py

bench: setup
	$(VENV)/bin/kws bench

# Rebuilds assets/{featurizer,classifier,custom_init}.kwm and categories.txt from offline data (see the script).
default-model: setup
	$(PY) scripts/make_default_model.py

lint: setup
	$(VENV)/bin/ruff check core kwsgui tests main.py

setup: sysdeps $(STAMP)

sysdeps:
	@bash scripts/sysdeps.sh

# torch first and pinned: an unpinned torch would pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
