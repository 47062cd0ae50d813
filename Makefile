# The two commands of the quick start. Each one sets up .venv on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench wrk clean

AUDIT := tests/audit/node_modules/.installed

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# graphql-http's audit of the GraphQL-over-HTTP spec, run by the test suite (pinned).
$(AUDIT): tests/audit/package.json tests/audit/package-lock.json
	npm ci --prefix tests/audit --no-audit --no-fund --loglevel=error
	touch $(AUDIT)

demo: $(STAMP)
	$(BIN)/loyalty-gateway demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(AUDIT) wrk
	$(BIN)/pytest

# The load generator of the bench (and of its smoke test), from Debian's packages.
wrk:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
	  || (sudo apt-get update -qq && sudo apt-get install -y -qq wrk)

bench: $(STAMP) wrk
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
