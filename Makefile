# flinktrade — `make help` lists the targets. Set-up is idempotent and cached (.venv, .cache/jars).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-stamp
JARS_STAMP := .cache/jars/.stamp
CORE_STAMP := .cache/mypyc.stamp
PYC_STAMP := .cache/pyc.stamp
CDS_STAMP := .cache/cds.stamp
WEB_STAMP := web/node_modules/.installed-stamp
PY_SOURCES := $(shell find src -name '*.py' 2>/dev/null)
CHROMIUM := /usr/bin/chromium
DURATION ?=
CLUSTER ?=
FAULTS ?=
SOAK_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup setup-parts jars demo test test-cluster test-unit lint typecheck bench bench-full bench-lock soak lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install -q "uv==$(UV_VERSION)"
	$(UV) pip sync -q --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	@touch $@

# Bytecode, written ahead: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) Python
# never writes it at import, so every process (the CLI, the job's embedded interpreter, each
# test's subprocess) would compile every module it imports, every time. The venv's is written by
# `uv pip sync --compile-bytecode` above; the sources' here (a stale one is ignored, never wrong).
$(PYC_STAMP): $(STAMP) $(PY_SOURCES)
	$(PY) -m compileall -q src
	@mkdir -p $(@D) && touch $@

# The indicators and the model compiled by mypyc (src/flinktrade/_mypyc/, used only while it
# matches the sources it was built from and the modules they read, else the Python source runs:
# see flinktrade/accel.py). Any source change asks accel, which rebuilds only if one of those
# changed (a hash check, no-op otherwise): a hand-kept list here went stale once. After the
# bytecode: `compileall src` must not walk into the build's `_mypyc.new` while it is renamed.
$(CORE_STAMP): $(STAMP) $(PYC_STAMP) $(PY_SOURCES) $(wildcard src/flinktrade/*.c)
	$(PY) -c "from flinktrade import accel; raise SystemExit(accel.main(['build']))"
	@mkdir -p $(@D) && touch $@

$(JARS_STAMP): $(STAMP) jvm/pom.xml $(wildcard jvm/udf/src/io/flinktrade/udf/*.java)
	$(PY) -c "from flinktrade.infra.jvm import ensure_jars; ensure_jars()"
	@touch $@

# Class-data sharing archives for the broker's and the job's JVMs (src/flinktrade/infra/cds.py):
# each JVM started once, its loaded classes written at exit; later starts map them. ~30 s once.
$(CDS_STAMP): $(JARS_STAMP) $(PYC_STAMP) src/flinktrade/infra/cds.py
	$(PY) -c "from flinktrade.infra import cds; raise SystemExit(cds.main(['build']))"
	@mkdir -p $(@D) && touch $@

# The dashboard's JS (lightweight-charts), pinned by web/package-lock.json and served from
# web/node_modules: never fetched from a CDN at run time.
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# Debian's Chromium for the dashboard's browser test (Playwright drives it; no browser download).
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium

# Set-up's steps two at a time (a sub-make with -j2): on a fresh clone the compiled core (~40 s of
# mypyc and gcc) builds while the jars resolve and the class-data archives are made (~45 s). A job
# started meanwhile (the archives' run) imports the plain Python source: the core's build appears
# at once, by a rename, and only to imports after it.
SETUP_PARTS := $(STAMP) $(PYC_STAMP) $(CORE_STAMP) $(JARS_STAMP) $(CDS_STAMP) $(WEB_STAMP)
setup: ## create the venv, compile the indicators, resolve the JVM jars and archive their classes, install the dashboard's JS (cached)
	@$(MAKE) --no-print-directory -j2 setup-parts

setup-parts: $(SETUP_PARTS)
	@:

demo: setup ## run the whole system locally (DURATION=60 to stop by itself; CLUSTER=1: on a Flink session cluster; BROKER=alpaca; BRACKET=0: without the bracketed example)
	$(VENV)/bin/flinktrade demo $(if $(DURATION),--duration $(DURATION)) $(if $(CLUSTER),--flink-cluster) $(if $(BROKER),--broker $(BROKER)) $(if $(filter 0,$(BRACKET)),--no-bracket)

# Two pytest-xdist workers by default, each with its own broker; a test module stays in one worker,
# the timing-sensitive ones form one group run in turn, the longest first (tests/conftest.py,
# docs/reliability.md "Test time"). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: setup $(CHROMIUM) ## run the whole test suite (real Kafka broker, real Flink MiniCluster, Chromium)
	$(PY) -m pytest $(XDIST)

test-cluster: setup ## only the session-cluster tests (TaskManager and broker kills, savepoints; part of `make test`)
	$(PY) -m pytest tests/integration/cluster

test-unit: setup ## run the fast tests only
	$(PY) -m pytest tests/unit

lint: setup ## ruff
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: setup ## mypy --strict on src/
	$(VENV)/bin/mypy

# The peer contenders (Quix Streams, Bytewax, kafka-python) live in their own venv: quixstreams
# pins pydantic below flinktrade's pins. Only the bench targets need it; lock has no index URLs.
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp
$(PEERS_STAMP): bench/peers/requirements.lock | $(STAMP)
	@test -x $(PEERS_VENV)/bin/python || $(UV) venv -q --python $(PYTHON) $(PEERS_VENV)
	$(UV) pip sync -q --compile-bytecode --python $(PEERS_VENV)/bin/python bench/peers/requirements.lock
	@touch $@

bench-lock: ## re-pin bench/peers/requirements.lock (the peers' venv; hashes, no index URLs)
	$(UV) pip compile -q bench/peers/requirements.in --generate-hashes \
		--python-version 3.11 -o bench/peers/requirements.lock

bench: setup $(PEERS_STAMP) ## flinktrade vs peers (trades-1m catch-up + one latency rate), the per-partition watermark's wait, the backtest, the core, the bundled operator and the demo's start-up (JSON lines)
	$(PY) -m bench.run 2>bench.log || (tail -20 bench.log; exit 1)
	$(PY) -m bench.partition_wait 2>>bench.log || (tail -20 bench.log; exit 1)
	$(PY) -m bench.backtest 2>>bench.log || (tail -20 bench.log; exit 1)
	$(PY) -m bench.core 2>>bench.log || (tail -20 bench.log; exit 1)
	$(PY) -m bench.operator 2>>bench.log || (tail -20 bench.log; exit 1)
	$(PY) -m bench.startup 2>>bench.log || (tail -20 bench.log; exit 1)

bench-full: setup $(PEERS_STAMP) ## 5 repeats + latency sweep; rewrites docs/benchmarks.md
	$(PY) -m bench.run --full 2>bench.log || (tail -20 bench.log; exit 1)

# Not part of `make test` or CI: 10+ minutes of the whole machine. Logs in .cache/soak.log; the
# work directory (broker data, service logs) is kept when a criterion fails (its path is in the JSON).
soak: setup ## 10 min at 20k trades/s + 10k malformed, all services live; one JSON line (FAULTS=1: kills, Slack errors)
	$(PY) -m bench.soak $(if $(FAULTS),--faults) $(SOAK_ARGS) 2>.cache/soak.log || (tail -20 .cache/soak.log; exit 1)

lock: ## re-pin requirements.lock from pyproject.toml (hashes, no index URLs)
	$(UV) pip compile -q pyproject.toml --extra dev --generate-hashes \
		--python-version 3.11 -o requirements.lock

clean: ## remove the venv, caches and local state (stops nothing: run `flinktrade infra down` first)
	rm -rf $(VENV) .cache .flinktrade .pytest_cache .mypy_cache .ruff_cache web/node_modules
