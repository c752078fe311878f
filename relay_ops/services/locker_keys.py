"""What a locker trusts and what its keypad hashes: the command keys, the QR public key, the
PIN key derived per locker, and carriers' offline codes derived per locker, carrier and
generation (protocol sections 7 and 12). Nothing secret is stored in the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from sqlalchemy.orm import Session, object_session

from firmware_bridge.protocol import raw_public_key
from relay_ops.db.models import CarrierCode, PickupCredential, Site
from relay_ops.domain import pickup_token
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import code_of

PIN_KEY_ID = "p1"
CARRIER_CODE_DIGITS = 8
# session.info key: carrier code generations read in this transaction (`_code_generation`)
CODE_GENERATIONS = "relay_ops.carrier_code_generations"


def command_keys(ctx: Ctx) -> list[dict[str, str]]:
    """The public keys a locker trusts for commands: the signing key's, then any other key
    still or already trusted (a rotation: the next key is trusted before it signs)."""
    settings = ctx.settings.locker
    keys = [{"kid": settings.command_kid, "key": raw_public_key(settings.command_key)}]
    keys += [{"kid": kid, "key": key} for kid, key in settings.command_trusted_keys.items()
             if kid != settings.command_kid]
    return keys


def pin_key(ctx: Ctx, locker_code: str) -> str:
    """The locker's PIN hashing key (base64), derived so no secret sits in the database. It
    reaches the locker in its provisioning bundle, never in a sync (protocol section 12)."""
    raw = hmac.new(ctx.settings.locker.pin_key_secret,
                   f"locker-pin-key/{locker_code}/{PIN_KEY_ID}".encode(), hashlib.sha256).digest()
    return base64.b64encode(raw).decode()


def keyed_hash(ctx: Ctx, site: Site, code: str) -> str:
    """What the locker's keypad hashes a typed code to (protocol section 7)."""
    key = base64.b64decode(pin_key(ctx, site.code))
    return hmac.new(key, b"relayops/pin/v1:" + code.encode(), hashlib.sha256).hexdigest()


def locker_pin_hash(ctx: Ctx, site: Site, credential: PickupCredential) -> str:
    """What the locker's keypad hashes this credential's PIN to (protocol section 7)."""
    return keyed_hash(ctx, site, code_of(ctx, credential))


def carrier_code(ctx: Ctx, site: Site, carrier_id: int, generation: int | None = None) -> str:
    """A carrier's offline code at one locker: derived from the locker PIN secret, the locker,
    the carrier and the code's generation (rotated, `rotate_carrier_code`), so nothing secret
    is stored and no other locker or carrier shares it. It has more digits than a resident's
    PIN: it opens every compartment reserved for the carrier. ``generation`` None: the current
    one (read through the site's session)."""
    if generation is None:
        session = object_session(site)
        assert session is not None, "a site read in a session"
        generation = _code_generation(session, site.id, carrier_id)
    label = f"carrier-offline-code/{site.code}/{carrier_id}"
    if generation:  # generation 0 keeps the code every carrier had before rotation existed
        label += f"/{generation}"
    raw = hmac.new(ctx.settings.locker.pin_key_secret, label.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(raw[:8], 'big') % 10**CARRIER_CODE_DIGITS:0{CARRIER_CODE_DIGITS}d}"


def producer_code(ctx: Ctx, site: Site, producer_id: int) -> str:
    """A producer's code at one locker: typed as a carrier's code (the same keypad key and
    length), it opens the doors reserved for the producer's orders there. Derived like a
    carrier's, from a label of its own, so no carrier's code equals it."""
    label = f"producer-offline-code/{site.code}/{producer_id}"
    raw = hmac.new(ctx.settings.locker.pin_key_secret, label.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(raw[:8], 'big') % 10**CARRIER_CODE_DIGITS:0{CARRIER_CODE_DIGITS}d}"


def _code_generation(session: Session, site_id: int, carrier_id: int) -> int:
    """Read once per transaction (a full sync names the carrier in every reservation, and
    the identity map does not remember a row that is not there)."""
    known: dict[tuple[int, int], int] = session.info.setdefault(CODE_GENERATIONS, {})
    if (site_id, carrier_id) not in known:
        row = session.get(CarrierCode, (site_id, carrier_id))
        known[(site_id, carrier_id)] = row.generation if row is not None else 0
    return known[(site_id, carrier_id)]


def public_key_text(ctx: Ctx) -> str:
    return pickup_token.public_key_to_text(ctx.settings.locker.signing_key.public_key())
