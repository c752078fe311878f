"""Producers' rules on their own: a perishable's deadline (hours, the shop's hours, the
sell-by time) and the cold places of the shelf policy."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from relay_ops.domain.errors import SellByOutOfReach
from relay_ops.domain.holding import ClosedOn, Perishable, perishable_deadline
from relay_ops.domain.hours import ALWAYS_OPEN, last_open_moment
from relay_ops.domain.sizing import ShelfSlot, choose_shelf

PARIS = ZoneInfo("Europe/Paris")
CLASSES = {"S": (100, 300, 400), "M": (200, 400, 500), "L": (400, 500, 700)}
# A village shop: mornings and afternoons on weekdays, Saturday morning, closed on Sunday.
HOURS = {d: [["08:30", "12:30"], ["14:30", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
HOURS["sat"] = [["09:00", "12:00"]]


def paris(day: int, hh: int, mm: int = 0) -> datetime:
    """A time in December 2026 (the 1st is a Tuesday), Paris local."""
    return datetime(2026, 12, day, hh, mm, tzinfo=PARIS)


def closed_days(*days: int) -> ClosedOn:
    wanted = {date(2026, 12, d) for d in days}
    return lambda day: day in wanted or day.weekday() == 6


def deadline(start: datetime, hours: int | None, sell_by: datetime | None = None,
             closed: tuple[int, ...] = ()) -> datetime:
    return perishable_deadline(start, Perishable(hours, sell_by), HOURS, PARIS,
                               closed_days(*closed)).astimezone(PARIS)


def test_a_deadline_inside_the_hours_stays_where_it_falls() -> None:
    assert deadline(paris(1, 9), 2) == paris(1, 11)


def test_a_deadline_at_lunch_moves_back_to_the_morning_closing() -> None:
    assert deadline(paris(1, 10), 3) == paris(1, 12, 30)


def test_a_deadline_at_night_moves_back_to_the_evening_closing() -> None:
    assert deadline(paris(1, 10), 12) == paris(1, 19)


def test_a_deadline_on_sunday_or_a_closing_day_moves_back_to_the_last_open_day() -> None:
    assert deadline(paris(4, 10), 48) == paris(5, 12)  # Friday + 48 h: Sunday -> Saturday noon
    assert deadline(paris(1, 10), 24, closed=(2,)) == paris(1, 19)  # Wednesday closed


def test_the_sell_by_time_comes_first_and_is_never_passed() -> None:
    assert deadline(paris(1, 9), 48, sell_by=paris(1, 16)) == paris(1, 16)
    assert deadline(paris(1, 9), 48, sell_by=paris(1, 13)) == paris(1, 12, 30)
    assert deadline(paris(1, 9), None, sell_by=paris(2, 20)) == paris(2, 19)


def test_a_sell_by_time_already_passed_is_refused() -> None:
    with pytest.raises(SellByOutOfReach):
        deadline(paris(1, 9), 4, sell_by=paris(1, 9))


def test_a_shop_closed_all_the_way_keeps_the_bound_and_never_goes_before_the_start() -> None:
    # Checked in Saturday at 12:30 (after closing), due Saturday 20:30: no opening between.
    assert deadline(paris(5, 12, 30), 8) == paris(5, 20, 30)


def test_without_hours_or_open_all_the_time_the_bound_is_the_deadline() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    item = Perishable(30, None)
    assert perishable_deadline(start, item, None, PARIS) == start + timedelta(hours=30)
    assert perishable_deadline(start, item, ALWAYS_OPEN, PARIS) == start + timedelta(hours=30)


def test_last_open_moment_skips_days_the_site_does_not_open() -> None:
    moment = last_open_moment(HOURS, closed_days(), paris(7, 8), paris(4, 10), PARIS)
    assert moment == paris(5, 12)  # Monday 08:00 (before opening) -> Saturday noon
    assert last_open_moment(HOURS, closed_days(), paris(7, 8), paris(5, 13), PARIS) is None


def slot(ident: int, label: str, cls: str, free: int, cold: bool = False) -> ShelfSlot:
    return ShelfSlot(ident, label, cls, free, 0, cold)


def test_only_a_refrigerated_place_takes_a_keep_cold_item() -> None:
    shelves = [slot(1, "A1", "S", 5), slot(2, "F1", "M", 1, cold=True)]
    assert choose_shelf(CLASSES, shelves, "S", keep_cold=True) == shelves[1]
    assert choose_shelf(CLASSES, [shelves[0]], "S", keep_cold=True) is None
    assert choose_shelf(CLASSES, shelves, "L", keep_cold=True) is None


def test_the_fridge_stays_free_for_what_needs_it_while_shelves_have_room() -> None:
    fridge = slot(2, "F1", "S", 5, cold=True)
    shelf = slot(1, "B1", "L", 1)
    assert choose_shelf(CLASSES, [shelf, fridge], "S") == shelf
    assert choose_shelf(CLASSES, [ShelfSlot(1, "B1", "L", 1, 1), fridge], "S") == fridge
