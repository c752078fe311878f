from tests.support import World, is_problem, row_counts


def parcel(number: str, site: str = "bourg", **extra: object) -> dict[str, object]:
    return {"tracking_number": number, "site": site,
            "recipient": {"name": "Jeanne", "phone": "+33612345678"}, **extra}


def test_each_parcel_is_accepted_or_rejected_with_a_reason(world: World) -> None:
    closing = {"day": "2026-12-24", "reason": "Christmas Eve"}
    assert world.other_shopkeeper.post(f"/sites/{world.other_shop_id}/closing-days",
                                       json=closing).status_code == 201
    body = {
        "reference": "ROUND-1",
        "parcels": [
            parcel("ACME00000001"),
            parcel("ACME00000001"),
            parcel("RR473124828FR"),
            parcel("ACME00000002", site="nowhere"),
            {"tracking_number": "ACME00000003", "site": "bourg", "recipient": {"name": "X"}},
            parcel("ACME00000004", site="voisin", expected_date="2026-12-24"),
            parcel("ACME00000005", dimensions_mm=[300, 50, 200]),
        ],
    }
    response = world.carrier.post("/manifests", json=body)
    assert response.status_code == 201
    results = response.json["parcels"]
    assert [r["status"] for r in results] == [
        "accepted", "rejected", "rejected", "rejected", "rejected", "rejected", "accepted"]
    assert [r.get("reason") for r in results] == [
        None, "duplicate-tracking-number", "invalid-tracking-number", "unknown-site",
        "missing-recipient-contact", "site-closed", None]
    assert response.json["accepted"] == 2 and response.json["rejected"] == 5
    size = world.carrier.get(f"/parcels/{results[6]['parcel_id']}").json["size_class"]
    assert size == "S"


def test_a_saturated_site_takes_no_new_parcels(world: World) -> None:
    assert world.operator.put(f"/sites/{world.shop_id}/status",
                              json={"status": "saturated"}).status_code == 200
    response = world.announce("ACME00000010")
    assert response.json["parcels"][0]["reason"] == "site-saturated"


def test_an_existing_tracking_number_is_a_duplicate(world: World) -> None:
    world.announce("ACME00000011", reference="A")
    response = world.announce("ACME00000011", reference="B")
    assert response.json["parcels"][0]["reason"] == "duplicate-tracking-number"


def test_same_reference_same_content_replays_the_first_answer(world: World) -> None:
    first = world.announce("ACME00000020", "ACME00000021", reference="R1")
    counts = row_counts(world.ctx)
    again = world.announce("ACME00000020", "ACME00000021", reference="R1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert row_counts(world.ctx) == counts


def test_same_reference_with_other_content_is_refused(world: World) -> None:
    world.announce("ACME00000030", reference="R2")
    counts = row_counts(world.ctx)
    response = world.announce("ACME00000031", reference="R2")
    assert is_problem(response, 409, "conflict")
    assert row_counts(world.ctx) == counts


def test_idempotency_key_replays_and_refuses_reuse(world: World) -> None:
    body = {"reference": "R3", "parcels": [parcel("ACME00000040")]}
    headers = {"Idempotency-Key": "key-1"}
    first = world.carrier.post("/manifests", json=body, headers=headers)
    again = world.carrier.post("/manifests", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    counts = row_counts(world.ctx)
    other = {"reference": "R4", "parcels": [parcel("ACME00000041")]}
    reused = world.carrier.post("/manifests", json=other, headers=headers)
    assert is_problem(reused, 422, "idempotency-key-reused")
    assert row_counts(world.ctx) == counts


def test_idempotency_keys_belong_to_one_carrier(world: World) -> None:
    headers = {"Idempotency-Key": "shared"}
    a = world.carrier.post("/manifests", json={"reference": "X", "parcels": [
        parcel("ACME00000050")]}, headers=headers)
    b = world.other_carrier.post("/manifests", json={"reference": "X", "parcels": [
        parcel("ACME00000051")]}, headers=headers)
    assert (a.status_code, b.status_code) == (201, 201)


def test_manifest_reconciliation_view(world: World) -> None:
    manifest = world.announce("ACME00000060", "ACME00000061", reference="R5").json
    world.check_in("ACME00000060")
    view = world.carrier.get(f"/manifests/{manifest['id']}").json
    assert view["expected"] == 2 and view["checked_in"] == 1
    assert view["not_arrived"] == ["ACME00000061"]
    assert world.other_carrier.get(f"/manifests/{manifest['id']}").status_code == 404
    listing = world.carrier.get("/manifests").json["items"]
    assert [m["reference"] for m in listing] == ["R5"]


def test_only_carriers_announce(world: World) -> None:
    response = world.shopkeeper.post("/manifests", json={"reference": "S", "parcels": [
        parcel("ACME00000070")]})
    assert is_problem(response, 403, "forbidden")


def test_malformed_manifests_are_refused_whole(world: World) -> None:
    counts = row_counts(world.ctx)
    for body in ({}, {"reference": "Y", "parcels": []}, {"reference": "Y", "parcels": [
            {"tracking_number": "ACME00000080", "site": "bourg", "color": "red"}]}):
        assert is_problem(world.carrier.post("/manifests", json=body), 422, "invalid-request")
    raw = world.client.post("/api/v1/manifests", data="{not json",
                            headers={"Authorization": f"Bearer {world.carrier.token}",
                                     "Content-Type": "application/json"})
    assert is_problem(raw, 422, "validation-failed")
    assert row_counts(world.ctx) == counts
