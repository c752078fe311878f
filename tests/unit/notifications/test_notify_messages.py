from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from relay_ops.notifications import gsm
from relay_ops.notifications.catalog_en import EN
from relay_ops.notifications.catalog_fr import FR
from relay_ops.notifications.messages import (
    CATALOGS,
    Channel,
    MessageContext,
    MessageKind,
    MissingContextError,
    catalog_for,
    format_datetime,
    placeholders,
    render,
)

# 1 December 2026 17:00 UTC is 18:00 in Paris (winter time).
DEADLINE = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
PICKED_UP_AT = datetime(2026, 11, 27, 9, 5, tzinfo=UTC)


def a_context(**overrides: object) -> MessageContext:
    """Realistic values: a rural tobacconist relay with a long-ish address and opening hours."""
    ctx = MessageContext(
        tracking_number="6A12345678901",
        carrier_name="Colissimo",
        site_name="Tabac-Presse Le Central",
        site_address="12 rue de la Mairie\n44170 Nozay",
        opening_hours="lun.-sam. 8:00-19:30, dim. 9:00-12:30",
        tracking_url="https://relais.example.fr/t/9fQ2xL7bVw3kT8mZ",
        deadline=DEADLINE,
        pickup_code="482913",
        qr_url="https://relais.example.fr/qr/9fQ2xL7bVw3kT8mZ.png",
        picked_up_at=PICKED_UP_AT,
        previous_site_name="Consigne Mairie de Nozay",
        dropped_off_at=PICKED_UP_AT,
        collected_at=DEADLINE,
        courier_name="Marcel Petit",
        delivery_day=date(2026, 12, 1),
        delivered_at=DEADLINE,
        expected_day=date(2026, 12, 3),
    )
    return replace(ctx, **overrides)


ALL_COMBINATIONS = [
    (kind, channel, locale)
    for kind in MessageKind
    for channel in Channel
    for locale in ("fr", "en")
]


# --- dates ---------------------------------------------------------------------------------


def test_french_date_is_written_the_french_way_in_paris_time() -> None:
    assert format_datetime(DEADLINE, FR) == "mardi 1er décembre 2026 à 18:00"
    assert format_datetime(DEADLINE, FR, with_year=False) == "mardi 1er décembre à 18:00"


def test_english_date_is_written_the_british_way_in_paris_time() -> None:
    assert format_datetime(DEADLINE, EN) == "Tuesday 1 December 2026 at 18:00"
    assert format_datetime(DEADLINE, EN, with_year=False) == "Tuesday 1 December at 18:00"


def test_days_other_than_the_first_are_plain_numbers() -> None:
    assert format_datetime(DEADLINE + timedelta(days=1), FR) == "mercredi 2 décembre 2026 à 18:00"


def test_summer_time_is_applied() -> None:
    # 15 August: Paris is UTC+2, and the datetime may come in any time zone.
    in_new_york = datetime(2026, 8, 15, 10, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert format_datetime(in_new_york, FR) == "samedi 15 août 2026 à 16:30"


def test_context_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        a_context(deadline=datetime(2026, 12, 1, 18, 0))


# --- locale --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("fr", "fr"),
        ("en", "en"),
        ("en-GB", "en"),
        ("fr_FR", "fr"),
        ("EN", "en"),
        ("de", "fr"),
        ("", "fr"),
    ],
)
def test_locale_falls_back_to_french(locale: str, expected: str) -> None:
    assert catalog_for(locale).code == expected


def test_french_is_the_language_of_an_unknown_locale() -> None:
    message = render(MessageKind.READY, Channel.EMAIL, "es", a_context())
    assert message.subject == "Votre colis est disponible : Tabac-Presse Le Central"


# --- catalogs ------------------------------------------------------------------------------


def test_every_locale_has_the_same_messages_with_the_same_placeholders() -> None:
    reference = CATALOGS["fr"].messages
    for catalog in CATALOGS.values():
        assert catalog.messages.keys() == reference.keys(), catalog.code
        for key, text in catalog.messages.items():
            assert placeholders(text) == placeholders(reference[key]), (catalog.code, key)


def test_sms_templates_use_only_gsm_characters() -> None:
    # Otherwise to_gsm would silently misspell our own words ("prêt" -> "pret").
    for catalog in CATALOGS.values():
        for key, text in catalog.messages.items():
            if ".sms" in key:
                assert gsm.is_gsm(text), (catalog.code, key, [c for c in text if not gsm.is_gsm(c)])


