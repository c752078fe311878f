"""Staff accounts, carriers and their API keys, and turning a bearer token into a principal.

Tokens look like ``<prefix>.<secret>``: the prefix finds the row, the secret is compared with
its keyed hash. Secrets are 32 random bytes, so a fast keyed hash is enough; staff passwords,
which people choose, are hashed with argon2 (memory-hard).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relay_ops.db.models import ApiToken, Carrier, Site, User, UserSite
from relay_ops.domain.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from relay_ops.services import throttle
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role

STAFF_ROLES = (Role.OPERATOR.value, Role.SHOPKEEPER.value)
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: str | None


@cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Checked when the username is unknown, so a wrong username costs as much as a wrong password.
    return hasher.hash("relay-ops-dummy-password")


def hasher_for(ctx: Ctx) -> PasswordHasher:
    return _hasher(ctx.settings.argon2_time_cost, ctx.settings.argon2_memory_kib)


def _secret_hash(ctx: Ctx, secret: str) -> str:
    return hmac.new(ctx.settings.api_token_pepper, secret.encode(), hashlib.sha256).hexdigest()


def _new_token(ctx: Ctx, prefix_tag: str, fixed: str | None = None) -> tuple[str, str, str]:
    """(prefix, secret, full token). ``fixed`` is only used by the demo seed."""
    if fixed is not None:
        prefix, _, secret = fixed.partition(".")
        if not secret:
            raise ValidationFailed("a fixed token looks like <prefix>.<secret>")
        return prefix, secret, fixed
    prefix = f"{prefix_tag}_{secrets.token_hex(6)}"
    secret = secrets.token_urlsafe(32)
    return prefix, secret, f"{prefix}.{secret}"


def create_user(
    ctx: Ctx,
    actor: Principal,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    site_codes: list[str] | None = None,
    locale: str = "fr",
) -> dict[str, object]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if role not in STAFF_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(STAFF_ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"passwords have at least {MIN_PASSWORD_LENGTH} characters")
    with ctx.db.transaction() as session:
        sites = _sites_by_code(session, site_codes or [])
        if role == Role.SHOPKEEPER.value and not sites:
            raise ValidationFailed("a shopkeeper is attached to at least one site")
        user = User(
            username=username,
            display_name=display_name or username,
            password_hash=hasher_for(ctx).hash(password),
            role=role,
            locale=locale,
            sites=sites,
        )
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"username {username!r} is taken") from None
        return user_view(user)


def _sites_by_code(session: Session, codes: list[str]) -> list[Site]:
    sites = list(session.scalars(select(Site).where(Site.code.in_(codes))))
    unknown = set(codes) - {s.code for s in sites}
    if unknown:
        raise NotFound(f"unknown sites: {', '.join(sorted(unknown))}")
    return sites


def user_view(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "locale": user.locale,
        "sites": [s.code for s in user.sites],
        "active": user.active,
    }


def list_users(ctx: Ctx, actor: Principal) -> list[dict[str, object]]:
    require_role(actor, Role.OPERATOR)
    with ctx.db.read() as session:
        return [user_view(u) for u in session.scalars(select(User).order_by(User.username))]


def set_active(ctx: Ctx, actor: Principal, user_id: int, active: bool) -> dict[str, object]:
    """Deactivate a staff account (its tokens are revoked in the same transaction, so nothing
    it holds works from the next request), or let it sign in again (old tokens stay dead)."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        user = _user_for_update(session, user_id)
        if not active:
            _refuse_operator_lockout(session, actor, user)
            _revoke_user_tokens(session, user.id, ctx.now())
        user.active = active
        return user_view(user)


