"""The KR-CU16 frames, byte for byte (docs/lock-boards.md)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.agent.kerong import (
    BoardModel,
    KerongConfig,
    StateReply,
    address,
    checksum,
    next_reply,
    parse_request,
    parse_state,
    state_frame,
    status_frame,
    unlock_frame,
)


def test_the_documented_frames() -> None:
    assert unlock_frame(0, 1) == bytes.fromhex("0200310336")
    assert status_frame(0) == bytes.fromhex("0200300335")


def test_the_checksum_is_the_byte_sum_modulo_256() -> None:
    assert checksum(bytes.fromhex("02003103")) == 0x36
    # board 9 lock 16: 02 + 9F + 31 + 03 = 0xD5; a sum past 255 wraps
    assert unlock_frame(9, 16) == bytes.fromhex("029F3103D5")
    assert checksum(bytes([0xFF, 0xFF, 0x03])) == 0x01


def test_board_in_the_high_nibble_lock_index_in_the_low() -> None:
    assert address(0, 1) == 0x00
    assert address(1, 1) == 0x10
    assert address(2, 5) == 0x24
    assert unlock_frame(2, 5) == bytes([0x02, 0x24, 0x31, 0x03, (0x02 + 0x24 + 0x31 + 0x03)])
    assert status_frame(3) == bytes([0x02, 0x30, 0x30, 0x03, 0x65])
    for board, lock in [(-1, 1), (16, 1), (0, 0), (0, 17)]:
        with pytest.raises(ValueError):
            address(board, lock)


def test_a_state_reply_is_nine_bytes_locks_then_infrared() -> None:
    frame = state_frame(1, hooks=0b10000000_00000101, infrared=0b00000001_00000010)
    assert frame == bytes([0x02, 0x10, 0x35, 0x05, 0x80, 0x02, 0x01, 0x03,
                           (0x02 + 0x10 + 0x35 + 0x05 + 0x80 + 0x02 + 0x01 + 0x03) & 0xFF])
    reply = parse_state(frame)
    assert reply == StateReply(board=1, hooks=0x8005, infrared=0x0102)
    assert [n for n in range(1, 17) if reply.hook_bit(n)] == [1, 3, 16]
    assert [n for n in range(1, 17) if reply.ir_bit(n)] == [2, 9]


def test_a_reply_with_a_wrong_byte_is_refused() -> None:
    good = state_frame(0, 0xFFFF, 0)
    for index in range(len(good)):
        bad = bytearray(good)
        bad[index] ^= 0x40
        assert parse_state(bytes(bad)) is None, index
    assert parse_state(good[:-1]) is None


def test_polarity_and_infrared_per_model() -> None:
    reply = StateReply(board=0, hooks=0b01, infrared=0b01)
    usual = BoardModel()
    inverted = BoardModel(lock_bit_set="open", ir_bit_set="empty")
    no_ir = BoardModel(has_ir=False)
    assert (usual.door(reply, 1), usual.door(reply, 2)) == ("closed", "open")
    assert (inverted.door(reply, 1), inverted.door(reply, 2)) == ("open", "closed")
    assert (usual.occupied(reply, 1), usual.occupied(reply, 2)) == (True, False)
    assert (inverted.occupied(reply, 1), inverted.occupied(reply, 2)) == (False, True)
    assert no_ir.occupied(reply, 1) is None


def test_requests_parse_back() -> None:
    assert parse_request(unlock_frame(2, 5)) == (2, 5, 0x31)
    assert parse_request(status_frame(0)) == (0, 1, 0x30)
    assert parse_request(bytes.fromhex("0200310337")) is None


def test_resync_after_garbage_and_partial_frames() -> None:
    good = state_frame(2, 0x1234, 0x0F0F)
    buffer = bytearray(b"\x00\xff" + good[:4] + b"\x02\x02" + good)
    assert next_reply(buffer) == parse_state(good)
    assert buffer == bytearray()
    partial = bytearray(good[:6])
    assert next_reply(partial) is None
    assert partial == bytearray(good[:6])  # kept for the rest to arrive
    partial += good[6:]
    assert next_reply(partial) == parse_state(good)


@given(
    noise=st.binary(max_size=40),
    board=st.integers(0, 15),
    hooks=st.integers(0, 0xFFFF),
    infrared=st.integers(0, 0xFFFF),
)
def test_a_reply_after_any_noise_is_found(noise: bytes, board: int, hooks: int,
                                          infrared: int) -> None:
    """Noise may hold a false start but never a whole valid reply first, unless it made one:
    then that one is found. Either way the real reply is found next."""
    frame = state_frame(board, hooks, infrared)
    buffer = bytearray(noise + frame)
    found = [next_reply(buffer), next_reply(buffer)]
    assert StateReply(board, hooks, infrared) in found


def test_configuration_maps_compartments_to_board_and_lock() -> None:
    config = KerongConfig.from_dict({
        "port": "/dev/ttyUSB0",
        "boards": [{"address": 0}, {"address": 1, "model": "kr-cu16-silent",
                                    "lock_bit_set": "open"}],
    })
    assert config.compartments[1] == (0, 1)
    assert config.compartments[16] == (0, 16)
    assert config.compartments[17] == (1, 1)
    assert len(config.compartments) == 32
    assert config.boards[1].model.unlock_answers is False
    assert config.boards[1].model.lock_bit_set == "open"
    explicit = KerongConfig.from_dict({
        "port": "x", "boards": [{"address": 3}], "compartments": {"7": [3, 16]},
        "open_confirm_s": 0.5, "retries": 0,
    })
    assert dict(explicit.compartments) == {7: (3, 16)}
    assert (explicit.open_confirm_s, explicit.retries) == (0.5, 0)


@pytest.mark.parametrize("bad", [
    {"port": "x", "boards": [{"address": 0}, {"address": 0}]},
    {"port": "x", "boards": [{"address": 0}], "compartments": {"1": [1, 1]}},
    {"port": "x", "boards": [{"address": 0}], "compartments": {"1": [0, 17]}},
    {"port": "x", "boards": [{"address": 0}], "compartments": {"1": [0, 1], "2": [0, 1]}},
    {"port": "x", "boards": [{"address": 0, "model": "kr-cu99"}]},
    {"port": "x", "boards": [{"address": 0, "lock_bit_set": "sideways"}]},
    {"port": "x", "boards": [{"address": 16}]},
    {"port": "x", "boards": [{"address": 0}], "reply_timeout": 1},
    {"port": "x", "boards": [{"address": 0, "polarity": "open"}]},
])
def test_a_wrong_configuration_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        KerongConfig.from_dict(bad)