def test_pickup_code_never_appears_in_a_subject() -> None:
    for catalog in CATALOGS.values():
        for key, text in catalog.messages.items():
            if key.endswith(".subject"):
                assert "pickup_code" not in placeholders(text), (catalog.code, key)


# --- every kind, channel and locale --------------------------------------------------------


@pytest.mark.parametrize(("kind", "channel", "locale"), ALL_COMBINATIONS)
def test_every_message_names_the_parcel_the_site_and_the_tracking_link(
    kind: MessageKind, channel: Channel, locale: str
) -> None:
    message = render(kind, channel, locale, a_context())
    assert "6A12345678901" in message.body
    assert "Tabac-Presse Le Central" in message.body
    assert "https://relais.example.fr/t/9fQ2xL7bVw3kT8mZ" in message.body
    assert "{" not in message.body and "}" not in message.body
    if channel is Channel.EMAIL:
        assert message.subject
        assert "\n" not in message.subject
    else:
        assert message.subject is None


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("kind", [MessageKind.READY, MessageKind.REMINDER, MessageKind.REROUTED])
def test_messages_that_invite_a_pickup_carry_code_deadline_and_address(
    kind: MessageKind, locale: str
) -> None:
    deadline_short = (
        "mardi 1er décembre à 18:00" if locale == "fr" else "Tuesday 1 December at 18:00"
    )
    deadline_long = format_datetime(DEADLINE, catalog_for(locale))

    email = render(kind, Channel.EMAIL, locale, a_context())
    for expected in (
        "482913",
        deadline_long,
        "12 rue de la Mairie\n44170 Nozay",
        "lun.-sam. 8:00-19:30, dim. 9:00-12:30",
        "https://relais.example.fr/qr/9fQ2xL7bVw3kT8mZ.png",
    ):
        assert expected in email.body, expected

    sms = render(kind, Channel.SMS, locale, a_context())
    for expected in ("482913", deadline_short, "12 rue de la Mairie, 44170 Nozay"):
        assert expected in sms.body, expected


def test_french_ready_email_reads_as_written() -> None:
    message = render(MessageKind.READY, Channel.EMAIL, "fr", a_context())
    assert message.subject == "Votre colis est disponible : Tabac-Presse Le Central"
    assert message.body.startswith(
        "Bonjour,\n\nVotre colis Colissimo n° 6A12345678901 est disponible au point de retrait"
        " suivant :\n\nTabac-Presse Le Central\n12 rue de la Mairie\n44170 Nozay\n"
    )
    assert "Code de retrait : 482913\n" in message.body
    assert "jusqu'au mardi 1er décembre 2026 à 18:00." in message.body
    assert message.body.endswith("RelayOps - message automatique, merci de ne pas y répondre.\n")


def test_english_ready_sms_reads_as_written() -> None:
    message = render(MessageKind.READY, Channel.SMS, "en", a_context())
    assert message.body == (
        "Colissimo parcel 6A12345678901 ready at Tabac-Presse Le Central, 12 rue de la Mairie,"
        " 44170 Nozay. Hours: lun.-sam. 8:00-19:30, dim. 9:00-12:30. Pickup code: 482913."
        " Collect by Tuesday 1 December at 18:00."
        " QR and tracking: https://relais.example.fr/t/9fQ2xL7bVw3kT8mZ"
    )


def test_expired_message_gives_the_passed_deadline_and_no_code() -> None:
    message = render(MessageKind.EXPIRED, Channel.EMAIL, "fr", a_context())
    assert "a expiré le mardi 1er décembre 2026 à 18:00" in message.body
    assert "482913" not in message.body


def test_picked_up_message_gives_the_pickup_time() -> None:
    email = render(MessageKind.PICKED_UP, Channel.EMAIL, "en", a_context())
    assert "collected on Friday 27 November 2026 at 10:05" in email.body
    sms = render(MessageKind.PICKED_UP, Channel.SMS, "fr", a_context())
    assert "retiré le vendredi 27 novembre à 10:05" in sms.body


def test_rerouted_message_names_old_and_new_site() -> None:
    message = render(MessageKind.REROUTED, Channel.EMAIL, "fr", a_context())
    assert "prévu chez Consigne Mairie de Nozay" in message.body
    assert "Code de retrait : 482913" in message.body


