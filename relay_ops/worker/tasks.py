"""The functions RQ workers run. They take ids, use what their process built once
(``runtime``), and call the same handlers and sweeps as the embedded runner."""

from __future__ import annotations

import logging

from rq import get_current_job

from relay_ops import jobs, outbox
from relay_ops.worker import relay, runtime
from relay_ops.worker.config import JobsConfig

log = logging.getLogger(__name__)


def run_outbox_job(message_id: int) -> str:
    """Run outbox row ``message_id``'s handler once; a second run of a done row is a no-op.

    A failure is recorded on the row and raised, so RQ retries it with backoff (``Retry``).
    On the last attempt the row and what it stands for (the notification) are marked failed.
    Permanent failures never reach here as exceptions: the handler records them and returns.
    """
    app = runtime.app()
    ctx = runtime.ctx_of(app)
    claimed = outbox.claim(ctx.db, message_id)
    if claimed is None:
        return "already done"
    name, payload = claimed
    try:
        outbox.run_handler(runtime.handlers(), name, payload)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        final = not _retries_left()
        outbox.record_failure(ctx.db, message_id, error)
        if final:
            relay.record_final_failure(ctx, message_id, error)
        raise
    outbox.mark_done(ctx.db, message_id, ctx.now())
    return "done"


def run_sweep(name: str) -> int:
    app = runtime.app()
    ctx = runtime.ctx_of(app)
    if name == "outbox-redispatch":
        job = get_current_job()
        assert job is not None
        return sum(relay.redispatch(ctx, job.connection, JobsConfig.from_config(app.config))
                   .values())
    return jobs.run_sweep(ctx, app.config, name)


def _retries_left() -> int:
    job = get_current_job()
    return (job.retries_left or 0) if job is not None else 0
