# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
DEV_SECRET := whsec_dev_only_not_for_production
PORT ?= 8000

DIST ?= dist

.PHONY: run dev dist test test-3.13 lint typecheck pytest docs bench bench-quick bench-durable bench-privacy loadtest chaos chaos-postgres redis-ha clean wrk

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev --group bench --group docs
	touch $(STAMP)

# run and dev serve the example: the package alone, not the test, bench and docs groups.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

run: $(RUN_STAMP)  ## serve examples/quickstart.py on 127.0.0.1:$(PORT) with a development secret
	@echo "Serving examples/quickstart.py on http://127.0.0.1:$(PORT)/ (development secret)."
	@echo "In another shell, send it a signed test event:"
	@echo "  VOICEHOOKS_SECRET=$(DEV_SECRET) $(BIN)/voicehooks send tool-calls --url http://127.0.0.1:$(PORT)/ --tool check_repair_status --args '{\"order_number\": \"WO-2291\"}'"
# exec: the server takes the shell's place, so stopping make by its PID stops the server too
	VOICEHOOKS_SECRET=$(DEV_SECRET) exec $(BIN)/voicehooks run examples/quickstart.py --port $(PORT)

dev: $(RUN_STAMP)  ## the same with reload and the inspector at http://127.0.0.1:$(PORT)/_voicehooks/
	@echo "In another shell: VOICEHOOKS_SECRET=$(DEV_SECRET) $(BIN)/voicehooks simulate examples/scenarios/quickstart.toml --url http://127.0.0.1:$(PORT)/"
	VOICEHOOKS_SECRET=$(DEV_SECRET) $(BIN)/voicehooks dev examples/quickstart.py --port $(PORT)

dist: $(STAMP)  ## the sdist and the wheel (built from the sdist) into $(DIST)/, checked by twine
	rm -rf $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .
	$(BIN)/twine check --strict $(DIST)/*

lint: $(STAMP)  ## ruff, and the import direction between the subpackages (import-linter)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy voicehooks tests examples benchmarks

# The suite in TEST_WORKERS processes (pytest-xdist): each has its own servers (Redis,
# PostgreSQL) and free ports, so they share nothing. 2 suits the 2-core CI machine.
TEST_WORKERS ?= 2

pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --cov --cov-report=term --cov-fail-under=95

docs: $(STAMP)  ## the docs site from docs/ and the docstrings into site/; any warning fails it
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint typecheck docs pytest  ## ruff, mypy --strict, the docs build, then pytest with branch coverage (gate 95 %)

# The other supported end: Python 3.13, from pyenv where the machine has it (these machines
# do), else from PATH. The suite without the tests that start servers (-m "not slow"): the
# whole suite runs on the default Python in `make test`.
PYTHON_313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13))
VENV_313 ?= .venv-3.13
STAMP_313 := $(VENV_313)/.installed-stamp

$(STAMP_313): pyproject.toml
	@test -n "$(PYTHON_313)" || { echo "no Python 3.13: install it (pyenv install 3.13) or set PYTHON_313"; exit 1; }
	test -x $(VENV_313)/bin/python || $(PYTHON_313) -m venv $(VENV_313)
	$(VENV_313)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	$(VENV_313)/bin/python -m pip install --quiet -e . --group dev --group bench
	touch $(STAMP_313)

test-3.13: $(STAMP_313)  ## the suite but its server tests on Python 3.13 (CI runs it before `make test`)
	$(VENV_313)/bin/python -m pytest -q -n $(TEST_WORKERS) -m "not slow" -p no:cacheprovider

bench: $(STAMP) $(STAMP_313) wrk  ## every level on Python 3.11, then on 3.13, then the targets side by side (~16 min); see benchmarks/README.md
	$(BIN)/python -m benchmarks --save benchmarks/last-results.json
	$(VENV_313)/bin/python -m benchmarks --save benchmarks/last-results-3.13.json --plot benchmarks/growth-3.13.png
	$(BIN)/python -m benchmarks.sidebyside benchmarks/last-results.json benchmarks/last-results-3.13.json

bench-quick: $(STAMP) wrk  ## the same, short: fewer repeats, 1 s HTTP runs, no memory level
	$(BIN)/python -m benchmarks --quick

wrk:  ## the HTTP load generator, from Debian's packages, when the machine lacks it
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

loadtest: $(STAMP)  ## 100,000 signed deliveries at concurrency 64 against `voicehooks run`, every answer checked (< 1 min; aborts at 10)
	$(BIN)/python -m benchmarks.loadtest

bench-durable: $(STAMP)  ## end-of-call-report ack latency in-process vs durable (Redis Streams, PostgreSQL), worker throughput (~2 min)
	$(BIN)/python -m benchmarks.durable

bench-privacy: $(STAMP)  ## voicehooks.privacy on its labelled corpus: precision and recall per kind, false positives, ms per KB (seconds)
	$(BIN)/python -m benchmarks.privacy

chaos: $(STAMP)  ## durable mode: 10,000 deliveries, a worker kill -9'ed every 2 s, Redis restarted; prints the table
	$(BIN)/python -m tests.helpers.chaos --deliveries 10000

redis-ha: $(STAMP)  ## Redis as production runs it: TLS, a 3-master cluster, a Sentinel failover under 2,000 reports (~1 min)
	REDIS_HA_DELIVERIES=2000 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/integration/test_redis_failover.py tests/state/test_connections.py tests/state/test_stores.py tests/work/test_queue.py

chaos-postgres: $(STAMP)  ## `make chaos` on PostgreSQL (queue and store), PostgreSQL restarted; prints the table
	$(BIN)/python -m tests.helpers.chaos --deliveries 10000 --backend postgres

clean:
	rm -rf $(VENV) $(VENV_313) .mypy_cache .pytest_cache .ruff_cache .coverage htmlcov dist build site