def test_a_parcel_kept_at_the_depot_tells_the_day_it_arrives() -> None:
    french = render(MessageKind.DEPOT_HOLD, Channel.SMS, "fr", a_context())
    assert "jeudi 3 décembre" in french.body and "Colissimo" in french.body
    english = render(MessageKind.DEPOT_HOLD, Channel.EMAIL, "en", a_context())
    assert "Thursday 3 December" in english.body and "482913" not in english.body
    with pytest.raises(MissingContextError):
        render(MessageKind.DEPOT_HOLD, Channel.SMS, "fr", a_context(expected_day=None))


def test_rerouted_before_arrival_promises_the_code_later() -> None:
    ctx = a_context(pickup_code=None, qr_url=None, deadline=None)
    email = render(MessageKind.REROUTED, Channel.EMAIL, "fr", ctx)
    assert "Vous recevrez votre code de retrait dès son arrivée." in email.body
    assert email.subject == "Votre colis sera livré à un autre point : Tabac-Presse Le Central"
    sms = render(MessageKind.REROUTED, Channel.SMS, "en", ctx)
    assert "Code sent on arrival" in sms.body


@pytest.mark.parametrize(
    ("kind", "missing", "field"),
    [
        (MessageKind.READY, {"pickup_code": None}, "pickup_code"),
        (MessageKind.READY, {"qr_url": None}, "qr_url"),
        (MessageKind.REMINDER, {"deadline": None}, "deadline"),
        (MessageKind.EXPIRED, {"deadline": None}, "deadline"),
        (MessageKind.PICKED_UP, {"picked_up_at": None}, "picked_up_at"),
        (MessageKind.REROUTED, {"previous_site_name": None}, "previous_site_name"),
        (MessageKind.READY, {"opening_hours": ""}, "opening_hours"),
    ],
)
def test_a_message_without_what_it_needs_is_refused(
    kind: MessageKind, missing: dict[str, object], field: str
) -> None:
    with pytest.raises(MissingContextError, match=field):
        render(kind, Channel.EMAIL, "fr", a_context(**missing))


def test_a_subject_stays_on_one_line_whatever_the_site_name() -> None:
    ctx = a_context(site_name="Tabac-Presse\nLe Central ")
    message = render(MessageKind.READY, Channel.EMAIL, "fr", ctx)
    assert message.subject == "Votre colis est disponible : Tabac-Presse Le Central"


def test_braces_in_data_are_shown_not_interpreted() -> None:
    message = render(MessageKind.READY, Channel.SMS, "fr", a_context(site_name="Relais {site}"))
    assert "Relais {site}" in message.body


# --- SMS length ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "channel", "locale"), [c for c in ALL_COMBINATIONS if c[1] is Channel.SMS]
)
def test_realistic_sms_fits_two_gsm_parts_with_full_details(
    kind: MessageKind, channel: Channel, locale: str
) -> None:
    message = render(kind, channel, locale, a_context())
    length = gsm.measure(message.body)
    assert length.encoding is gsm.SmsEncoding.GSM7
    assert length.parts <= 2, (length, message.body)
    if kind in (MessageKind.READY, MessageKind.REMINDER, MessageKind.REROUTED):
        assert "8:00-19:30" in message.body, "full variant expected for realistic data"


LONG_BUT_REAL = {
    "site_name": "Boulangerie-Pâtisserie Aux Délices de la Forêt du Gâvre",
    "site_address": "Zone artisanale de la Châtaigneraie, 3 impasse des Ébénistes\n44130 Blain",
    "opening_hours": "mar.-ven. 7:00-13:00 et 15:30-19:30, sam. 7:00-19:00, dim. 7:30-12:30",
    "carrier_name": "Mondial Relay",
}


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("kind", [MessageKind.READY, MessageKind.REMINDER, MessageKind.REROUTED])
def test_long_site_details_fall_back_to_the_compact_sms(kind: MessageKind, locale: str) -> None:
    full_would_be_too_long = a_context(**LONG_BUT_REAL)
    message = render(kind, Channel.SMS, locale, full_would_be_too_long)
    length = gsm.measure(message.body)
    assert length.encoding is gsm.SmsEncoding.GSM7
    assert length.parts <= 2, (length, message.body)
    assert "7:00-13:00" not in message.body, "opening hours are the first detail dropped"
    assert "482913" in message.body
    assert "https://relais.example.fr/t/9fQ2xL7bVw3kT8mZ" in message.body


