# Two commands: `make run` and `make test`. Only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# make run serves plain http on localhost: the development config (see config.py).
RUN_ENV := APP_ENV=$(or $(APP_ENV),development)
# The port as the app sees it (config.PORT: the environment, then .env, then 8000), so
# that make run serves where the app's email links point.
RUN_PORT = $$($(BIN)/python -c 'import config; print(config.PORT)')

PYTEST := $(BIN)/python -m pytest -c tests/pytest.ini

.PHONY: bench bench-hash docs lint lock run test test-fast test-node test-fuzz fuzz test-integration test-browser e2e test-postgres migrate install install-dev clean

# The venv's own pip installs the locks: everything that lands in it is checked against a
# hash in requirements*.txt (the dev lock then pins pip itself).
$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# requirements*.in -> the locks, against PyPI alone whatever this machine's pip.conf adds
# (local mirrors, find-links), so that the hashes are the ones every machine sees. Existing
# pins are kept; `make lock LOCK_FLAGS=--upgrade` (or --upgrade-package NAME) moves them.
# Options: [tool.pip-tools] in pyproject.toml.
lock: install-dev  ## re-compile requirements.txt and requirements-dev.txt from the .in files
	env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
		CUSTOM_COMPILE_COMMAND="make lock" sh -c '\
		$(BIN)/pip-compile $(LOCK_FLAGS) --output-file requirements.txt requirements.in && \
		$(BIN)/pip-compile $(LOCK_FLAGS) --output-file requirements-dev.txt requirements-dev.in'

# ruff (pyproject.toml): the lint rules, and the formatter's verdict on the files it owns.
lint: install-dev  ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrate: install  ## apply database migrations
	$(RUN_ENV) $(BIN)/flask db upgrade

# flask reads .flaskenv (gunicorn never does): `.venv/bin/flask users list` in a new shell
# then finds the development config make run used. Written when missing, never replaced;
# a .env or the environment still wins over it.
.flaskenv:
	@printf '%s\n' '# Written by make run: the flask command uses the development config, as make run does.' \
		'# Delete this file, or set APP_ENV in .env or the environment, to change that.' \
		'APP_ENV=development' > $@
	@echo "make run: wrote .flaskenv (APP_ENV=development), so .venv/bin/flask ... in any shell uses the development config"

run: .flaskenv migrate  ## serve on http://127.0.0.1:$PORT (PORT from the environment or .env, default 8000) with an embedded SQLite database
	$(RUN_ENV) $(BIN)/flask run --host 127.0.0.1 --port $(RUN_PORT)

test: lint test-fast test-typescript test-node test-fuzz test-integration test-browser  ## lint, then the full suite (SQLite, or PostgreSQL when TEST_DATABASE_URL is set)

test-fast: install-dev  ## the test suite without the fuzz run, the integration and browser suites
	$(PYTEST) tests --ignore=tests/fuzz --ignore=tests/integration --ignore=tests/browser \
		--ignore=tests/typescript --ignore=tests/resource_server/test_node_verifier.py

# A TypeScript client generated from /openapi.json by openapi-typescript, and tsc on a
# sample that uses it (tests/typescript): a breaking change to the document fails here.
# npm installs the packages pinned in tests/typescript/package-lock.json; without npm the
# test is skipped, or fails when CI is set (.ci/run installs npm).
test-typescript: install-dev  ## the API document as a TypeScript client sees it (needs node and npm)
	if command -v npm >/dev/null; then cd tests/typescript && npm ci --no-audit --no-fund --loglevel=error; fi
	$(PYTEST) tests/typescript

# Node's jose verifies our tokens against the JWKS of gunicorn (examples/resource_server_node,
# jose pinned in its package-lock.json, installed by npm ci); skipped without npm, failed
# for it when CI is set.
test-node: install-dev  ## a second verifier of our tokens, in Node (needs node and npm)
	if command -v npm >/dev/null; then cd examples/resource_server_node && npm ci --no-audit --no-fund --loglevel=error; fi
	$(PYTEST) tests/resource_server/test_node_verifier.py

# Schemathesis against the app under gunicorn on its own database (tests/fuzz),
# fixed seed (FUZZ_SEED), at most FUZZ_MAX_EXAMPLES generated cases per operation.
test-fuzz: install-dev  ## the bounded fuzz run (25 examples per operation)
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-25} $(PYTEST) tests/fuzz

# The deployed stack on 127.0.0.1 (tests/integration): a private PostgreSQL cluster,
# redis-server, two gunicorn instances, nginx. Skipped when a binary is missing, failed
# for it when CI is set (.ci/run installs them).
test-integration: install-dev  ## gunicorn + nginx + PostgreSQL + Redis, for real
	$(PYTEST) tests/integration

# The demo SPA in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
# against gunicorn (tests/browser). Skipped without Chromium, failed for it when CI is
# set (.ci/run installs it); make never installs system packages.
test-browser: install-dev  ## end-to-end browser tests (screenshots in instance/browser-artifacts/)
	$(PYTEST) tests/browser

e2e: test-browser

# A new seed each time (printed; FUZZ_SEED=<it> repeats the run), so that sessions
# search further instead of replaying make test's fixed one.
fuzz: install-dev  ## a longer fuzz session (1000 examples per operation), report printed live
	FUZZ_SEED=$${FUZZ_SEED:-$$($(BIN)/python -c 'import secrets; print(secrets.randbelow(2**31))')} \
		FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-1000} $(PYTEST) -s tests/fuzz

test-postgres: install-dev  ## the full suite on this machine's PostgreSQL
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
		$(MAKE) test

# Not part of make test: minutes of load on this machine's PostgreSQL (database "bench",
# re-created). BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS, ...: see bench/settings.py.
# SOAK=1: the mixed workload for SOAK_SECONDS (300), worker RSS sampled over time.
# The other investigations: python -m bench --help.
bench: install-dev  ## auth_service against the floor of its stack (bench/results/latest.md)
	SOAK=$(SOAK) $(BIN)/python -m bench run

# How argon2id scales over this machine's cores, per implementation: the assumption behind
# the login floor (bench/results/hash_scaling.md). BENCH_HASH_SECONDS, BENCH_ROUNDS.
bench-hash: install-dev  ## argon2id: one hash against one per core, per implementation
	$(BIN)/python -m bench hash

# docs/configuration.md lists config.py's settings, docs/api.md the error codes of
# auth_service/error_codes.py; a test fails when either is stale.
docs: | $(BIN)/python  ## regenerate docs/configuration.md and docs/api.md's error codes
	$(BIN)/python docs/generate_configuration.py
	$(BIN)/python docs/generate_error_codes.py

clean:
	rm -rf $(VENV) instance/test.db .pytest_cache
