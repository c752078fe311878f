"""Gunicorn settings for the web service (``gunicorn -c config/gunicorn.conf.py``)."""

import os
import tempfile

bind = os.environ.get("RELAY_OPS_BIND", "0.0.0.0:8000")  # noqa: S104 - inside a container
workers = int(os.environ.get("RELAY_OPS_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("RELAY_OPS_WEB_THREADS", "4"))
wsgi_app = "relay_ops:create_app()"
accesslog = "-"
# gunicorn's own line, then the request's duration and the id its log lines carry
# (relay_ops/logs.py): an access line leads to the application's lines of the same request.
access_log_format = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s '
                     'request=%({x-request-id}o)s')
# Recycle workers now and then so a slow leak never takes the counter down.
max_requests = int(os.environ.get("RELAY_OPS_WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
timeout = 30

# The workers' Prometheus values, one file each, summed by /metrics (relay_ops/metrics.py).
# Set here, in the master, before any worker imports prometheus_client: a fresh directory per
# start unless the deployment names one (emptied as the master starts: on_starting).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="relayops-metrics-"))


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook
    from relay_ops import metrics

    metrics.forget_previous_run()


# The embedded default (RELAY_OPS_JOBS_IN_PROCESS=true): each web worker starts a job runner and
# one of them, holding a lock in the database, runs the jobs and sweeps (relay_ops.jobs). With
# RQ, nothing starts here: `relay-ops scheduler` and `relay-ops worker` do the work.


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook
    from relay_ops import heap, jobs

    jobs.start_in_web(worker.wsgi)
    # The app and its runner live as long as the worker: out of the collector's scans.
    heap.freeze_startup_objects()


def worker_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook
    from relay_ops import jobs

    app = getattr(worker, "wsgi", None)
    if app is not None:
        jobs.stop_in_web(app)


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook
    from relay_ops import metrics

    metrics.worker_exited(worker.pid)
