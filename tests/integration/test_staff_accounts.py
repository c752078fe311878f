"""Operators deactivate staff accounts and sign them out everywhere (issue 13, item 9)."""

from __future__ import annotations

from relay_ops.services import staff_sign_in
from tests.pages.support import Pages
from tests.support import PASSWORD, World, is_problem


def _user_id(world: World, username: str) -> int:
    users = world.operator.get("/users").json["items"]
    return next(u["id"] for u in users if u["username"] == username)


def test_a_deactivated_account_is_refused_at_once_api_and_pages(world: World) -> None:
    pages = Pages(world.client, world)
    assert pages.sign_in("marie", PASSWORD).status_code == 303
    marie = _user_id(world, "marie")
    answer = world.operator.put(f"/users/{marie}/active", json={"active": False})
    assert answer.status_code == 200 and answer.json["active"] is False
    # The token she already holds stops working with the very next request.
    refused = world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy")
    assert is_problem(refused, 401, "unauthenticated")
    page = world.client.get(f"/shop/{world.shop_id}/scan")
    assert page.status_code == 302 and "/login" in page.location
    # Nor can she sign in again while deactivated.
    again = world.client.post("/api/v1/auth/token", json={"username": "marie",
                                                          "password": PASSWORD})
    assert is_problem(again, 401, "unauthenticated")
    # Reactivated, she signs in anew; the tokens revoked on deactivation stay revoked.
    assert world.operator.put(f"/users/{marie}/active", json={"active": True}).json["active"]
    assert is_problem(world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy"), 401,
                      "unauthenticated")
    world.shopkeeper.token = staff_sign_in.log_in(world.ctx, "marie", PASSWORD).token
    assert world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy").status_code == 200


def test_an_operator_signs_a_staff_account_out_everywhere(world: World) -> None:
    marie = _user_id(world, "marie")
    second = staff_sign_in.log_in(world.ctx, "marie", PASSWORD).token
    answer = world.operator.delete(f"/users/{marie}/tokens")
    assert answer.status_code == 200 and answer.json == {"revoked": 2}
    assert is_problem(world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy"), 401,
                      "unauthenticated")
    world.shopkeeper.token = second
    assert is_problem(world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy"), 401,
                      "unauthenticated")
    # Still active: she signs in again, and paul's tokens were never touched.
    assert staff_sign_in.log_in(world.ctx, "marie", PASSWORD).token
    assert world.other_shopkeeper.get(f"/sites/{world.other_shop_id}/occupancy").status_code == 200


def test_only_operators_manage_accounts_and_never_lock_themselves_out(world: World) -> None:
    marie, op = _user_id(world, "marie"), _user_id(world, "op")
    assert is_problem(world.shopkeeper.put(f"/users/{marie}/active", json={"active": False}),
                      403, "forbidden")
    assert is_problem(world.shopkeeper.delete(f"/users/{marie}/tokens"), 403, "forbidden")
    assert is_problem(world.anonymous.delete(f"/users/{marie}/tokens"), 401, "unauthenticated")
    assert is_problem(world.operator.put(f"/users/{op}/active", json={"active": False}),
                      409, "conflict")
    assert is_problem(world.operator.put("/users/999/active", json={"active": False}),
                      404, "not-found")
    assert world.operator.get(f"/sites/{world.shop_id}").status_code == 200
