# appflow's entry points. `make demo` and `make test` are the two commands the
# README opens with; both work on a fresh machine with Go and Python 3.11.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APPFLOW := $(BIN)/appflow
PYTEST_ARGS ?=

.PHONY: help tools install lint test unit integration demo demo-down bench screenshots chaos clean crds image image-push
REGISTRY ?= localhost:5000

help:
	@echo "make demo      start 3 sandbox clusters, sync repos-example/plain, print the status"
	@echo "make test      build tools and the image, install, lint, run the whole test suite"
	@echo "make tools     build helm, kustomize, kubectl and the sandbox control plane (cached)"
	@echo "make install   create $(VENV) and install appflow with its dev tools"
	@echo "make lint      ruff, mypy, import contracts (layers, no cycles), function length, hadolint"
	@echo "make bench     run the benchmarks in bench/"
	@echo "make chaos     the long chaos run: 150 syncs under seeded faults on a private sandbox"
	@echo "make screenshots  regenerate the dashboard screenshots in docs/screenshots/"
	@echo "make crds      regenerate the hub chart's CRDs from appflow/schemas"
	@echo "make image     build appflow's container image with buildah (tools/build-image.sh)"
	@echo "make image-push REGISTRY=host:port   push it (default localhost:5000)"

tools:
	bash tools/build-tools.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

lint: install
	$(BIN)/ruff check appflow tests $(wildcard bench)
	$(BIN)/ruff format --check appflow tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/function_length.py appflow/engine --max 80
	$(BIN)/hadolint Dockerfile

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: tools install lint image
	$(BIN)/pytest $(PYTEST_ARGS)

# The long form of tests/chaos (the normal suite runs a short one). CHAOS_SEED picks
# another sequence of faults; the figures land in chaos-report.json.
CHAOS_ITERATIONS ?= 150
CHAOS_SEED ?= 10
chaos: tools install
	APPFLOW_CHAOS_ITERATIONS=$(CHAOS_ITERATIONS) APPFLOW_CHAOS_SEED=$(CHAOS_SEED) \
	APPFLOW_CHAOS_REPORT=chaos-report.json \
	$(BIN)/pytest tests/chaos -p no:cacheprovider -s --timeout 3600 $(PYTEST_ARGS)

demo: tools install
	bash tools/demo.sh

demo-down: install
	$(APPFLOW) sandbox down

crds: install
	$(APPFLOW) hub crds --output-dir appflow/charts/appflow-hub/crds

image: tools
	bash tools/build-image.sh

image-push:
	bash tools/build-image.sh --push-only $(REGISTRY)

bench: tools install
	$(BIN)/python bench/sync_single.py

# The browser journey of the dashboard (tests/e2e/test_dashboard.py) saves the README's
# screenshots on its way; it starts its own sandbox clusters (Debian's chromium needed).
screenshots: tools install
	APPFLOW_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/e2e/test_dashboard.py -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
