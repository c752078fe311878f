"""The pages speak French first and English on request, from real message catalogs."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from tests.pages.support import Pages
from tests.support import World

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "relay_ops" / "translations" / "fr" / "LC_MESSAGES"
METHODS = [("relay_ops/web/pages/**.py", "python"),
           ("relay_ops/web/templates/pages/**.html", "jinja2")]


def _key(value: object) -> object:
    """A catalog id or string; plural ones (lists or tuples of forms) as tuples."""
    return tuple(value) if isinstance(value, list | tuple) else value


def _translated(message: Message) -> bool:
    """Every form has a text, and no entry is fuzzy (a fuzzy entry is left out of the .mo)."""
    forms = message.string if isinstance(message.string, tuple | list) else [message.string]
    return not message.fuzzy and all(forms)


def _po() -> dict[object, Message]:
    """Messages by their singular id (ngettext's too)."""
    with open(CATALOG / "messages.po", "rb") as f:
        return {(m.id[0] if isinstance(m.id, tuple | list) else m.id): m
                for m in read_po(f) if m.id}


def test_every_message_of_the_pages_has_a_french_translation() -> None:
    extracted = {
        message[0] if isinstance(message, tuple) else message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, keywords={"_": None, "gettext": None, "ngettext": (1, 2)})
    }
    assert len(extracted) > 200  # the extraction really read the templates and views
    catalog = _po()
    untranslated = sorted(m for m in extracted if m not in catalog or not _translated(catalog[m]))
    assert not untranslated, "run scripts/translations and translate: " + repr(untranslated)


def test_the_compiled_catalog_matches_its_source() -> None:
    """The .mo files are committed (no build step on a fresh checkout); they must be current."""
    with open(CATALOG / "messages.po", "rb") as f:
        source = read_po(f)
    buffer = io.BytesIO()
    write_mo(buffer, source)
    buffer.seek(0)
    expected = {_key(m.id): _key(m.string) for m in read_mo(buffer) if m.id}
    with open(CATALOG / "messages.mo", "rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    assert compiled == expected, "run scripts/translations to compile the catalogs"


def test_french_by_default_english_on_request(world: World) -> None:
    client = world.client.application.test_client()
    assert "Se connecter" in client.get("/login").get_data(as_text=True)
    english = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Sign in" in english.get_data(as_text=True) and "Se connecter" not in english.text


def test_the_language_chosen_on_the_page_wins(marie: Pages, world: World) -> None:
    response = marie.post("/lang/en", {"next": f"/shop/{world.shop_id}/scan"})
    assert response.status_code == 303 and response.location == f"/shop/{world.shop_id}/scan"
    page = marie.text(f"/shop/{world.shop_id}/scan")
    assert '<html lang="en">' in page and "Scan or type the parcel" in page
    world.announce("RR123456785FR")
    assert marie.scan(world.shop_id, "RR123456785FR")["title"] == "Checked in"
    marie.post("/lang/fr", {"next": "/"})
    assert "Scannez ou tapez" in marie.text(f"/shop/{world.shop_id}/scan")


def test_language_switch_refuses_to_send_people_elsewhere(marie: Pages) -> None:
    response = marie.post("/lang/en", {"next": "https://evil.example/"})
    assert response.location == "/"
