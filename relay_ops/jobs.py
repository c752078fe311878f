"""Background work: the job handlers, and the in-process runner of the embedded default.

Jobs take ids, never objects or personal data, and are idempotent. They reach this module
through the outbox (``relay_ops.outbox``): a job row is written in the transaction that made
the work necessary and run after the commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

from relay_ops import outbox
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import Sender, build_sender
from relay_ops.services import delivery, parcels
from relay_ops.services.context import Ctx
from relay_ops.services.notify import SEND_JOB

log = logging.getLogger(__name__)


def senders_from(config: Mapping[str, Any]) -> delivery.SenderFactory:
    built: dict[Channel, Sender] = {}

    def sender_for(channel: Channel) -> Sender:
        if channel not in built:
            built[channel] = build_sender(channel, config)
        return built[channel]

    return sender_for


def handlers(ctx: Ctx, config: Mapping[str, Any]) -> dict[str, outbox.JobHandler]:
    sender_for = senders_from(config)

    def send_notification(payload: dict[str, Any]) -> None:
        delivery.deliver(ctx, int(payload["notification_id"]), sender_for)

    return {SEND_JOB: send_notification}


class InProcessRunner(threading.Thread):
    """Runs due jobs and the periodic sweeps inside the web process (the embedded default).

    Production runs the same handlers in RQ workers instead.
    """

    def __init__(self, ctx: Ctx, config: Mapping[str, Any], interval_s: float = 1.0,
                 sweep_every_s: float = 60.0) -> None:
        super().__init__(name="relay-ops-jobs", daemon=True)
        self.ctx, self.interval_s, self.sweep_every_s = ctx, interval_s, sweep_every_s
        self.run_jobs = partial(outbox.run_pending_jobs, ctx.db, handlers(ctx, config), ctx.now)
        self.stopping = threading.Event()

    def run(self) -> None:
        since_sweep = self.sweep_every_s
        while not self.stopping.wait(self.interval_s):
            since_sweep += self.interval_s
            try:
                self.run_jobs()
                if since_sweep >= self.sweep_every_s:
                    since_sweep = 0
                    parcels.expire_overdue(self.ctx)
            except Exception:  # the runner must outlive one bad round; the error is logged
                log.exception("background round failed; retrying in %ss", self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
