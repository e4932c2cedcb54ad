# Skyport: `make run` serves the app, `make test` runs every test (starting a local reference PDS).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help smoke run serve test install install-dev pds browser lint bench bench-scale worker migrate demo demo-stop

help:
	@echo "make demo   - a local Bluesky server with two demo accounts, written into .env for make run (Ctrl-C stops it)"
	@echo "make run    - set up .venv, install, migrate, serve on http://127.0.0.1:8000"
	@echo "make test   - set up everything the tests need (local PDS, Chromium) and run pytest"
	@echo "make serve  - serve the production way (gunicorn, WhiteNoise, DEBUG=false) on http://127.0.0.1:8000"
	@echo "make worker - run the background task worker (session keep-alive, scheduled posts) beside 'make run' or 'make serve'"
	@echo "make smoke  - build the wheel, install it outside the checkout, run the smoke suite in another project"
	@echo "make bench  - benchmarks against the local PDS; prints a table"
	@echo "make bench-scale - costs at 2,000 and 100,000 channels on PostgreSQL, side by side (about 10 minutes)"
	@echo "make lint   - ruff check, ruff format --check and the import rules (lint-imports; CI runs it first)"

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

# Production settings on this machine (`make serve`, `DEBUG=false make worker`): SECRET_KEY and
# INTEGRATIONS_ENCRYPTION_KEYS come from the environment or .env; failing that, from var/ (generated once, readable
# by this user only, git-ignored). var/encryption_key is the one `make run` uses too (config/localkeys.py), so the
# sessions it stored are read here. SITE_URL (the links in e-mails) defaults to the address gunicorn serves. A real
# deployment sets all three in .env (README: Deploying).
LOCAL_SECRETS = umask 077; mkdir -p var; \
  if [ -z "$${SECRET_KEY:-}" ] && ! grep -qs '^SECRET_KEY=' .env; then \
    [ -s var/secret_key ] || $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key; \
    export SECRET_KEY="$$(cat var/secret_key)"; \
  fi; \
  if [ -z "$${INTEGRATIONS_ENCRYPTION_KEYS:-}" ] && ! grep -qs '^INTEGRATIONS_ENCRYPTION_KEYS=' .env; then \
    [ -s var/encryption_key ] || \
      $(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > var/encryption_key; \
    export INTEGRATIONS_ENCRYPTION_KEYS="$$(cat var/encryption_key)"; \
    echo "Encryption key: var/encryption_key, this checkout's own (make run uses it too); a deployment sets INTEGRATIONS_ENCRYPTION_KEYS"; \
  fi; \
  if [ -z "$${SITE_URL:-}" ] && ! grep -qs '^SITE_URL=' .env; then \
    export SITE_URL="http://$${GUNICORN_BIND:-127.0.0.1:8000}"; \
  fi

# gunicorn + WhiteNoise with DEBUG=false on the embedded defaults (SQLite, the file cache in var/cache), over plain
# http on loopback: HTTPS redirect and Secure cookies are off unless the environment or .env says otherwise.
serve: install
	@$(LOCAL_SECRETS); \
	export DEBUG=false SECURE_SSL_REDIRECT=$${SECURE_SSL_REDIRECT:-false} \
	  SESSION_COOKIE_SECURE=$${SESSION_COOKIE_SECURE:-false} CSRF_COOKIE_SECURE=$${CSRF_COOKIE_SECURE:-false}; \
	$(PY) manage.py collectstatic --no-input --verbosity 0 && \
	$(PY) manage.py migrate --no-input && \
	echo "" && echo "Skyport (production settings) runs at http://$${GUNICORN_BIND:-127.0.0.1:8000}/  (background worker: DEBUG=false make worker)" && \
	exec $(VENV)/bin/gunicorn --config gunicorn.conf.py

# The background worker: enqueue the first keep-alive sweep and the first run that publishes due (scheduled) posts,
# then run the task worker. With DEBUG=false it uses the same settings and local keys as `make serve`. The system
# checks run once, with `migrate` (the other commands would print each warning again).
worker: install
	@case "$${DEBUG:-true}" in true|True|1|yes|on) ;; *) $(LOCAL_SECRETS);; esac; \
	export DEBUG=$${DEBUG:-true}; \
	$(PY) manage.py migrate --no-input && \
	$(PY) manage.py bluesky_keepalive --schedule --skip-checks && \
	$(PY) manage.py bluesky_publish_due --schedule --skip-checks && \
	exec $(PY) manage.py db_worker --skip-checks

# The reference PDS (Node 22 + @atproto/pds), cached under ~/.cache/skyport/, keyed by its lock file.
pds: install-dev
	@$(PY) -c "from tests.support.pds.server import ensure_installed; ensure_installed()"

# A local Bluesky server to try Skyport against (tests/support/pds/demo.py): the reference PDS and its PLC directory on
# 127.0.0.1:2583 and :2582 (DEMO_PDS_PORT, DEMO_PLC_PORT), two demo accounts with app passwords, and what the app
# needs written between marker lines into .env. It runs in the foreground: Ctrl-C, or `make demo-stop` from
# another terminal, stops it and takes its lines out of .env again.
demo: pds
	@$(PY) -m tests.support.pds.demo

demo-stop: install-dev
	@$(PY) -m tests.support.pds.demo --stop

# Debian's Chromium for the browser tests (Playwright drives it; no browser download), and axe-core for their
# accessibility audit (npm, cached under ~/.cache/skyport/ keyed by tests/support/axe/package-lock.json; no CDN).
browser: install-dev
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@$(PY) -c "from tests.support.axe import ensure_installed; ensure_installed()"

test: install-dev pds browser
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; rc=0; fi; exit $$rc

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

# The wheel, installed in a fresh virtualenv outside the checkout, inside tests/support/hostproject, against the
# local PDS.
smoke: install-dev pds
	bash tests/smoke/run.sh $(abspath $(PY))

bench: install-dev pds
	$(PY) -m bench

# PostgreSQL at BENCH_SCALE_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/): builds skyport_bench_small and
# skyport_bench_big once (reused while their script and the migrations are unchanged; BENCH_SCALE_ARGS=--rebuild
# builds them again), then measures every page, API list and background query on both.
bench-scale: install-dev
	$(PY) -m bench.scale $(BENCH_SCALE_ARGS)
