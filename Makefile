# The one task entry point: CI runs `make test`, exactly as the README says.
# Every target sets up what it needs itself (a virtualenv in .venv, server packages).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit integration e2e bench services browser node k8s-binaries clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: run sample tasks through a worker on the embedded SQLite backend
demo: $(STAMP)
	$(BIN)/shoal demo

## services: install the PostgreSQL and Redis server packages the tests start
services:
	scripts/install-services.sh

## browser: install Debian's Chromium, which the board's browser tests drive
browser:
	scripts/install-browser.sh

## node: install docker.io, containerd, runc, CNI plugins; debootstrap the images' base (cached)
node:
	scripts/install-node.sh
	scripts/base-image.sh >/dev/null

## k8s-binaries: build the control plane (etcd, kube-apiserver, kube-controller-manager), the
## node (kubelet, kube-scheduler, kube-proxy, crictl, pause), kubectl and helm once (cached)
k8s-binaries:
	scripts/k8s-binaries.sh --node >/dev/null

## test: lint, type-check, and run every test tier against real servers
test: $(STAMP) services browser node k8s-binaries lint
	@# A session that ends early (a test that calls os._exit) writes no report: fail then.
	rm -f $(VENV)/report.xml
	$(BIN)/pytest tests --junitxml=$(VENV)/report.xml
	test -s $(VENV)/report.xml

lint: $(STAMP)
	$(BIN)/ruff check runtime operator tests bench
	$(BIN)/ruff format --check runtime operator tests bench
	$(BIN)/mypy
	MYPYPATH=tests/plugin_backend:runtime $(BIN)/mypy --strict -p shoal_example_backend
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit

## bench: every benchmark, as JSON lines (bench/RESULTS.md quotes them, with date and machine)
bench: $(STAMP) services node k8s-binaries
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/sqlite_throughput.py --profile
	$(BIN)/python bench/postgres_throughput.py --profile
	$(BIN)/python bench/redis_throughput.py --profile
	$(BIN)/python bench/limits.py
	$(BIN)/python bench/wakeup_latency.py --rounds 3 --profile
	$(BIN)/python bench/operator_scaling.py
	$(BIN)/python bench/burst.py
	$(BIN)/python bench/probe_cost.py
	$(BIN)/python bench/sync_push.py

	$(BIN)/python bench/retention.py
	$(BIN)/python bench/board_pages.py
	$(BIN)/python bench/images.py
	$(BIN)/python bench/real_node.py
	$(BIN)/python bench/transactional_push.py --pushes 1000

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
