"""Operator commands, run the way an operator runs them."""

from pathlib import Path

from relay_ops.cli import create_operator_app
from relay_ops.db import migrate
from relay_ops.demo import CARRIER_TOKEN, PRODUCER_TOKEN, SHOPKEEPER_TOKEN


def make_app(tmp_path: Path):
    return create_operator_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
                       "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})


def test_an_operator_sets_up_a_shop_from_the_command_line(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    upgraded = runner.invoke(args=["db", "upgrade"]).output
    assert f"database at {migrate.head_revision()}" in upgraded
    created = runner.invoke(args=[
        "site", "create", "--code", "bourg", "--name", "Tabac du Bourg", "--address", "1 place",
        "--postcode", "44440", "--city", "Riaillé", "--lat", "47.5", "--lon", "-1.3",
        "--hours", '{"tue": [["09:00", "19:00"]]}', "--locations", "A1:S:20,B1:L:5"])
    assert created.exit_code == 0, created.output
    listing = runner.invoke(args=["site", "list"]).output
    assert "bourg" in listing and "0/25" in listing
    assert runner.invoke(args=["carrier", "create", "acme", "Acme"]).exit_code == 0
    key = runner.invoke(args=["carrier", "key", "acme"]).output.strip()
    assert key.startswith("ck_") and "." in key
    user = runner.invoke(args=["user", "create", "marie", "--role", "shopkeeper",
                               "--site", "bourg"], input="a long password\na long password\n")
    assert user.exit_code == 0, user.output
    assert "0 parcel(s) expired" in runner.invoke(args=["sweep-expiry"]).output
    hours = runner.invoke(args=["site", "hours", "bourg", '{"sat": [["09:00", "12:00"]]}'])
    assert hours.exit_code == 0 and '"sat"' in hours.output
    never = runner.invoke(args=["site", "hours", "bourg", "{}"])
    assert never.exit_code == 1 and "validation-failed" in never.output


def test_refusals_are_reported_without_a_traceback(tmp_path: Path) -> None:
    runner = make_app(tmp_path).test_cli_runner()
    runner.invoke(args=["db", "upgrade"])
    result = runner.invoke(args=["carrier", "key", "ghost"])
    assert result.exit_code == 1
    assert "not-found: no carrier 'ghost'" in result.output
    bad = runner.invoke(args=["site", "create", "--code", "x", "--name", "x", "--address", "x",
                              "--postcode", "1", "--city", "x", "--lat", "1", "--lon", "1",
                              "--locations", "A1-S-3"])
    assert bad.exit_code == 2 and "LABEL:CLASS:CAPACITY" in bad.output
    no_hours = runner.invoke(args=["site", "create", "--code", "x", "--name", "x", "--address",
                                   "x", "--postcode", "1", "--city", "x", "--lat", "1", "--lon",
                                   "1"])
    assert no_hours.exit_code == 1 and "needs its opening_hours" in no_hours.output


def test_demo_seed_is_repeatable_and_its_credentials_work(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "--seed-only"]).exit_code == 0
    assert runner.invoke(args=["demo", "--seed-only"]).exit_code == 0
    client = app.test_client()
    shop = client.get("/api/v1/sites/1/parcels",
                      headers={"Authorization": f"Bearer {SHOPKEEPER_TOKEN}"}).json
    # On the shelves: the parcel received, the one a resident sent (docs/outbound.md), the
    # farm's order in the fridge (docs/producers.md) and the parcel a neighbour brings home.
    on_hand = {p["tracking_number"]: (p["direction"], p["location"]) for p in shop["items"]}
    assert on_hand.pop("LIGENVOI0001") == ("outbound", "A1")
    assert on_hand.pop("RR123456785FR") == ("inbound", "A1")
    assert on_hand.pop("RELAYDEMO0002") == ("inbound", "A2")
    [(label, (direction, shelf))] = on_hand.items()
    assert label.startswith("PRD") and (direction, shelf) == ("inbound", "F1")
    farm = {"Authorization": f"Bearer {PRODUCER_TOKEN}"}
    order = client.get("/api/v1/producer/orders/PANIER-12", headers=farm).json
    assert (order["state"], order["keep_cold"], order["label"]) == (
        "ready_for_pickup", True, label)
    staff = {"Authorization": f"Bearer {SHOPKEEPER_TOKEN}"}
    [delivery] = client.get("/api/v1/sites/1/home-deliveries", headers=staff).json["items"]
    assert delivery["parcel"]["tracking_number"] == "RELAYDEMO0002"
    assert (delivery["status"], delivery["courier"]) == (
        "requested", {"kind": "neighbour", "name": "Marcel Petit"})
    assert client.get("/livraison/" + delivery["courier_url"].rsplit("/", 1)[1]
                      ).status_code == 200
    pickup = client.get("/api/v1/sites/1/outbound/pickup-list",
                        headers={"Authorization": f"Bearer {CARRIER_TOKEN}"}).json
    assert [p["tracking_number"] for p in pickup["items"]] == ["LIGENVOI0001"]
    senders = client.get("/api/v1/sites", query_string={
        "service": "send,cold,home_delivery"}).json
    assert [site["code"] for site in senders["items"]] == ["riaille-bourg"]
    manifests = client.get("/api/v1/manifests",
                           headers={"Authorization": f"Bearer {CARRIER_TOKEN}"}).json
    # newest first: the demo locker's parcel is announced after the shops' round
    assert [m["reference"] for m in manifests["items"]] == ["DEMO-LOCKER-1", "DEMO-ROUND-1"]


