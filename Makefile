# Skyport: `make run` serves the app, `make test` runs every test (starting a local reference PDS).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help run test install install-dev pds browser lint bench worker migrate

help:
	@echo "make run    - set up .venv, install, migrate, serve on http://127.0.0.1:8000"
	@echo "make test   - set up everything the tests need (local PDS, Chromium) and run pytest"
	@echo "make worker - run the background task worker (session keep-alive) beside 'make run'"
	@echo "make bench  - benchmarks against the local PDS; prints a table"
	@echo "make lint   - ruff"

$(VENV)/.created:
	@py=$$(.ci/find-python) || exit 1; echo "Creating $(VENV) with $$py"; "$$py" -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: $(VENV)/.created requirements.txt
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --no-input

run: migrate
	@echo ""
	@echo "Skyport runs at http://127.0.0.1:8000/  (admin: http://127.0.0.1:8000/admin/)"
	@echo "No user yet? In another terminal: $(PY) manage.py createsuperuser"
	@echo "Background keep-alive worker: make worker"
	@echo ""
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver 127.0.0.1:8000

worker: migrate
	DEBUG=$${DEBUG:-true} $(PY) manage.py bluesky_keepalive --schedule
	DEBUG=$${DEBUG:-true} $(PY) manage.py db_worker

# The reference PDS (Node 22 + @atproto/pds), cached under ~/.cache/skyport/, keyed by its lock file.
pds: install-dev
	@$(PY) -c "from tests.pds.server import ensure_installed; ensure_installed()"

# Debian's Chromium for the browser tests (Playwright drives it; no browser download), and axe-core for their
# accessibility audit (npm, cached under ~/.cache/skyport/ keyed by tests/axe/package-lock.json; no CDN).
browser: install-dev
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@$(PY) -c "from tests.axe import ensure_installed; ensure_installed()"

test: install-dev pds browser
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install-dev pds
	$(PY) -m bench
