"""Throttling guesses: too many failures for one key in a window refuses further tries, or
(``Backoff``) each failure past a few makes the key wait longer before its next try.

Failures are rows in the database, so every web worker and process sees the same count, and
the count survives a restart. Rows older than the longest window can be deleted at any time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from relay_ops.db.direct import Prebuilt, split
from relay_ops.db.loaders import SITES
from relay_ops.db.models import FailedAttempt, PickupCredential, Site
from relay_ops.domain.errors import CodeNeedsMore, TooManyAttempts
from relay_ops.services.context import Ctx


@dataclass(frozen=True)
class Limit:
    scope: str
    attempts: int
    window: timedelta
    advice: str


# Wrong code-only guesses at a shop counter, keyed by site id: they bound how often a code
# alone is checked there (code_only_allowed below, docs/decisions/0004).
CODE_ONLY_GUESSES = "pickup-code"


@dataclass(frozen=True)
class Backoff:
    """``free`` failures in ``window`` cost nothing; each one after that doubles the wait
    before the key may try again, from ``first_delay`` up to ``max_delay``."""

    scope: str
    free: int
    first_delay: timedelta
    max_delay: timedelta
    window: timedelta
    advice: str

    def delay_after(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        # Capping the exponent first keeps a huge failure count from overflowing timedelta.
        doublings = min(failures - self.free, 30)
        return min(self.first_delay * 2**doublings, self.max_delay)


# Keyed by username AND client address: a guesser slows down only their own tries at that
# username, never the owner signing in from elsewhere. At most ~100 guesses a day per address
# (5 free, then waits doubling from 1 s to 15 min); a success clears the key.
SIGN_IN = Backoff("sign-in", 5, timedelta(seconds=1), timedelta(minutes=15),
                  timedelta(hours=24), "wait before trying again")


def check(session: Session, limit: Limit, key: str, now: datetime) -> None:
    recent = session.scalar(
        select(func.count()).where(
            FailedAttempt.scope == limit.scope, FailedAttempt.key == key,
            FailedAttempt.at > now - limit.window,
        )
    )
    if (recent or 0) >= limit.attempts:
        raise TooManyAttempts(f"too many failed attempts: {limit.advice}",
                              retry_after_s=int(limit.window.total_seconds()))


def take(session: Session, limit: Limit, key: str, now: datetime) -> None:
    """A rate limit on requests, not on failures: each try counts (kept as an attempt row),
    and past ``limit.attempts`` in ``limit.window`` the key is refused (429) until its
    oldest counted try leaves the window, which ``Retry-After`` says. Two tries at the same
    moment may both pass the last free place (no lock): a bound, not an exact count."""
    recent, oldest = session.execute(
        select(func.count(), func.min(FailedAttempt.at)).where(
            FailedAttempt.scope == limit.scope, FailedAttempt.key == key,
            FailedAttempt.at > now - limit.window,
        )
    ).one()
    if (recent or 0) >= limit.attempts and oldest is not None:
        wait = max(1, math.ceil((oldest + limit.window - now).total_seconds()))
        raise TooManyAttempts(f"too many requests: {limit.advice} ({wait} s)",
                              retry_after_s=wait)
    session.add(FailedAttempt(scope=limit.scope, key=key[:120], at=now))


def check_backoff(session: Session, backoff: Backoff, key: str, now: datetime) -> None:
    """Refuse the try (429, with the seconds left) while the key's last failure is more
    recent than the delay its failures earned."""
    failures, last = session.execute(
        select(func.count(), func.max(FailedAttempt.at)).where(
            FailedAttempt.scope == backoff.scope, FailedAttempt.key == key,
            FailedAttempt.at > now - backoff.window,
        )
    ).one()
    if not failures or last is None:
        return
    free_at = last + backoff.delay_after(int(failures))
    if now < free_at:
        wait = max(1, math.ceil((free_at - now).total_seconds()))
        raise TooManyAttempts(f"too many failed attempts: {backoff.advice} ({wait} s)",
                              retry_after_s=wait)


def record_failure(
    session: Session, limit: Limit | Backoff | str, key: str, now: datetime
) -> None:
    scope = limit if isinstance(limit, str) else limit.scope
    session.add(FailedAttempt(scope=scope, key=key, at=now))


def clear(session: Session, limit: Limit | Backoff, key: str) -> None:
    """A success: the key's past failures no longer count against it."""
    session.execute(
        delete(FailedAttempt).where(FailedAttempt.scope == limit.scope, FailedAttempt.key == key)
    )


