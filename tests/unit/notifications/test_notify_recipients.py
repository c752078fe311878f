import pytest

from relay_ops.notifications.errors import InvalidRecipient, PermanentSendError
from relay_ops.notifications.recipients import mask, normalize_phone, validate_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("06-12-34-56-78", "+33612345678"),
        ("07\u00a012\u00a034\u00a056\u00a078", "+33712345678"),
        ("02 40 12 34 56", "+33240123456"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        ("+330612345678", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        (" +44 7911 123456 ", "+447911123456"),
        ("+49 151 23456789", "+4915123456789"),
        ("+590 690 12 34 56", "+590690123456"),
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "612345678",  # no trunk 0 and no +: French or foreign, it cannot be told
        "33612345678",  # no +: refused rather than guessed
        "06 12 34 56 7",
        "06 12 34 56 789",
        "0 12 34 56 78",
        "+33 6 12 34 56",
        "+33 6 12 34 56 78 9",
        "+0 612345678",
        "+1234567",  # too short for E.164
        "+1234567890123456",  # too long for E.164
        "06 12 AB 56 78",
        "tel:+33612345678",
    ],
)
def test_anything_else_is_an_invalid_recipient(raw: str) -> None:
    with pytest.raises(InvalidRecipient):
        normalize_phone(raw)


def test_invalid_recipient_is_permanent() -> None:
    assert issubclass(InvalidRecipient, PermanentSendError)


def test_the_error_does_not_repeat_the_whole_number() -> None:
    with pytest.raises(InvalidRecipient) as caught:
        normalize_phone("06 12 34 56 7")
    assert "06 12 34 56 7" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("marie.dupont@example.fr", "marie.dupont@example.fr"),
        ("  j+relay@mail.example.co.uk ", "j+relay@mail.example.co.uk"),
        ("o'neil@example.com", "o'neil@example.com"),
    ],
)
def test_valid_email_addresses_are_kept(raw: str, expected: str) -> None:
    assert validate_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "marie.dupont",
        "marie@",
        "@example.fr",
        "marie@localhost",
        "marie..dupont@example.fr",
        ".marie@example.fr",
        "marie dupont@example.fr",
        "marie@exa mple.fr",
        "marie@example.fr\r\nBcc: everyone@example.fr",  # header injection
        "marie@-example.fr",
        "élodie@example.fr",  # needs SMTPUTF8, which the sender does not negotiate
        "a" * 65 + "@example.fr",
        "marie@" + "a" * 250 + ".fr",
    ],
)
def test_malformed_email_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRecipient):
        validate_email(raw)


@pytest.mark.parametrize(
    ("recipient", "masked"),
    [("marie.dupont@example.fr", "m***@example.fr"), ("+33612345678", "+336***78"), ("06", "***")],
)
def test_mask_keeps_too_little_to_contact_anyone(recipient: str, masked: str) -> None:
    assert mask(recipient) == masked
