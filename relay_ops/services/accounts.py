"""Staff accounts (created, listed, deactivated, signed out everywhere) and carriers with their
API keys.

Beside it: ``api_tokens`` (bearer tokens and API keys, a token turned into a principal, the
pages' sessions) and ``staff_sign_in`` (a staff password checked, throttled, a token issued).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relay_ops.db.models import ApiToken, Carrier, Site, User
from relay_ops.domain.errors import Conflict, NotFound, ValidationFailed
from relay_ops.services.api_tokens import IssuedToken, add_api_key
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.staff_sign_in import hasher_for

STAFF_ROLES = (Role.OPERATOR.value, Role.SHOPKEEPER.value)
MIN_PASSWORD_LENGTH = 10


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
