# TrueUp: `make run` (try it) and `make test` (the whole suite on a throwaway PostgreSQL).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
SANDBOX_PORT ?= 8001
WEB_PORT ?= 8000
SANDBOX := http://127.0.0.1:$(SANDBOX_PORT)

# `make run` talks to the built-in sandboxes instead of the real KnowBe4 and PSAs.
export DEBUG ?= 1
export KNOWBE4_GRAPHQL_URL_US ?= $(SANDBOX)/knowbe4/us/graphql
export KNOWBE4_GRAPHQL_URL_EU ?= $(SANDBOX)/knowbe4/eu/graphql
export KNOWBE4_GRAPHQL_URL_CA ?= $(SANDBOX)/knowbe4/ca/graphql
export KNOWBE4_GRAPHQL_URL_UK ?= $(SANDBOX)/knowbe4/uk/graphql
export KNOWBE4_GRAPHQL_URL_DE ?= $(SANDBOX)/knowbe4/de/graphql
export KNOWBE4_REPORTING_URL_US ?= $(SANDBOX)/knowbe4-api/us
export KNOWBE4_REPORTING_URL_EU ?= $(SANDBOX)/knowbe4-api/eu
export KNOWBE4_REPORTING_URL_CA ?= $(SANDBOX)/knowbe4-api/ca
export KNOWBE4_REPORTING_URL_UK ?= $(SANDBOX)/knowbe4-api/uk
export KNOWBE4_REPORTING_URL_DE ?= $(SANDBOX)/knowbe4-api/de
export SANDBOX_PORT WEB_PORT

.PHONY: install run test lint format clean

# uv is the venv's last piece: a venv cut off while it was made is made again.
$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PY) --quiet
	touch $@

# One rule copies every front-end library; its target is the last file written.
static/vendor/htmx.min.js: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map static/vendor/
	cp node_modules/chart.js/LICENSE.md static/vendor/chart.LICENSE
	cp node_modules/htmx.org/LICENSE static/vendor/htmx.LICENSE
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/

install: $(VENV)/.synced static/vendor/htmx.min.js

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo --psa "$$($(PY) -m sandboxes.demo connectwise $(SANDBOX))"
	@printf '\n  TrueUp        http://127.0.0.1:$(WEB_PORT)\n'
	@$(PY) -c "from sandboxes.data import DEMO_PARTNER_KEY as k; print(f'  KnowBe4 key   {k}   (region US)\n  Sandboxes     $(SANDBOX)\n\n  Ctrl-C stops the web server, the worker and the sandboxes.\n')"
	$(VENV)/bin/honcho start -f Procfile.dev

test: install
	scripts/ensure-chromium.sh
	scripts/with-postgres.sh $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules static/vendor var test-artifacts
