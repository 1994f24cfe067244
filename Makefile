# Two commands for a fresh machine; each creates the environment on first use.
#   make run   ARGS="trainer=erl episodes=20"   train with telemetry
#   make test                                   lint, type-check, test
#   make test-long                              the long tests (sweeps of many trials)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-long lint bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the local CPU build, not the registry's CUDA one.
	$(PY) -m pip install --quiet torch==2.13.0
	# stable-baselines3 (a benchmark anchor) without its dependencies: they would let pip
	# swap the pinned torch; the rest of what it needs is in the bench extra.
	$(PY) -m pip install --quiet --no-deps 'stable-baselines3>=2.3'
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	# The sweep tests start a PostgreSQL server of their own: Debian's binaries (initdb...).
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } || \
		echo "warning: could not install postgresql (apt-get install postgresql); its tests will skip"
	# The dashboard's browser tests drive Debian's chromium; the collector's tests start redis-server.
	command -v chromium >/dev/null && command -v redis-server >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium redis-server; } || \
		echo "warning: could not install chromium and redis-server (apt-get install chromium redis-server); their tests will skip"
	touch $(STAMP)

run: $(STAMP)
	$(PY) main.py train $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q --durations=15

# Long tests (a sweep of 180 trials...), not part of make test.
test-long: $(STAMP)
	command -v valgrind >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	$(PY) -m pytest -q -m long

# The README's dashboard pictures, written by the browser tests (make test writes them to /tmp).
screenshots: $(STAMP)
	SCREENSHOTS=docs $(PY) -m pytest -q tests/dashboard -k "browser"

bench: $(STAMP)
	$(PY) benchmarks/run.py $(ARGS)
	# telemetry.log against wandb.log (offline) and trackio.log (when trackio is installed).
	$(PY) benchmarks/compat_log.py
	# publish to the point on an open page, time to first chart of 1,000,000 points, server memory.
	$(PY) benchmarks/dashboard.py
	# eight producers through Redis Streams into the central logs, beside the local JSON Lines rate.
	$(PY) benchmarks/collector.py
	$(PY) benchmarks/collector.py --appendfsync always
	# the training process's instructions with the sidecar against the memory sink only (callgrind).
	command -v valgrind >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	$(PY) benchmarks/instructions.py --json benchmarks/instructions.json
	# ERL's first five generations (its first is its densest), memory only and the sidecar.
	$(PY) benchmarks/instructions.py --trainers erl --episodes erl=5 --kinds mem,side \
		--json benchmarks/instructions-erl5.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
