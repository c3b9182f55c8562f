# Pulseboard: `make demo` runs everything on http://127.0.0.1:8000, `make test` runs the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
SERVICES_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: demo test test-services lint bench clean

demo: $(VENV)/installed
	$(PY) manage.py demo

test: $(VENV)/installed
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite against PostgreSQL and channels_redis (both must be running on loopback).
test-services: $(VENV)/installed
	DATABASE_URL=$(SERVICES_DATABASE_URL) REDIS_URL=$(SERVICES_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

# ruff (lint, security rules, formatting) and the import contracts that keep the layers apart.
lint: $(VENV)/installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(VENV)/installed
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) staticfiles data/test-*.sqlite3

# Django 6.1 needs Python 3.12 or newer: use the first one found on PATH or in pyenv, or say none is there.
$(VENV)/installed: pyproject.toml
	@set -e; python=""; \
	for candidate in python3.14 python3.13 python3.12 python3 \
	    $$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if "$$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then python="$$candidate"; break; fi; \
	done; \
	if [ -z "$$python" ]; then \
	  echo "Pulseboard needs Python 3.12 or newer (Django 6.1), and none was found:" >&2; \
	  echo "tried python3.14, python3.13, python3.12, python3 and pyenv's versions. Install one and run make again." >&2; \
	  exit 1; \
	fi; \
	if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
	  echo "Creating $(VENV) with $$("$$python" --version)"; \
	  "$$python" -m venv --clear $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@
