"""Gunicorn settings for serving Skyport in production (`make serve`, or `gunicorn -c gunicorn.conf.py`).

Every value can be set from the environment or the `.env` beside this file (the environment wins, as in Django's
settings); command-line options override this file.

- GUNICORN_BIND: where to listen (default 127.0.0.1:8000; behind a proxy on the same host keep it on loopback).
- WEB_CONCURRENCY: worker processes (default 2; about 2-4 per core). The option cache and throttle counters are
  shared through CACHE_URL, so any number of workers (and machines) see the same values.
- FORWARDED_ALLOW_IPS: the proxies whose X-Forwarded-Proto gunicorn believes (default 127.0.0.1,::1, i.e. a proxy
  on the same host). Set it to the proxy's address when the proxy runs
  elsewhere; never "*" when clients can reach gunicorn directly. Django's SECURE_PROXY_SSL_HEADER is the other half.
- GUNICORN_CONTROL_SOCKET: a path to enable gunicorn's control socket (`gunicornc`); off by default, so that
  several instances on one machine do not fight over the default path.
"""

import os
from pathlib import Path

import environ

environ.Env.read_env(Path(__file__).resolve().parent / ".env")  # optional; fills only what the environment lacks

wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # PDS calls give up after INTEGRATIONS_HTTP_TIMEOUT (10 s)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"  # stdout: the process manager (systemd, a container runtime) collects it
errorlog = "-"
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