def forget_older_than(session: Session, before: datetime) -> int:
    result = session.execute(delete(FailedAttempt).where(FailedAttempt.at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- a code alone at a counter


def code_only_allowed(ctx: Ctx, session: Session, site: Site) -> None:
    """Refuse a code alone (:class:`CodeNeedsMore`) once a live code here has met
    PICKUP_CODE_ONLY_MISSES wrong code-alone guesses since it was issued: the claim must then
    also name the parcel (tracking number or recipient), whose own wrong tries lock it after
    5. Decided before the code is read, so the refusal says nothing about the code
    (docs/decisions/0004)."""
    _one_code_guess_at_a_time(session, site)
    [(misses,)] = _MISSES_SINCE_OLDEST_LIVE_CODE.rows(session, {"site_id": site.id,
                                                                "key": str(site.id)})
    if (misses or 0) >= ctx.settings.pickup_code_only_misses:
        raise CodeNeedsMore(
            "a wrong code was tried here: give the code with the tracking number or the "
            "recipient's name"
        )


# One statement, one snapshot: a miss committed after the last live code was spent is never
# set against a code that the same snapshot still sees live (two pickups racing). Built and
# compiled once, run on the driver's cursor (db/direct.py).
_MISSES_SINCE_OLDEST_LIVE_CODE = Prebuilt(lambda: select(func.count()).where(
    FailedAttempt.scope == CODE_ONLY_GUESSES,
    FailedAttempt.key == bindparam("key"),
    FailedAttempt.at >= (
        select(func.min(PickupCredential.created_at))
        .where(PickupCredential.site_id == bindparam("site_id"),
               PickupCredential.used_at.is_(None), PickupCredential.revoked_at.is_(None))
        .scalar_subquery()
    ),
))
# PostgreSQL advisory lock space of the code-alone guesses (the site id is the other key).
CODE_GUESS_LOCK_SPACE = 4004


# Built once: the site row, and the lock taken as the row is read.
_SITE_WITH_GUESS_LOCK = Prebuilt(lambda: select(
    *SITES.columns, func.pg_advisory_xact_lock(CODE_GUESS_LOCK_SPACE, Site.id)
).where(Site.id == bindparam("site_id")))
# session.info key: the sites whose code-guess lock this transaction holds already.
GUESS_LOCKED_SITES = "relay_ops.code_guess_locked_sites"


def _one_code_guess_at_a_time(session: Session, site: Site) -> None:
    """Two guesses checked at once would both pass the count before either is recorded, and
    a code would meet more misses than allowed. SQLite already runs one writer at a time;
    PostgreSQL takes a transaction-scoped advisory lock per site, which nothing else takes,
    so it cannot close a lock-order cycle with check-ins or manifests."""
    if site.id in session.info.get(GUESS_LOCKED_SITES, ()):
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :site)"),
                        {"space": CODE_GUESS_LOCK_SPACE, "site": site.id})


def site_for_code_guess(session: Session, site_id: int) -> Site | None:
    """The site a code alone is tried at, read with its code-guess lock taken by the same
    statement on PostgreSQL (one round trip less on the pickup's fast path). The count of
    misses still comes after, in a statement of its own: its snapshot must be taken once
    the lock is held."""
    if session.get_bind().dialect.name != "postgresql":
        return session.get(Site, site_id)
    rows = _SITE_WITH_GUESS_LOCK.rows(session, {"site_id": site_id})
    if not rows:
        return None
    session.info.setdefault(GUESS_LOCKED_SITES, set()).add(site_id)
    site_row, _ = split(rows[0], SITES, 1)  # and the advisory lock's void
    return SITES.one(session, site_row)
