"""Home delivery's rules, without a database (domain/home_delivery.py)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from relay_ops.domain import home_delivery as hd
from relay_ops.domain.errors import HomeDeliveryRefused, InvalidTransition, ValidationFailed
from relay_ops.domain.lifecycle import (
    FINAL_STATES,
    HELD_STATES,
    Action,
    State,
    next_state,
)

PARIS = ZoneInfo("Europe/Paris")
TUESDAY = date(2026, 12, 1)
OFFER = hd.Offer(("tue", "fri"), "Riaillé bourg")


def never(_: date) -> bool:
    return False


def facts(**changes: object) -> hd.RequestFacts:
    base = dict(services=("receive", "home_delivery"), offer=OFFER,
                parcel_state="ready_for_pickup", is_locker=False, open_request=False,
                today=TUESDAY, deadline_day=date(2026, 12, 11))
    base.update(changes)
    return hd.RequestFacts(**base)  # type: ignore[arg-type]


def ask(day: date = TUESDAY, consent: bool = True, in_area: bool = True, **changes: object
        ) -> None:
    hd.check_request(facts(**changes), day, never, consent=consent, in_area=in_area)


def test_the_parcel_goes_out_and_is_delivered_or_comes_back_to_its_shelf() -> None:
    assert next_state(State.READY_FOR_PICKUP, Action.HAND_TO_COURIER) is State.OUT_FOR_DELIVERY
    assert next_state(State.OUT_FOR_DELIVERY, Action.DELIVER) is State.DELIVERED
    assert next_state(State.OUT_FOR_DELIVERY, Action.RETURN_TO_SHELF) is State.READY_FOR_PICKUP
    # Its shelf place is kept while it is out; delivered is the end of its life.
    assert State.OUT_FOR_DELIVERY in HELD_STATES and State.DELIVERED in FINAL_STATES
    with pytest.raises(InvalidTransition):
        next_state(State.OUT_FOR_DELIVERY, Action.PICK_UP)
    with pytest.raises(InvalidTransition):
        next_state(State.EXPIRED, Action.HAND_TO_COURIER)


def test_a_request_is_taken_then_delivered_or_returned() -> None:
    assert hd.next_status("requested", "take") is hd.Status.TAKEN
    assert hd.next_status("taken", "deliver") is hd.Status.DELIVERED
    assert hd.next_status("taken", "return") is hd.Status.RETURNED
    assert hd.next_status("requested", "lapse") is hd.Status.LAPSED


def test_the_resident_cancels_until_the_courier_has_taken_the_parcel() -> None:
    assert hd.next_status("requested", "cancel") is hd.Status.CANCELLED
    with pytest.raises(InvalidTransition, match="already taken"):
        hd.next_status("taken", "cancel")
    for closed in ("delivered", "returned", "cancelled", "lapsed"):
        assert not any(src is hd.Status(closed) for src, _ in hd.steps())


def test_a_site_declares_its_days_and_area() -> None:
    offer = hd.Offer.from_mapping({"days": ["fri", "tue"], "area": "  Riaillé   bourg "})
    assert offer == OFFER  # week order, spaces tidied
    with pytest.raises(ValidationFailed, match="unknown day"):
        hd.Offer.from_mapping({"days": ["tuesday"], "area": "x"})
    with pytest.raises(ValidationFailed, match="at least one"):
        hd.Offer.from_mapping({"days": [], "area": "x"})
    with pytest.raises(ValidationFailed, match="area"):
        hd.Offer.from_mapping({"days": ["mon"], "area": " "})


def test_delivery_days_are_the_sites_days_it_opens_before_the_deadline() -> None:
    closed_friday = {date(2026, 12, 4)}
    days = hd.delivery_days(OFFER, TUESDAY, date(2026, 12, 11), closed_friday.__contains__)
    assert days == [date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 11)]
    assert hd.delivery_days(OFFER, TUESDAY, date(2026, 12, 3), never) == [TUESDAY]


def test_a_request_is_refused_where_and_when_it_cannot_be_kept() -> None:
    ask()  # the sound request passes
    with pytest.raises(HomeDeliveryRefused, match="does not offer"):
        ask(services=("receive",))
    with pytest.raises(HomeDeliveryRefused, match="does not offer"):
        ask(offer=None)
    with pytest.raises(HomeDeliveryRefused, match="does not offer"):
        ask(is_locker=True)
    with pytest.raises(InvalidTransition, match="waiting at the shop"):
        ask(parcel_state="announced")
    with pytest.raises(HomeDeliveryRefused, match="already planned"):
        ask(open_request=True)
    with pytest.raises(ValidationFailed, match="consent"):
        ask(consent=False)
    with pytest.raises(HomeDeliveryRefused, match="Riaillé bourg"):
        ask(in_area=False)
    with pytest.raises(HomeDeliveryRefused, match="not a delivery day"):
        ask(day=date(2026, 12, 2))  # a Wednesday
    with pytest.raises(HomeDeliveryRefused, match="not a delivery day"):
        ask(day=date(2026, 12, 15), deadline_day=date(2026, 12, 11))  # after the deadline


def test_a_courier_is_a_named_person_or_the_shop() -> None:
    assert hd.check_courier("neighbour", " Marcel  Petit ") == (hd.CourierKind.NEIGHBOUR,
                                                                "Marcel Petit")
    assert hd.check_courier("shopkeeper", "") == (hd.CourierKind.SHOPKEEPER, "")
    with pytest.raises(ValidationFailed, match="name the neighbour"):
        hd.check_courier("volunteer", "  ")
    with pytest.raises(ValueError):
        hd.check_courier("drone", "x")


def test_a_parcel_back_from_a_failed_delivery_gets_more_time() -> None:
    evening = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # Wednesday 00:30 in Paris
    soon = datetime(2026, 12, 1, 22, 59, tzinfo=UTC)
    extended = hd.returned_deadline(soon, evening, PARIS, never)
    assert extended.astimezone(PARIS).date() == date(2026, 12, 4)  # two days from Wednesday
    later = datetime(2026, 12, 20, 22, 59, tzinfo=UTC)
    assert hd.returned_deadline(later, evening, PARIS, never) == later  # never shortened


def test_the_day_is_over_after_local_midnight() -> None:
    assert not hd.day_is_over(TUESDAY, datetime(2026, 12, 1, 22, 59, tzinfo=UTC), PARIS)
    assert hd.day_is_over(TUESDAY, datetime(2026, 12, 1, 23, 0, tzinfo=UTC), PARIS)


def test_the_courier_link_is_derived_and_stored_only_as_a_keyed_hash() -> None:
    token = hd.courier_token(b"derive", "nonce-1")
    assert token == hd.courier_token(b"derive", "nonce-1") != hd.courier_token(b"derive", "n2")
    assert len(token) == 32
    digest = hd.courier_token_hash(b"pepper", token)
    assert token not in digest and digest != hd.courier_token_hash(b"other", token)
