"""The application as seen from inside a job, built once in the process that runs the jobs.

``relay-ops worker`` runs every job in its own process (no fork), so the app, its engines'
pools, and the job handlers with their senders (an SMTP connection kept open) are built once
and serve every job. Under a plain forking ``rq worker`` a job may run in a work horse forked
from the process that built them: database engines, pooled connections and sender sockets must
belong to the process that uses them, so on a new pid the engines' pools are reset
(SQLAlchemy's recipe for fork) and the handlers built again. Without a ``use()`` the app is
built from the configuration (``RELAY_OPS_*`` variables, ``RELAY_OPS_CONFIG_FILE``).
"""

from __future__ import annotations

import os

from flask import Flask

from relay_ops.outbox import JobHandler
from relay_ops.services.context import Ctx

_app: Flask | None = None
_pid: int | None = None
_handlers: tuple[int, Flask, dict[str, JobHandler]] | None = None


def use(app: Flask) -> None:
    """``relay-ops worker`` hands over its app before it starts working."""
    global _app, _pid
    _app, _pid = app, os.getpid()


def app() -> Flask:
    global _app, _pid
    if _app is None:
        from relay_ops import create_app

        _app = create_app()
    elif _pid != os.getpid():
        db = ctx_of(_app).db
        db.engine.dispose(close=False)
        db.read_engine.dispose(close=False)
    _pid = os.getpid()
    return _app


def ctx_of(application: Flask) -> Ctx:
    return application.extensions["relay_ops"]


def handlers() -> dict[str, JobHandler]:
    """The job handlers of this process's app, built once per process and app: their senders
    keep connections open from one job to the next."""
    global _handlers
    application = app()
    if _handlers is None or _handlers[:2] != (os.getpid(), application):
        from relay_ops import jobs

        _handlers = (os.getpid(), application,
                     jobs.handlers(ctx_of(application), application.config))
    return _handlers[2]
