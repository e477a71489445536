# The two commands: `make run` starts the service, `make test` runs the whole suite: two pytest processes per
# core (most service, fault and cluster tests wait on the processes they started), each running whole test
# files, with a service stack and databases of its own.
# `make test-fast` runs every test that starts no process of ours (the ML core, the store, the in-process
# API, results, the client against the in-process app, dashboard rendering, blobs on a local directory), one
# pytest process per core, each with its own databases; it needs only Postgres and Redis. Tests in those
# folders that run a Python process of ours (marked `process`) run in `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# What each environment was installed from: an edit of either reinstalls (scripts/install.sh).
LOCKED := pyproject.toml clients/python/pyproject.toml uv.lock
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
TEST_PROCESSES ?= $(shell echo $$(( 2 * $$(nproc 2>/dev/null || echo 1) )))
export VENV PYTHON
# The service and the tests start many Python processes (the API, workers, pytest's, the stacks'): Python
# writes the bytecode of what they import, so the next one reads it instead of compiling thousands of
# modules again (12 s for a worker), even where the environment says not to write it.
run test test-fast test-cluster: export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test test-fast test-cluster install lint lock bench clean

# The runtime alone (no test, browser or lint tools), at the versions in uv.lock: the server and the client
# (which owns the `fitexplain` command; the server adds its subcommands through the entry-point group
# `fitexplain.commands`), both editable.
$(RUN_STAMP): $(LOCKED)
	bash scripts/install.sh run
	touch $@

# The runtime and the `test` dependency group (pytest, Playwright, moto, ruff, mypy, ...).
$(TEST_STAMP): $(LOCKED)
	bash scripts/install.sh test
	touch $@ $(RUN_STAMP)

install: $(TEST_STAMP)

run: $(RUN_STAMP)
	$(BIN)/fitexplain serve

# After an edit of the dependencies in a pyproject.toml: pin them anew in uv.lock, and export the lock as
# the requirements files scripts/install.sh gives pip when uv cannot be had.
lock:
	bash scripts/install.sh lock

test: $(TEST_STAMP)
	bash scripts/ensure_services.sh
	bash scripts/ensure_test_tools.sh
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	FITEXPLAIN_HYPOTHESIS_PROFILE=thorough $(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile

test-fast: $(TEST_STAMP)
	bash scripts/ensure_services.sh
	$(BIN)/pytest -n auto -m "not process" tests/ml tests/inprocess tests/results tests/client tests/dashboard \
		tests/test_no_history.py tests/test_import_cycles.py tests/test_layout.py tests/test_settings_table.py \
		tests/install/test_lock.py

# The cluster tier alone (also part of `make test`): the API and workers as machines that share nothing on
# disk, each its own Unix user (so it runs as root), talking through Postgres, Redis and an S3 server.
test-cluster: $(TEST_STAMP)
	bash scripts/ensure_services.sh
	$(BIN)/pytest tests/cluster

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check api worker cli shared clients/python tests migrations
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/seed_requests.py

clean:
	rm -rf $(VENV) .venv-uv var .pytest_cache
