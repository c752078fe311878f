import pytest

from relay_ops.notifications.gsm import SmsEncoding, SmsLength, is_gsm, measure, to_gsm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsLength(SmsEncoding.GSM7, 0, 1)),
        ("a" * 160, SmsLength(SmsEncoding.GSM7, 160, 1)),
        ("a" * 161, SmsLength(SmsEncoding.GSM7, 161, 2)),
        ("a" * 306, SmsLength(SmsEncoding.GSM7, 306, 2)),
        ("a" * 307, SmsLength(SmsEncoding.GSM7, 307, 3)),
        ("€" * 80, SmsLength(SmsEncoding.GSM7, 160, 1)),  # extension characters cost two
        ("é" * 160, SmsLength(SmsEncoding.GSM7, 160, 1)),
        ("ê" * 70, SmsLength(SmsEncoding.UCS2, 70, 1)),
        ("ê" + "a" * 70, SmsLength(SmsEncoding.UCS2, 71, 2)),
        ("a" * 134, SmsLength(SmsEncoding.GSM7, 134, 1)),
        ("😀" * 35, SmsLength(SmsEncoding.UCS2, 70, 1)),  # surrogate pairs cost two units
    ],
)
def test_measure(text: str, expected: SmsLength) -> None:
    assert measure(text) == expected


def test_an_escape_sequence_is_not_split_between_parts() -> None:
    # 152 plain characters then "€": the euro sign cannot straddle parts 1 and 2.
    text = "a" * 152 + "€" + "a" * 152
    assert measure(text).units == 306
    assert measure(text).parts == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Forêt", "Foret"),
        ("Maçon", "Macon"),
        ("À l’Épicerie « Chez Zoé »", 'A l\'Épicerie " Chez Zoé "'),
        ("Cœur", "Coeur"),
        ("déjà où après", "déjà où après"),
        ("9h\u202f–\u00a012h", "9h - 12h"),
        ("東京", "??"),
    ],
)
def test_to_gsm_respells_only_what_gsm_lacks(text: str, expected: str) -> None:
    assert to_gsm(text) == expected
    assert is_gsm(to_gsm(text))
