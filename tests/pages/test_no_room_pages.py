"""The operator sets the no-room policies on the dashboard (docs/overflow.md), with the same
rules as the API: what the page records is what the planner reads."""

from __future__ import annotations

from tests.pages.support import Pages
from tests.support import World


def policies(world: World) -> list[dict[str, object]]:
    return world.operator.get("/no-room-policies").json["items"]


def block(operator: Pages) -> str:
    return operator.text("/ops").split('id="no-room-policies-title"')[1].split("</table>")[0]


def test_an_operator_sets_replaces_and_deletes_a_policy(operator: Pages, world: World) -> None:
    assert "Politiques sans place" in operator.text("/ops")
    assert "Aucune politique" in block(operator)
    recorded = operator.post("/ops/no-room-policies", {
        "carrier": "acme", "territory": "area:town", "step1": "storage", "step2": "home",
        "step3": "", "home_size_classes": ["S"]})
    assert recorded.status_code == 303
    assert policies(world) == [{**policies(world)[0], "carrier": "acme", "site": None,
                                "area": "town", "steps": ["storage", "home"],
                                "home_size_classes": ["S"]}]
    shown = block(operator)
    assert "acme" in shown and "ville" in shown
    assert "1. Stockage de débordement<br>2. Livrer à domicile (le transporteur)" in shown

    # The same carrier and territory: the policy is replaced, never doubled; a step chosen
    # twice counts once, at its first place.
    replaced = operator.post("/ops/no-room-policies", {
        "carrier": "acme", "territory": "area:town", "step1": "hold", "step2": "storage",
        "step3": "hold"})
    assert replaced.status_code == 303
    assert [(p["steps"], p["home_size_classes"]) for p in policies(world)] == [
        (["hold", "storage"], [])]

    everywhere = operator.post("/ops/no-room-policies", {
        "carrier": "", "territory": "site:bourg", "step1": "hold"})
    assert everywhere.status_code == 303
    assert {(p["carrier"], p["site"], p["area"]) for p in policies(world)} == {
        ("acme", None, "town"), (None, "bourg", None)}

    first = policies(world)[0]["id"]
    assert operator.post(f"/ops/no-room-policies/{first}/delete").status_code == 303
    assert [p["site"] for p in policies(world)] == ["bourg"]


def test_a_policy_the_rules_refuse_is_explained_and_not_recorded(operator: Pages,
                                                                 world: World) -> None:
    no_step = operator.post("/ops/no-room-policies", {"carrier": "acme", "territory": ""})
    assert no_step.status_code == 422
    assert "au moins une étape" in no_step.get_data(as_text=True)
    home_sizes = operator.post("/ops/no-room-policies", {
        "territory": "", "step1": "hold", "home_size_classes": ["S"]})
    assert home_sizes.status_code == 422
    assert "livraison à domicile" in home_sizes.get_data(as_text=True)
    odd_territory = operator.post("/ops/no-room-policies", {
        "territory": "planet:mars", "step1": "hold"})
    assert odd_territory.status_code == 422
    unknown_site = operator.post("/ops/no-room-policies", {
        "territory": "site:nowhere", "step1": "hold"})
    assert unknown_site.status_code == 404
    assert policies(world) == []


def test_only_an_operator_sets_policies(marie: Pages, world: World) -> None:
    refused = marie.post("/ops/no-room-policies", {"territory": "", "step1": "hold"})
    assert refused.status_code == 403
    assert policies(world) == []
