"""The credential changes a batch of locker events notes, synced once at the batch's end: in
the order they happened, the last change of a credential or reservation wins."""

from __future__ import annotations

from relay_ops.db.models import PickupCredential
from relay_ops.services.locker_sync import SyncBatch


def credential(id_: int) -> PickupCredential:
    return PickupCredential(id=id_)


def test_a_credential_added_then_removed_in_one_batch_is_only_removed() -> None:
    batch, pin = SyncBatch(), credential(1)
    batch.note([pin], [], [], [], False)
    batch.note([], [pin], [], [], False)
    assert (list(batch.added), list(batch.removed)) == ([], [1])


def test_a_reservation_released_then_made_again_is_sent_not_revoked() -> None:
    batch = SyncBatch()
    entry = {"reservation_id": "dep-1", "compartment": 3}
    batch.note([], [], [entry], [], False)
    batch.note([], [], [], ["dep-1"], False)
    assert (batch.reservations, list(batch.released)) == ({}, ["dep-1"])
    batch.note([], [], [entry], [], False)
    assert (batch.reservations, list(batch.released)) == ({"dep-1": entry}, [])


def test_a_restored_batch_forgets_what_a_failed_event_noted() -> None:
    batch = SyncBatch()
    batch.note([credential(1)], [], [], [], False)
    saved = batch.copy()
    batch.note([credential(2)], [credential(1)], [], ["col-9"], True)
    batch.restore(saved)
    assert (list(batch.added), batch.removed, batch.released, batch.force_full) == (
        [1], {}, {}, False)
    assert batch.changed and not SyncBatch().changed
