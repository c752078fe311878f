"""Gunicorn settings for the web service (``gunicorn -c config/gunicorn.conf.py``)."""

import os

bind = os.environ.get("RELAY_OPS_BIND", "0.0.0.0:8000")  # noqa: S104 - inside a container
workers = int(os.environ.get("RELAY_OPS_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("RELAY_OPS_WEB_THREADS", "4"))
wsgi_app = "relay_ops:create_app()"
accesslog = "-"
# Recycle workers now and then so a slow leak never takes the counter down.
max_requests = 5000
max_requests_jitter = 500
timeout = 30
