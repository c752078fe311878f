"""Bearer tokens and API keys: a token made (``<prefix>.<secret>``: the prefix finds the row,
the secret is compared with its keyed hash; secrets are 32 random bytes, so a fast keyed hash
is enough), an owner's API key added or revoked, a token turned into a principal at every
request (one query), and the pages' sessions opened with an API key and ended."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import ApiToken, User, UserSite
from relay_ops.domain.errors import NotFound, Unauthenticated, ValidationFailed
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: str | None


def hash_secret(ctx: Ctx, secret: str) -> str:
    return hmac.new(ctx.settings.api_token_pepper, secret.encode(), hashlib.sha256).hexdigest()


def new_token(ctx: Ctx, prefix_tag: str, fixed: str | None = None) -> tuple[str, str, str]:
    """(prefix, secret, full token). ``fixed`` is only used by the demo seed."""
    if fixed is not None:
        prefix, _, secret = fixed.partition(".")
        if not secret:
            raise ValidationFailed("a fixed token looks like <prefix>.<secret>")
        return prefix, secret, fixed
    prefix = f"{prefix_tag}_{secrets.token_hex(6)}"
    secret = secrets.token_urlsafe(32)
    return prefix, secret, f"{prefix}.{secret}"


def add_api_key(
    ctx: Ctx, session: Session, prefix_tag: str, label: str, fixed: str | None = None,
    *, carrier_id: int | None = None, producer_id: int | None = None,
) -> IssuedToken:
    """A key that does not expire, for a carrier or a producer (its owner); the secret is
    returned once and never stored."""
    prefix, secret, token = new_token(ctx, prefix_tag, fixed)
    session.add(
        ApiToken(
            prefix=prefix,
            secret_hash=hash_secret(ctx, secret),
            carrier_id=carrier_id,
            producer_id=producer_id,
            label=label or None,
        )
    )
    return IssuedToken(token=token, expires_at=None)


def revoke_token(ctx: Ctx, actor: Principal, prefix: str) -> None:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
        if row is None:
            raise NotFound(f"no key {prefix!r}")
        row.revoked_at = ctx.now()


def _token_query() -> Select[str, datetime | None, datetime | None, int | None, int | None,
                             int | None, bool | None, str | None, str | None, int | None]:
    """What deciding on a token needs of it, of its user and of the user's sites (a row per
    site), by the token's prefix: columns, not whole rows, and no ORM objects. Built and
    compiled once (:data:`TOKEN_QUERY`): every API request runs it, on the driver's cursor."""
    return (
        select(ApiToken.secret_hash, ApiToken.revoked_at, ApiToken.expires_at,
               ApiToken.carrier_id, ApiToken.producer_id, User.id, User.active, User.role,
               User.display_name, UserSite.site_id)
        .outerjoin(User, ApiToken.user_id == User.id)
        .outerjoin(UserSite, UserSite.user_id == User.id)
        .where(ApiToken.prefix == bindparam("prefix"))
    )


TOKEN_QUERY = Prebuilt(_token_query)
SECRET_HASH, SITE_ID = 0, 9  # the columns read from every row


def authenticate(ctx: Ctx, token: str) -> Principal:
    prefix, _, secret = token.strip().partition(".")
    if not prefix or not secret:
        raise Unauthenticated("malformed bearer token")
    # Every API request comes through here: token, user and the user's sites in one
    # statement (a row per site), read afresh each time: a revoked token, a disabled account
    # or a site taken away stops working at the next request, with no cache to outlive it.
    rows = ctx.db.read_once(TOKEN_QUERY, {"prefix": prefix})
    if not rows or not hmac.compare_digest(rows[0][SECRET_HASH], hash_secret(ctx, secret)):
        raise Unauthenticated("unknown or wrong token")
    (_, revoked_at, expires_at, carrier_id, producer_id, user_id, active, role, name,
     _) = rows[0]
    if revoked_at is not None:
        raise Unauthenticated("this token was revoked")
    if expires_at is not None and expires_at <= ctx.now():
        raise Unauthenticated("this token has expired; sign in again")
    if carrier_id is not None:
        return Principal(Role.CARRIER, carrier_id=carrier_id)
    if producer_id is not None:
        return Principal(Role.PRODUCER, producer_id=producer_id)
    if user_id is None or role is None or name is None or not active:  # no user: all None
        raise Unauthenticated("this account is disabled")
    site_ids = frozenset(row[SITE_ID] for row in rows if row[SITE_ID] is not None)
    return Principal(Role(role), user_id=user_id, site_ids=site_ids, name=name)


def open_carrier_session(ctx: Ctx, api_key: str, *, ttl: timedelta | None = None) -> IssuedToken:
    """A short-lived token for a carrier's staff signing in to the pages with their API key.

    The browser keeps this token, never the API key itself, so signing out (or losing the
    cookie) costs a session, not the carrier's key.
    """
    return _open_key_session(ctx, api_key, Role.CARRIER, ttl)


def open_producer_session(
    ctx: Ctx, api_key: str, *, ttl: timedelta | None = None
) -> IssuedToken:
    """The same for a producer signing in to its own page with its API key."""
    return _open_key_session(ctx, api_key, Role.PRODUCER, ttl)


# The tag of a page session's token, by the role whose API key opened it.
_SESSION_TAGS = {Role.CARRIER: "cs", Role.PRODUCER: "ps"}


def _open_key_session(
    ctx: Ctx, api_key: str, role: Role, ttl: timedelta | None
) -> IssuedToken:
    principal = authenticate(ctx, api_key)
    if principal.role is not role:
        raise Unauthenticated(f"this is not a {role.value} API key")
    with ctx.db.transaction() as session:
        prefix, secret, token = new_token(ctx, _SESSION_TAGS[role])
        expires = ctx.now() + (ttl or timedelta(hours=ctx.settings.staff_token_ttl_hours))
        session.add(
            ApiToken(
                prefix=prefix, secret_hash=hash_secret(ctx, secret),
                carrier_id=principal.carrier_id, producer_id=principal.producer_id,
                expires_at=expires, label="web-session",
            )
        )
        return IssuedToken(token=token, expires_at=expires.isoformat())


def end_session(ctx: Ctx, token: str) -> None:
    """Sign out: revoke the token the caller holds (holding it is the proof)."""
    prefix, _, secret = token.strip().partition(".")
    with ctx.db.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
        if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(ctx, secret)):
            return
        if row.revoked_at is None:
            row.revoked_at = ctx.now()
