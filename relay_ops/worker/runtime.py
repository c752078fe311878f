"""The application as seen from inside a job, built in the process that runs the job.

RQ forks a work horse per job. Database engines and their pooled connections must belong to
the process that uses them: a horse must neither use nor close a connection it inherited. So a
job asks ``app()`` here, which gives it the app of the worker that forked it with its engines'
pools reset for this process (SQLAlchemy's recipe for fork), or builds the app from the
configuration (``RELAY_OPS_*`` variables, ``RELAY_OPS_CONFIG_FILE``) when the job runs under a
plain ``rq worker``.
"""

from __future__ import annotations

import os

from flask import Flask

from relay_ops.services.context import Ctx

_app: Flask | None = None
_pid: int | None = None


def use(app: Flask) -> None:
    """``relay-ops worker`` hands over its app before it starts forking."""
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
