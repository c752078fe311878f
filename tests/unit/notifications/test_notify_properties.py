"""Properties that must hold for any input, not only the examples we thought of."""

from hypothesis import given
from hypothesis import strategies as st

from relay_ops.notifications.gsm import is_gsm, measure, to_gsm
from relay_ops.notifications.recipients import normalize_phone

separators = st.sampled_from(["", " ", ".", "-", "\u00a0"])
french_subscriber = st.from_regex(r"[1-9][0-9]{8}", fullmatch=True)


@given(french_subscriber, st.lists(separators, min_size=9, max_size=9), st.booleans())
def test_a_french_number_however_typed_normalises_to_one_e164(
    subscriber: str, gaps: list[str], international: bool
) -> None:
    prefix = "+33" if international else "0"
    typed = prefix + "".join(digit + gap for digit, gap in zip(subscriber, gaps, strict=True))
    assert normalize_phone(typed) == "+33" + subscriber


@given(st.text())
def test_to_gsm_always_yields_gsm_text(text: str) -> None:
    respelled = to_gsm(text)
    assert is_gsm(respelled)
    assert measure(respelled).encoding == "gsm7"


@given(st.text())
def test_more_text_never_needs_fewer_parts(text: str) -> None:
    assert measure(text + "a").parts >= measure(text).parts
