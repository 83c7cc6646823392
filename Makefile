# The two commands of the README: `make demo` (set up + a small real sweep with plots) and
# `make test` (set up + every test, the Slurm integration tests against a real one-node cluster).
# `make test-fast` is the contributors' edit–test loop: everything but the slow, fault and Slurm tiers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ROOT := $(shell [ "$$(id -u)" = 0 ] && echo "" || echo sudo)

.PHONY: setup demo test test-fast gpu-check bench bench-targets speed throughput slurm-up slurm-down clean

setup: $(STAMP)

# torch is pinned (2.13.0): its CPU wheel installs from local disk, an unpinned torch pulls a CUDA build
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q 'torch==2.13.0' -e '.[dev,tracking]'
	$(BIN)/seqbench build || echo "(the PyTorch paths are used where a kernel did not build)"
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/seqbench sweep sweeps/demo.toml --plot

slurm-up:
	$(ROOT) slurm/cluster.sh install
	$(ROOT) slurm/cluster.sh start

slurm-down:
	$(ROOT) slurm/cluster.sh stop

test: $(STAMP)
	@if [ -n "$$CI" ] || command -v sinfo >/dev/null 2>&1 || [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory slurm-up; \
	else echo "no root and no Slurm here: the Slurm integration tests will be skipped (make slurm-up to run them)"; fi
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 tests

# the fast tier spreads over every core (pytest-xdist): nothing in it times anything or shares a cluster;
# `make test` stays serial, its fault and Slurm tiers measure time and share one cluster
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --durations=10 -m "not slow and not slurm and not faults" tests

bench: $(STAMP)
	$(BIN)/python -m pytest -q benchmarks --benchmark-columns=median,iqr,rounds --benchmark-sort=name

bench-targets: $(STAMP)
	$(BIN)/python -m pytest -q benchmarks/test_training_speed.py --benchmark-columns=median,iqr,rounds --benchmark-sort=name --benchmark-json=results/speed/benchmarks.json

throughput: $(STAMP)
	$(BIN)/seqbench speed sweeps/throughput-cpu.toml --out results/throughput

speed: $(STAMP)
	$(BIN)/seqbench speed sweeps/speed-reference-cpu.toml sweeps/gateloop-op.toml --out results/speed

# On a GPU node: no network, no venv — the node's own torch; pure-Python wheels carried in .whl/ (README, "GPU")
gpu-check:
	python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . && python3 -m seqbench.cli gpu-check --out results/gpu

clean:
	rm -rf $(VENV) runs .benchmarks