def revoke_user_tokens(ctx: Ctx, actor: Principal, user_id: int) -> int:
    """Sign a staff account out everywhere (a lost phone, a shared password): every token it
    holds stops working; the account may sign in again. How many tokens were revoked."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        user = _user_for_update(session, user_id)
        return _revoke_user_tokens(session, user.id, ctx.now())


def user_id_for_username(ctx: Ctx, username: str) -> int:
    with ctx.db.read() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise NotFound(f"no staff account {username!r}")
        return user_id


def _user_for_update(session: Session, user_id: int) -> User:
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"no staff account {user_id}")
    return user


def _refuse_operator_lockout(session: Session, actor: Principal, user: User) -> None:
    # Nobody could undo it through the API: an operator's own account, or the last operator.
    if actor.user_id == user.id:
        raise Conflict("an operator cannot deactivate their own account")
    if user.role == Role.OPERATOR.value and user.active:
        others = session.scalar(select(func.count()).where(
            User.role == Role.OPERATOR.value, User.active.is_(True), User.id != user.id))
        if not others:
            raise Conflict("this is the last active operator account")


def _revoke_user_tokens(session: Session, user_id: int, now: datetime) -> int:
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def create_carrier(
    ctx: Ctx, actor: Principal, *, code: str, name: str, reroute_policy: str = "confirm"
) -> dict[str, object]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if reroute_policy not in ("confirm", "automatic"):
        raise ValidationFailed("reroute_policy is 'confirm' or 'automatic'")
    with ctx.db.transaction() as session:
        carrier = Carrier(code=code, name=name, reroute_policy=reroute_policy)
        session.add(carrier)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"carrier code {code!r} is taken") from None
        return carrier_view(carrier)


def carrier_view(carrier: Carrier) -> dict[str, object]:
    return {
        "id": carrier.id,
        "code": carrier.code,
        "name": carrier.name,
        "reroute_policy": carrier.reroute_policy,
    }


def list_carriers(ctx: Ctx, actor: Principal) -> list[dict[str, object]]:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER, Role.SYSTEM)
    with ctx.db.read() as session:
        return [carrier_view(c) for c in session.scalars(select(Carrier).order_by(Carrier.code))]


def issue_carrier_key(
    ctx: Ctx, actor: Principal, carrier_code: str, label: str = "", fixed: str | None = None
) -> IssuedToken:
    """A new API key for a carrier; the secret is shown once and never stored."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        carrier = session.scalar(select(Carrier).where(Carrier.code == carrier_code))
        if carrier is None:
            raise NotFound(f"no carrier {carrier_code!r}")
        return add_api_key(ctx, session, "ck", label, fixed, carrier_id=carrier.id)


def add_api_key(
    ctx: Ctx, session: Session, prefix_tag: str, label: str, fixed: str | None = None,
    *, carrier_id: int | None = None, producer_id: int | None = None,
) -> IssuedToken:
    """A key that does not expire, for a carrier or a producer (its owner); the secret is
    returned once and never stored."""
    prefix, secret, token = _new_token(ctx, prefix_tag, fixed)
    session.add(
        ApiToken(
            prefix=prefix,
            secret_hash=_secret_hash(ctx, secret),
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
            prefix, secret, token = _new_token(ctx, "st", fixed)
            expires = ctx.now() + (ttl or timedelta(hours=ctx.settings.staff_token_ttl_hours))
            session.add(ApiToken(
                prefix=prefix, secret_hash=_secret_hash(ctx, secret), user_id=user.id,
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


@cache
def _token_query() -> Select[str, datetime | None, datetime | None, int | None, int | None,
                             int | None, bool | None, str | None, str | None, int | None]:
    """What deciding on a token needs of it, of its user and of the user's sites (a row per
    site), by the token's prefix: columns, not whole rows, and no ORM objects. Built once, on
    first use: every API request runs it, and SQLAlchemy's compiled cache then serves it."""
    return (
        select(ApiToken.secret_hash, ApiToken.revoked_at, ApiToken.expires_at,
               ApiToken.carrier_id, ApiToken.producer_id, User.id, User.active, User.role,
               User.display_name, UserSite.site_id)
        .outerjoin(User, ApiToken.user_id == User.id)
        .outerjoin(UserSite, UserSite.user_id == User.id)
        .where(ApiToken.prefix == bindparam("prefix"))
    )


def authenticate(ctx: Ctx, token: str) -> Principal:
    prefix, _, secret = token.strip().partition(".")
    if not prefix or not secret:
        raise Unauthenticated("malformed bearer token")
    # Every API request comes through here: token, user and the user's sites in one
    # statement (a row per site), read afresh each time: a revoked token, a disabled account
    # or a site taken away stops working at the next request, with no cache to outlive it.
    rows = ctx.db.read_once(_token_query(), {"prefix": prefix})
    if not rows or not hmac.compare_digest(rows[0].secret_hash, _secret_hash(ctx, secret)):
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
    site_ids = frozenset(row.site_id for row in rows if row.site_id is not None)
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
        prefix, secret, token = _new_token(ctx, _SESSION_TAGS[role])
        expires = ctx.now() + (ttl or timedelta(hours=ctx.settings.staff_token_ttl_hours))
        session.add(
            ApiToken(
                prefix=prefix, secret_hash=_secret_hash(ctx, secret),
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
        if row is None or not hmac.compare_digest(row.secret_hash, _secret_hash(ctx, secret)):
            return
        if row.revoked_at is None:
            row.revoked_at = ctx.now()
