# The two commands: `make run` starts the service, `make test` runs the whole suite: one pytest process per
# core, each running whole test files, with a service stack and databases of its own.
# `make test-fast` runs every test that starts no process of ours (the ML core, the store, the in-process
# API, results, the client against the in-process app, dashboard rendering, blobs on a local directory), one
# pytest process per core, each with its own databases; it needs only Postgres and Redis.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast install lint bench clean

# One pip command for both packages: the client owns the `fitexplain` command, the server adds its
# subcommands to it (entry-point group `fitexplain.commands`).
$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ./clients/python -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/fitexplain serve

test: install
	bash scripts/ensure_services.sh
	bash scripts/ensure_test_tools.sh
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest -n auto --dist loadfile

test-fast: install
	bash scripts/ensure_services.sh
	$(BIN)/pytest -n auto tests/ml tests/inprocess tests/results tests/client tests/dashboard \
		tests/test_no_history.py tests/test_import_cycles.py tests/test_layout.py tests/test_settings_table.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check api worker cli shared clients/python tests migrations
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/seed_requests.py

clean:
	rm -rf $(VENV) var .pytest_cache
