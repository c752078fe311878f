import pytest

from relay_ops.domain.errors import InvalidTrackingNumber
from relay_ops.domain.tracking import s10_check_digit, validate


def test_upu_s10_check_digit_example_from_the_standard() -> None:
    # The S10 worked example: serial 47312482 has check digit 9.
    assert s10_check_digit("47312482") == 9
    assert validate("RR473124829FR") == "RR473124829FR"


@pytest.mark.parametrize("serial,check", [("00000000", 5), ("00000008", 0)])
def test_s10_special_remainders(serial: str, check: int) -> None:
    assert s10_check_digit(serial) == check


def test_scanned_text_is_normalised() -> None:
    assert validate(" rr 473-124-829 fr ") == "RR473124829FR"


def test_s10_with_a_wrong_check_digit_is_refused() -> None:
    with pytest.raises(InvalidTrackingNumber) as err:
        validate("RR473124828FR")
    assert "check digit" in err.value.detail


@pytest.mark.parametrize("number", ["6A12345678901", "1Z999AA10123456784", "X" * 35])
def test_other_carriers_formats_are_accepted(number: str) -> None:
    assert validate(number) == number.upper()


@pytest.mark.parametrize("number", ["", "ABC123", "X" * 36, "ABCD*12345", "colis 42"])
def test_garbage_is_refused(number: str) -> None:
    with pytest.raises(InvalidTrackingNumber):
        validate(number)
