# `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint format install browser services soak bench cluster clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run streamlit_app.py --server.port $(PORT)

test: $(STAMP) browser services lint
	$(PY) -m pytest

# The browser tests drive Debian's Chromium; Playwright never downloads a browser.
browser:
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# 100 mixed generations, 4 at once, inside a 512 MB cgroup (and the CLI in 256 MB); needs root.
soak: $(STAMP)
	$(PY) scripts/soak.py --limit-mb 512 --generations 100 --concurrency 4 --cli-limit-mb 256

bench: $(STAMP)
	$(PY) -m engine bench

# Redis and PostgreSQL for the scale-out tests and `make cluster` (Debian's packages).
services:
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| $(SUDO) apt-get install -y -q redis-server postgresql \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server postgresql)

# Redis, PostgreSQL, two Celery workers and the app on this machine; Ctrl-C stops them all.
cluster: $(STAMP) services
	$(PY) scripts/cluster.py --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
