# Works on a fresh clone with only python3 >= 3.11, make and the package registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' kubectl_meshdoctor/__init__.py)
ARCHIVE := dist/kubectl-meshdoctor-v$(VERSION).tar.gz
# kubectl finds the plugin on PATH: the venv's bin dir (holding kubectl-meshdoctor) goes first.
RUN := PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: test demo dist clean

# Re-installs whenever pyproject.toml changes (new dependency, new entry point).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: $(PYTHON) must be Python >= 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

test: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q

# Starts the local mesh lab (real Envoys, a Kubernetes API of our own) with every seed scenario, runs
# `kubectl meshdoctor namespace sweep -A` against it through the real kubectl, then stops the lab.
demo: $(STAMP)
	$(RUN) $(BIN)/python -m kubectl_meshdoctor.lab demo

# The krew archives (a PEX per OS and CPU, plus LICENSE); rewrites version and platforms in krew-manifest.yaml.
dist: $(STAMP)
	$(BIN)/python scripts/build_dist.py --out dist --manifest krew-manifest.yaml

clean:
	rm -rf dist build $(VENV)

# Start-up time of `kubectl meshdoctor version` and `checks` through the real kubectl, for the console
# script of a `uv tool install` and for the linux/amd64 krew archive (built first); prints a table.
.PHONY: startup
startup: $(STAMP)
	$(BIN)/python scripts/measure_startup.py $(STARTUP_ARGS)

# Sweep vs a sequential kubectl exec loop on a lab of real Envoys (a few minutes); writes
# bench/results.json. More sizes: make bench BENCH_ARGS="--pods 20,60,200 --repeat 1".
.PHONY: bench
bench: $(STAMP)
	$(RUN) $(BIN)/python bench/run.py $(BENCH_ARGS)
