# The README's commands. `make run` serves the portal; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
TEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: run test test-sqlite lint format bench migrate clean system-deps bench-deps screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(RUNTIME_STAMP) $@

migrate: $(RUNTIME_STAMP)
	$(PY) manage.py migrate --noinput

## Serve the portal with demo data: web, Celery worker and beat on http://127.0.0.1:8000
run: migrate
	$(PY) manage.py seed_demo
	$(PY) manage.py runstack

## Run the whole suite: on PostgreSQL and Redis when they answer on 127.0.0.1 (or as DATABASE_URL
## and REDIS_URL say; set them empty to force SQLite and the filesystem broker).
## Debian packages the tests use as peers: xmlsec1 (a second signature check), Chromium (browser
## tests), Apache httpd with mod_auth_mellon (a SAML SP of the interoperability matrix). Installed
## when running as root with apt-get; otherwise the tests that need them skip.
system-deps:
	@missing=""; \
	command -v xmlsec1 >/dev/null 2>&1 || missing="$$missing xmlsec1"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || missing="$$missing apache2"; \
	[ -e /usr/lib/apache2/modules/mod_auth_mellon.so ] || missing="$$missing libapache2-mod-auth-mellon"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "Not installed:$$missing; the tests that need them will be skipped (apt-get install$$missing)"; fi; \
	fi

test: $(DEV_STAMP) system-deps
	@set -e; \
	if [ -z "$${DATABASE_URL+set}" ] && $(PY) -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 1)' 2>/dev/null; then \
		export DATABASE_URL=postgres://postgres@127.0.0.1:5432/idp_portal; fi; \
	if [ -z "$${REDIS_URL+set}" ] && $(PY) -c 'import socket; socket.create_connection(("127.0.0.1", 6379), 1)' 2>/dev/null; then \
		export REDIS_URL=redis://127.0.0.1:6379/0; fi; \
	echo "Testing on database $${DATABASE_URL:-sqlite (embedded)}, broker $${REDIS_URL:-filesystem (embedded)}"; \
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-sqlite:
	DATABASE_URL= REDIS_URL= $(MAKE) test

## The console walk-through in Chromium, saving every page at 1280x800 and 390x844 into docs/screenshots/
screenshots:
	rm -f docs/screenshots/*.png
	SCREENSHOTS=1 $(MAKE) test TEST_WORKERS=0 PYTEST_ARGS="tests/e2e/test_console_walkthrough_browser.py -k every_console_page -q"

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	@# The import contract: layers, no app or module cycles, no foreign writes, no module over 600 lines.
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py

format: $(DEV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## Debian packages the benchmarks use: wrk (the HTTP load generator of bench/saml_sso.py) and
## xmlsec1 (its pysaml2 baseline). Installed when running as root with apt-get; otherwise named.
bench-deps:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v xmlsec1 >/dev/null 2>&1 || missing="$$missing xmlsec1"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "MISSING:$$missing; the figures that need them cannot be measured (apt-get install$$missing)"; fi; \
	fi

# Every script's output is kept in var/bench/; the summary at the end repeats each figure held to a goal.
bench: $(DEV_STAMP) bench-deps
	@set -o pipefail; mkdir -p var/bench; rm -f var/bench/*.log; \
	for script in bench/*.py; do \
		echo "== $$script"; $(PY) $$script 2>&1 | tee var/bench/$$(basename $$script .py).log || exit 1; \
	done; \
	echo "== Summary: every figure with a goal (var/bench/ keeps each script's output)"; \
	for log in var/bench/*.log; do \
		grep -E "PASS|MISS" $$log | sed "s|^|$$(basename $$log .log): |"; \
	done; \
	echo "== $$(cat var/bench/*.log | grep -c PASS) PASS, $$(cat var/bench/*.log | grep -c MISS) MISS, $$(cat var/bench/*.log | grep -ci skipped) skipped"

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
