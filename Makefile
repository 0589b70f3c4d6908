# The targets CI runs (.ci/run): lint, typecheck, bench-smoke, test.
# Also: demo, bench (full benchmark), soak (1,000 jobs under random kills).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test tools lint typecheck ci soak bench bench-smoke clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skillq demo

# The deployment tests validate docker-compose.yml with Debian's docker-compose
# (no engine needed); install it when missing and we may.
tools:
	@command -v docker-compose >/dev/null || { [ "$$(id -u)" = 0 ] && \
		(apt-get install -y -q docker-compose >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q docker-compose >/dev/null)); } || \
		echo "docker-compose is missing: install it (apt-get install docker-compose)"

test: $(STAMP) tools
	$(BIN)/pytest -q

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

ci: lint typecheck bench-smoke test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
