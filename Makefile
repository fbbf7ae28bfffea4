# qanas: two commands on a fresh machine.
#   make demo   run the whole pipeline on the synthetic default
#   make test   run the test suite (all tiers but heavy; FAST=1 fast tier only, HEAVY=1 adds heavy)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: demo test test-fast lint toolchains clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the CPU wheel. Any looser spec pulls gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

toolchains:
	bash scripts/install_toolchains.sh

demo: $(STAMP)
	bash scripts/install_toolchains.sh
	$(VENV)/bin/qanas demo --force $(DEMO_ARGS)

# FAST=1: the fast tier only; HEAVY=1: also the cases of very large spaces (pytest -m heavy).
TEST_MARKS = $(strip $(if $(FAST),not slow and not toolchain,) \
	$(if $(HEAVY),,$(if $(FAST),and )not heavy))

# Two workers on two cores: each keeps torch to one thread (two each would oversubscribe).
test: $(STAMP)
	bash scripts/install_toolchains.sh
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -m "$(TEST_MARKS)" $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not toolchain" -x -q

lint: $(STAMP)
	$(VENV)/bin/ruff check qanas compiler runtime targets tests benchmarks scripts

clean-venv:
	rm -rf $(VENV)