def test_non_gsm_characters_in_data_are_respelled_for_sms() -> None:
    message = render(MessageKind.EXPIRED, Channel.SMS, "fr", a_context(**LONG_BUT_REAL))
    assert "Boulangerie-Patisserie Aux Délices de la Foret du Gavre" in message.body
    assert gsm.is_gsm(message.body)


def test_email_keeps_every_accent() -> None:
    message = render(MessageKind.READY, Channel.EMAIL, "fr", a_context(**LONG_BUT_REAL))
    assert "Boulangerie-Pâtisserie Aux Délices de la Forêt du Gâvre" in message.body
    assert "Châtaigneraie, 3 impasse des Ébénistes\n44130 Blain" in message.body


# --- a parcel grouped with others (same recipient, same shop, one code) ---------------------


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("channel", list(Channel))
def test_a_grouped_parcel_says_which_parcels_share_its_code(
    channel: Channel, locale: str
) -> None:
    message = render(MessageKind.READY, channel, locale,
                     a_context(other_parcels=("6A99999999990",)))
    assert "6A99999999990" in message.body and "482913" in message.body
    same = "code et lieu identiques" if channel is Channel.SMS and locale == "fr" else (
        "même code, même lieu" if locale == "fr" else "same code, same place")
    assert same in message.body
    assert ("avec le colis 6A9" if locale == "fr" else "with parcel 6A9") in message.body


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_several_other_parcels_are_named_in_the_plural(locale: str) -> None:
    message = render(MessageKind.READY, Channel.SMS, locale,
                     a_context(other_parcels=("6A99999999990", "6A99999999991")))
    assert "6A99999999990, 6A99999999991" in message.body
    assert ("avec les colis 6A9" if locale == "fr" else "with parcels 6A9") in message.body


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_a_grouped_sms_keeps_the_two_part_rule(locale: str) -> None:
    realistic = render(MessageKind.READY, Channel.SMS, locale,
                       a_context(other_parcels=("6A99999999990",)))
    assert gsm.measure(realistic.body).parts <= 2, realistic.body
    assert "8:00-19:30" in realistic.body, "full variant expected for realistic data"
    long = render(MessageKind.READY, Channel.SMS, locale,
                  a_context(other_parcels=("6A99999999990", "6A99999999991"), **LONG_BUT_REAL))
    length = gsm.measure(long.body)
    assert length.encoding is gsm.SmsEncoding.GSM7 and length.parts <= 2, long.body
    assert "482913" in long.body and "6A99999999991" in long.body


def test_the_grouping_phrases_are_gsm_text() -> None:
    # They go into SMS, though their keys do not end in ".sms".
    for catalog in CATALOGS.values():
        for key in ("ready_grouped.with_one", "ready_grouped.with_many"):
            assert gsm.is_gsm(catalog.messages[key]), (catalog.code, key)


@pytest.mark.parametrize(("locale", "sentence"), [
    ("fr", "le délai de retrait est plus court que d'habitude. Merci de venir avant le"
           " mardi 1er décembre 2026 à 18:00."),
    ("en", "the collection period is shorter than usual. Please come before Tuesday"
           " 1 December 2026 at 18:00."),
])
def test_a_shortened_holding_period_is_explained_in_the_ready_email(
    locale: str, sentence: str
) -> None:
    shortened = a_context(holding_shortened=True)
    body = render(MessageKind.READY, Channel.EMAIL, locale, shortened).body
    assert " ".join(sentence.split()) in " ".join(body.split())
    plain = render(MessageKind.READY, Channel.EMAIL, locale, a_context()).body
    assert "shorter than usual" not in plain and "plus court" not in plain
    grouped = replace(shortened, other_parcels=("6A00000000001",))
    assert "plus court" in render(MessageKind.READY, Channel.EMAIL, "fr", grouped).body
    # The SMS keeps its two parts: the date only.
    assert render(MessageKind.READY, Channel.SMS, locale, shortened).body == render(
        MessageKind.READY, Channel.SMS, locale, a_context()).body
    # Other messages do not carry it.
    reminder = render(MessageKind.REMINDER, Channel.EMAIL, locale, shortened).body
    assert "plus court" not in reminder and "shorter than usual" not in reminder
