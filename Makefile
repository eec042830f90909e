# Two commands: `make run` and `make test`. Only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
BIN    := $(VENV)/bin
# make run serves plain http on localhost: the development config (see config.py).
RUN_ENV := APP_ENV=$(or $(APP_ENV),development)

.PHONY: run test test-postgres migrate install install-dev clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

migrate: install  ## apply database migrations
	$(RUN_ENV) $(BIN)/flask db upgrade

run: migrate  ## serve on http://127.0.0.1:$(PORT) with an embedded SQLite database
	$(RUN_ENV) $(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: install-dev  ## the full suite (SQLite, or PostgreSQL when TEST_DATABASE_URL is set)
	$(BIN)/python -m pytest -c tests/pytest.ini tests

test-postgres: install-dev  ## the full suite on this machine's PostgreSQL
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m pytest -c tests/pytest.ini tests

clean:
	rm -rf $(VENV) instance/test.db .pytest_cache
