# redkeep developer commands. `make serve` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EMULATOR_DIR := .tools/upstash
EMULATOR := $(EMULATOR_DIR)/node_modules/@humanwhocodes/upstash-redis-server/package.json
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: serve test test-chaos test-browser test-stress lint typecheck pytest pytest-lowest reliability bench bench-peers \
	redis-server emulator browser install clean docs screenshots

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The lowest redis-py that pyproject.toml allows, in a second venv that reuses every package of
# the main one (a .pth file puts its site-packages after its own): only redis-py is installed.
REDIS_PY_LOWEST := $(shell sed -n 's/.*"redis\[hiredis\]>=\([0-9.]*\),.*/\1/p' pyproject.toml)
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml $(BIN)/.installed
	rm -rf $(LOWEST)
	$(BIN)/python -m venv --without-pip $(LOWEST)
	main=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	own=$$($(LOWEST)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	echo "import site; site.addsitedir('$$main')" > $$own/zz_redkeep_main_venv.pth; \
	$(BIN)/python -m pip install -q --no-deps --target $$own 'redis==$(REDIS_PY_LOWEST)'
	test "$$($(LOWEST)/bin/python -c 'import redis; print(redis.__version__)')" = "$(REDIS_PY_LOWEST)"
	touch $@

# Tests start their own private redis-server processes, and run the README's curl + jq lines;
# install what is missing.
redis-server:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
		&& command -v curl >/dev/null && command -v jq >/dev/null || { \
		echo "installing redis-server, curl and jq with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server redis-tools curl jq; }

# Debian's Chromium for the dashboard's browser tests (Playwright drives it by its path; it never
# downloads a browser of its own). The tests skip, saying why, only where it cannot be installed.
browser:
	@command -v chromium >/dev/null || { \
		echo "installing chromium with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium fonts-dejavu-core \
		|| echo "chromium could not be installed: the browser tests will be skipped"; }

# The Upstash REST emulator (npm), used by the Upstash transport tests.
emulator: $(EMULATOR)
$(EMULATOR):
	@command -v npm >/dev/null || { \
		echo "installing nodejs/npm with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm; }
	mkdir -p $(EMULATOR_DIR)
	npm install --silent --no-audit --no-fund --prefix $(EMULATOR_DIR) @humanwhocodes/upstash-redis-server@1.0.0

serve: install
	$(BIN)/redkeep serve --host $(HOST) --port $(PORT)

# Regenerate the generated docs (docs/configuration.md from Settings and the CLI's options).
docs: install
	$(BIN)/python -m redkeep.docs_gen

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# The chaos scenarios (tests/reliability: killed workers and servers, failovers, lost replies,
# hangs; small size) run in their own target, `make test-chaos`; CI (.ci/run) runs both.
# Two pytest-xdist workers, one test file each at a time (PYTEST_WORKERS=0: one process).
PYTEST_WORKERS ?= 2
pytest: install redis-server emulator browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --ignore=tests/reliability \
		--ignore=tests/web/ui/test_browser.py $(PYTEST_ARGS)

# Retake the dashboard screenshots shown in docs/dashboard.md (docs/img/*.png).
screenshots: install redis-server browser
	REDKEEP_SCREENSHOTS=1 $(BIN)/pytest tests/web/ui/test_browser.py -k screenshots

# The client and queue contract suites (and the redis-py surface check) on the lowest redis-py.
LOWEST_SUITES := tests/redis/test_contract.py tests/queue/test_contract.py \
	tests/redis/test_redis_py_surface.py
pytest-lowest: $(LOWEST)/.installed redis-server emulator
	$(LOWEST)/bin/python -m pytest -p no:cacheprovider -q $(LOWEST_SUITES)

test: lint typecheck pytest pytest-lowest

# The dashboard's browser tests (headless Chromium), run by CI after `make test`.
test-browser: install redis-server browser
	$(BIN)/pytest tests/web/ui/test_browser.py $(PYTEST_ARGS)

# The fault scenarios of tests/reliability at their small size (make reliability: full size).
test-chaos: install redis-server
	$(BIN)/pytest tests/reliability $(PYTEST_ARGS)

# The timing-prone part of the suite under CPU load (STRESS_BURNERS busy-loop processes),
# STRESS_RUNS times; see docs/testing.md. Not part of `make test`.
STRESS_RUNS ?= 2
STRESS_BURNERS ?= 2
STRESS_TESTS ?= tests/queue tests/redis
test-stress: install redis-server emulator
	$(BIN)/python -m tests.support.stress --runs $(STRESS_RUNS) --burners $(STRESS_BURNERS) \
		-- $(STRESS_TESTS) $(PYTEST_ARGS)

# Full-size reliability scenarios; the report (docs/reliability.md) is written even when one fails.
reliability: install redis-server
	rm -rf tmp/reliability/full
	status=0; REDKEEP_RELIABILITY=full $(BIN)/pytest tests/reliability -v || status=$$?; \
	$(BIN)/python -m tests.reliability.report --mode full && exit $$status

bench: install
	$(BIN)/python bench/serialization_bench.py
	$(BIN)/python bench/resp_bench.py
	$(BIN)/python bench/cache_bench.py
	$(BIN)/python bench/sync_bench.py
	$(BIN)/python bench/tiered_bench.py
	$(BIN)/python bench/replicas_bench.py
	$(BIN)/python bench/events_bench.py
	$(BIN)/python bench/otel_bench.py
	$(BIN)/python bench/outbox_bench.py

# redkeep measured in the same run as its peers (queue and cache), with the shared harness in
# ../shared/bench. Its venv keeps redis-py 5.3.1: redkeep goes in with --no-deps.
BENCH_HOME ?= /tmp/redkeep-peer-bench
HARNESS ?= ../shared/bench
bench-peers:
	test -x $(BENCH_HOME)/.venv/bin/python || BENCH_HOME=$(BENCH_HOME) $(HARNESS)/setup.sh
	$(BENCH_HOME)/.venv/bin/pip install -q --no-deps -e .
	$(BENCH_HOME)/.venv/bin/pip install -q 'orjson>=3.9' 'pydantic-settings>=2.2' 'httpx>=0.27' \
		'typer>=0.12' 'rich>=13.7' 'prometheus-client>=0.20' 'cronsim>=2.6' 'tzdata>=2024.1' \
		'redis==5.3.1'
	BENCH_HOME=$(BENCH_HOME) BENCH_QUEUE_REPEATS=2 BENCH_EXTRA_PEERS=bench/peers \
	BENCH_EXTRA_PYTHONPATH=src:bench \
	BENCH_EXTRA_CACHE=raw,redkeep_cache_peer:RedkeepRedisCache,redkeep_cache_peer:RedkeepRedisCacheRedisPy,redkeep_cache_peer:RedkeepFallbackCache,raw,redkeep_cache_peer:RedkeepMemoryCache \
	$(HARNESS)/run_peers.sh

clean:
	rm -rf $(VENV) $(LOWEST) .tools .mypy_cache .ruff_cache .pytest_cache
