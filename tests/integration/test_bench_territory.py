"""bench/territory.py over a few days, so the benchmark cannot rot (it once crashed unseen
when shops began grouping a recipient's parcels): shops and lockers take parcels, a full
locker sends one on, grouped parcels leave together, and the figures add up."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_territory(tmp_path: Path, *extra: str, load: str = "1.0", days: int = 4) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "bench.territory", "--start", "2026-12-07", "--days", str(days),
         "--warm-up", "1", "--load", load, "--mode", "reroute", "--out", str(tmp_path),
         *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    [written] = list(tmp_path.glob("territory-*.json"))
    [result] = json.loads(written.read_text())
    return result


def test_a_hotter_shops_only_territory_scores_both_actuals_and_counts_the_vans(
        tmp_path: Path) -> None:
    """At twice the load shops refuse parcels every day: the forecast is scored against the
    places wanted and the parcels on shelves, and the parcels left in the vans are counted."""
    result = run_territory(tmp_path, "--shops-only", load="2.0", days=3)
    # --shops-only replays the first territory: no locker, no grouping (one run serves both
    # tests: each replay costs tens of seconds of CI)
    assert result["lockers"]["lockers"] == 0 and result["lockers"]["deposits"] == 0
    assert result["grouping"] == {"shop_parcels_grouped": 0, "locker_parcels_sharing_a_door": 0,
                                  "locker_deadlines_extended": 0}
    share = result["demand_share_of_capacity"]
    assert 80 <= share["peak_pct"][0] < share["peak_pct"][1] <= 160  # 0.22-0.42 x 2 x 1.9
    assert result["refused_checkins"] > 100
    for lead in ("1d",):
        figures = result["forecast_error"][lead]
        wanted, shelves = figures["wanted"], figures["on_shelves"]
        assert wanted["samples"] == shelves["samples"] > 0
        assert wanted["mean_actual_parcels"] > shelves["mean_actual_parcels"]  # refusals
        assert figures["days_over_capacity"] > 0
        for scored in (wanted, shelves):
            assert 0 <= scored["band_coverage_pct"] <= 100
            assert math.isclose(scored["band_coverage_pct"] + scored["below_band_pct"]
                                + scored["above_band_pct"], 100, abs_tol=0.2)
            assert math.isclose(scored["bias_pct_of_mean"],
                                100 * scored["bias_parcels"] / scored["mean_actual_parcels"],
                                abs_tol=0.5)
    vans = result["vans"]
    per_day = vans["in_vans_per_day"]
    assert [d["day"] for d in per_day] == ["2026-12-07", "2026-12-08", "2026-12-09"]
    assert vans["in_vans_max"] == max(d["shops"] for d in per_day) > 0
    assert vans["in_vans_at_end"] + per_day[-1]["lockers"] == vans["still_in_vans_at_end"]
    waited = vans["days_waited_before_a_shelf"]
    assert sum(waited.values()) >= result["parcels_announced"] // 2  # each checked-in parcel
    assert vans["checked_in_after_waiting"] == sum(n for k, n in waited.items() if k != "0") > 0
    # three days: nobody has waited more than two yet, and the longest wait says so
    assert vans["waited_more_than_2_days"] == 0 and vans["longest_wait_days"] <= 2


def test_the_replay_runs_lockers_grouped_parcels_and_the_flows_the_forecast_counts(
        tmp_path: Path) -> None:
    """Shops and lockers take parcels, a full locker sends one on, grouped parcels leave
    together; with --flows shops also take parcels to send, their carrier collects them on
    its next round, producers' orders are brought and picked up; none is lost, and the shelf
    count the forecast is scored against (and the check-in refuses on) holds them."""
    result = run_territory(tmp_path, "--flows")
    lockers = result["lockers"]
    assert lockers["lockers"] == 3 and lockers["locker_days"] == 3 * 4
    assert lockers["deposits"] > 50  # a peak week: every locker takes parcels every day
    # every parcel a full locker turned away was either moved or refused, and each move is a
    # reroute proposal from a full locker
    assert lockers["moved_when_full"] == result["reroutes"]["from_full_lockers"]["moved"]
    assert result["grouping"]["shop_parcels_grouped"] > 0
    assert result["shop_days"] > 0 and result["parcels_announced"] > 500
    assert set(result["forecast_error"]) == {"1d", "3d"}  # 7 days ahead needs a longer run
    flows = result["flows"]
    sent, orders, held = flows["sent"], flows["producer_orders"], flows["held_at_scoring"]
    assert flows["send_share_of_arrivals"] == 0.15 and flows["order_shops"] > 0
    # ~15 % of ~1,600 parcels over 4 days; each deposited one left with its carrier or waits
    assert 100 < sent["deposited"] < 600
    assert sent["deposited"] >= sent["collected"] == sent["in_state_collected"] > 0
    assert sent["deposited"] == sent["collected"] + sent["on_shelves_at_end"]
    assert sent["lost_or_missing"] == 0
    assert orders["announced"] == (orders["deposited"] + sum(orders["refused_at_counter"].values())
                                   + orders["not_brought_yet"])
    assert orders["deposited"] >= orders["picked_up"] > 0 and orders["keep_cold"] > 0
    assert orders["returned_to_producer"] == orders["in_state_returned"]
    assert orders["deposited"] == (orders["picked_up"] + orders["returned_to_producer"]
                                   + orders["on_shelves_at_end"])
    assert orders["lost_or_missing"] == 0
    # parcels sent and orders on the shelves in the morning are in the occupancy the
    # forecast reads and is scored against
    assert held["sent"] > 0 and held["orders"] > 0
    assert held["counted_by_occupancy"] == held["parcels"] + held["sent"] + held["orders"]
    assert held["forecast_counts_them"] is True
    assert 0 < held["sent_and_orders_pct"] < 50


def test_the_full_no_room_policy_sends_parcels_to_storage_holds_and_loses_none(
        tmp_path: Path) -> None:
    """--policy full (bench/territory_policy.py): the operator's town-hall storage sites, no-room
    policies, season holding and temporary shelves. When shops overflow, parcels go to the
    storage sites and are scanned in and collected there, held parcels come back on their day,
    home deliveries leave the network, and every decided parcel is where its decision put it."""
    result = run_territory(tmp_path, "--shops-only", "--policy", "full", load="2.0", days=2)
    assert result["no_room_policy"] == "full"
    policy = result["policy"]
    storage, held, home = policy["storage"], policy["held_at_depot"], policy["home_by_carrier"]
    answers = policy["answers_at_announce"]
    assert result["refused_checkins"] > 0 and storage["parcels_sent"] > 0  # shops overflow
    assert answers.get("overflow-storage", 0) == storage["parcels_sent"]
    assert answers.get("hold-at-depot", 0) == held["parcels"]
    assert answers.get("home-delivery", 0) == home["decided"] == home["in_state_home_by_carrier"]
    # storage: each parcel sent is on its way, on the town hall's shelf, or gone with its owner
    assert storage["checked_in"] > 0 and storage["picked_up"] > 0
    assert storage["parcels_sent"] == storage["checked_in"] + storage["not_brought_yet"]
    assert storage["checked_in"] == (storage["picked_up"] + storage["on_shelves_at_end"]
                                     + storage["expired_or_returned"])
    assert all(0 < fill <= storage["places_each"] for fill in storage["peak_fill"].values())
    # held parcels: brought on their day (or later if refused), or still due
    assert held["parcels"] == held["checked_in"] + held["still_at_depot_or_in_van"]
    assert held["checked_in"] == held["checked_in_on_their_day"] + held["checked_in_later"]
    assert policy["lost"] == 0
    shelves = policy["season_capacity"]
    assert shelves["shelves_declared"] > 0 and shelves["parcels_put_on_temporary_shelves"] > 0
    assert shelves["places_declared_max"] <= round(0.3 * 60)  # the largest shop: 60 places
    per_day = policy["shop_days_over_capacity_per_day"]
    assert sum(per_day.values()) == result["shop_days_over_capacity"] and len(per_day) == 2


def test_the_operator_grows_the_town_halls_as_the_storage_recommendation_asks(
        tmp_path: Path) -> None:
    """--storage-growth: each morning the operator reads the overflow storage recommendation
    (services/season.storage_recommendations) and adds the places it asks for to the town
    halls, at most the allowance on any day; the grown rooms take parcels beyond their 80."""
    result = run_territory(tmp_path, "--shops-only", "--policy", "full",
                           "--storage-growth", "80", load="2.0", days=2)
    policy = result["policy"]
    storage = policy["storage"]
    added = storage["places_added"]
    assert storage["growth_allowed"] == 80 and added
    per_site_day: dict[tuple[str, str], int] = {}
    for shelf in added:
        assert shelf["from"] <= shelf["until"] and 0 < shelf["places"] <= 80
        first = date.fromisoformat(shelf["from"])
        for n in range((date.fromisoformat(shelf["until"]) - first).days + 1):
            key = (shelf["site"], (first + timedelta(days=n)).isoformat())
            per_site_day[key] = per_site_day.get(key, 0) + shelf["places"]
    assert max(per_site_day.values()) <= 80
    assert max(storage["peak_fill"].values()) > storage["places_each"]  # the growth is used
    assert all(fill <= storage["places_each"] + 80 for fill in storage["peak_fill"].values())
    assert storage["refused_at_storage_counter"] == 0 and policy["lost"] == 0
    assert storage["checked_in"] == (storage["picked_up"] + storage["on_shelves_at_end"]
                                     + storage["expired_or_returned"])
    # what the recommendation asked beyond the rooms' own places, beside what they held: the
    # upper bound asks at least the expected count's places, on the same mornings and days
    compared = storage["recommended_vs_used"]
    upper, expected = compared["upper"]["1d"], compared["expected"]["1d"]  # 2 days: 1 ahead
    assert upper["days"] == expected["days"] > 0
    assert upper["used_mean"] == expected["used_mean"]
    assert upper["asked_mean"] >= expected["asked_mean"]