def test_the_demos_links_point_at_the_port_it_runs_on(tmp_path: Path) -> None:
    from relay_ops.services import resident

    app = make_app(tmp_path)
    assert app.test_cli_runner().invoke(
        args=["demo", "--seed-only", "--port", "5123"]).exit_code == 0
    link = resident.tracking_url(app.extensions["relay_ops"], 1)
    assert link.startswith("http://127.0.0.1:5123/t/")
    # A base URL set on purpose (a proxy, a public name) is kept.
    chosen = create_operator_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
                         "PUBLIC_BASE_URL": "https://relais.example.org"})
    assert chosen.test_cli_runner().invoke(
        args=["demo", "--seed-only", "--port", "5123"]).exit_code == 0
    assert resident.tracking_url(chosen.extensions["relay_ops"], 1).startswith(
        "https://relais.example.org/t/")


def test_an_operator_registers_a_locker_and_takes_a_door_out_of_service(tmp_path: Path) -> None:
    import json

    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    registered = runner.invoke(args=[
        "locker", "register", "--code", "LCK-CLI", "--name", "Casier", "--model", "mini-6",
        "--address", "Place", "--postcode", "44440", "--city", "Riaillé", "--lat", "47.5",
        "--lon", "-1.3"])
    assert registered.exit_code == 0 and "6 compartments" in registered.output
    out = runner.invoke(args=["locker", "service", "LCK-CLI", "3", "--out", "hinge broken"])
    assert out.exit_code == 0 and "out_of_service" in out.output
    shown = json.loads(runner.invoke(args=["locker", "show", "LCK-CLI"]).output)
    assert shown["compartments"][2]["fault_reason"] == "hinge broken"
    assert shown["commands_waiting"] == 2  # the first credential sync, set_out_of_service
    back = runner.invoke(args=["locker", "service", "LCK-CLI", "3"])
    assert back.exit_code == 0 and "free" in back.output
    refused = runner.invoke(args=["locker", "register", "--code", "LCK-X", "--name", "X",
                                  "--model", "nope", "--address", "a", "--postcode", "1",
                                  "--city", "c", "--lat", "1", "--lon", "1"])
    assert refused.exit_code == 1 and "unknown locker model" in refused.output


def test_an_operator_deactivates_a_staff_account_from_the_command_line(tmp_path: Path) -> None:
    from relay_ops.services import staff_sign_in

    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    runner.invoke(args=["db", "upgrade"])
    runner.invoke(args=["user", "create", "op", "--role", "operator"],
                  input="a long password\na long password\n")
    ctx = app.extensions["relay_ops"]
    token = staff_sign_in.log_in(ctx, "op", "a long password").token
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    signed_out = runner.invoke(args=["user", "revoke-tokens", "op"])
    assert signed_out.exit_code == 0 and "1 token(s) of op revoked" in signed_out.output
    assert client.get("/api/v1/users", headers=headers).status_code == 401
    runner.invoke(args=["user", "create", "marie", "--role", "operator"],
                  input="a long password\na long password\n")
    token = staff_sign_in.log_in(ctx, "op", "a long password").token
    headers = {"Authorization": f"Bearer {token}"}
    assert runner.invoke(args=["user", "deactivate", "op"]).exit_code == 0
    assert client.get("/api/v1/users", headers=headers).status_code == 401
    assert runner.invoke(args=["user", "activate", "op"]).exit_code == 0
    assert staff_sign_in.log_in(ctx, "op", "a long password").token
    ghost = runner.invoke(args=["user", "deactivate", "ghost"])
    assert ghost.exit_code == 1 and "not-found" in ghost.output
