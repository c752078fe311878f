"""Staff sign in with a username and a password: a token that expires, or the principal alone.
Passwords, which people choose, are hashed with argon2 (memory-hard); wrong ones slow down one
client's tries at one username (throttle.SIGN_IN), never the owner's elsewhere."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import ApiToken, User
from relay_ops.domain.errors import Unauthenticated
from relay_ops.services import throttle
from relay_ops.services.api_tokens import IssuedToken, hash_secret, new_token
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role


@cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Checked when the username is unknown, so a wrong username costs as much as a wrong password.
    return hasher.hash("relay-ops-dummy-password")


def hasher_for(ctx: Ctx) -> PasswordHasher:
    return _hasher(ctx.settings.argon2_time_cost, ctx.settings.argon2_memory_kib)


# The client of in-process callers (the CLI, the demo seed): no network address to key on.
LOCAL_CLIENT = "local"


def log_in(
    ctx: Ctx, username: str, password: str, *, client: str = LOCAL_CLIENT,
    ttl: timedelta | None = None, fixed: str | None = None,
) -> IssuedToken:
    """Check a staff password and issue a bearer token that expires. ``client`` is the
    caller's network address: wrong passwords slow down that address's tries at this
    username only (see :data:`throttle.SIGN_IN`)."""
    with ctx.db.transaction() as session:
        user = _signed_in_user(ctx, session, username, password, client)
        if user is not None:
            if hasher_for(ctx).check_needs_rehash(user.password_hash):
                user.password_hash = hasher_for(ctx).hash(password)
            prefix, secret, token = new_token(ctx, "st", fixed)
            expires = ctx.now() + (ttl or timedelta(hours=ctx.settings.staff_token_ttl_hours))
            session.add(ApiToken(
                prefix=prefix, secret_hash=hash_secret(ctx, secret), user_id=user.id,
                expires_at=expires, label="login",
            ))
            return IssuedToken(token=token, expires_at=expires.isoformat())
    # Raised after the commit, so the failed attempt is counted.
    raise Unauthenticated("wrong username or password")


def verify_password(
    ctx: Ctx, username: str, password: str, *, client: str = LOCAL_CLIENT
) -> Principal:
    """The staff principal for a username and password."""
    with ctx.db.transaction() as session:
        user = _signed_in_user(ctx, session, username, password, client)
        if user is not None:
            return _user_principal(user)
    raise Unauthenticated("wrong username or password")


def _signed_in_user(
    ctx: Ctx, session: Session, username: str, password: str, client: str
) -> User | None:
    """The user if the password is right; a wrong one is counted against this username from
    this client only, so a guesser elsewhere never locks the owner out."""
    now, key = ctx.now(), sign_in_key(username, client)
    throttle.check_backoff(session, throttle.SIGN_IN, key, now)
    user = session.scalar(select(User).where(User.username == username))
    if _password_ok(ctx, user, password):
        throttle.clear(session, throttle.SIGN_IN, key)
        return user
    throttle.record_failure(session, throttle.SIGN_IN, key, now)
    return None


def sign_in_key(username: str, client: str) -> str:
    # Usernames are unique case-sensitively, but "Marie" and "marie" are one guess target.
    return f"{username.lower()}|{client}"[:120]


def _password_ok(ctx: Ctx, user: User | None, password: str) -> bool:
    hasher = hasher_for(ctx)
    try:
        if user is None or not user.active:
            hasher.verify(_dummy_hash(hasher), password)
            return False
        return hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _user_principal(user: User) -> Principal:
    return Principal(
        Role(user.role),
        user_id=user.id,
        site_ids=frozenset(s.id for s in user.sites),
        name=user.display_name,
    )
