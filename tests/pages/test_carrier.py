from __future__ import annotations

import io

import pytest

from relay_ops.services import accounts
from relay_ops.services.principal import SYSTEM
from tests.pages.support import Pages
from tests.support import World

CSV = (
    "tracking_number,site,recipient_name,recipient_phone,recipient_email,size_class\n"
    "RR123456785FR,bourg,Jeanne Martin,+33612345678,,S\n"
    "\n"
    "BAD!,bourg,Louis Bernard,+33600000000,,S\n"
    "PARCELCSV00001,bourg,Anne Petit,,anne@example.org,M\n"
    "PARCELCSV00002,nowhere,Anne Petit,,anne@example.org,M\n"
)


@pytest.fixture
def acme(world: World) -> Pages:
    return Pages.carrier(world, accounts.issue_carrier_key(world.ctx, SYSTEM, "acme").token)


def _upload(pages: Pages, content: str, reference: str = "ROUND-1", **kwargs: bool):  # noqa: ANN202
    data = {"reference": reference, "file": (io.BytesIO(content.encode()), "round.csv")}
    return pages.post("/carrier/manifests/new", data, content_type="multipart/form-data",
                      **kwargs)


def test_upload_reports_each_rejected_line_by_its_csv_line(acme: Pages, world: World) -> None:
    response = _upload(acme, CSV)
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert "Manifeste ROUND-1 : 2 acceptés, 2 refusés" in html
    # Line numbers count the header and the blank line, as a spreadsheet shows them.
    assert ('<td data-label="Ligne">4</td><td data-label="Numéro de suivi">BAD!</td>'
            '<td data-label="Motif">invalid-tracking-number') in html
    assert ('<td data-label="Ligne">6</td><td data-label="Numéro de suivi">PARCELCSV00002</td>'
            '<td data-label="Motif">unknown-site') in html


def test_upload_from_the_page_script_gets_the_report_as_json(acme: Pages) -> None:
    response = _upload(acme, CSV, json=True)
    assert response.status_code == 201
    body = response.get_json()
    assert body["ok"] is True and 'id="line-report"' in body["html"]


def test_sending_the_same_round_again_creates_nothing_twice(acme: Pages) -> None:
    _upload(acme, CSV)
    again = _upload(acme, CSV)
    assert again.status_code == 200
    assert "rien n'a été créé deux fois" in again.get_data(as_text=True)


def test_a_file_without_the_required_columns_is_refused(acme: Pages) -> None:
    response = _upload(acme, "number;where\nRR123456785FR;bourg\n")
    assert response.status_code == 422
    assert "Colonne(s) manquante(s) : tracking_number, site" in response.get_data(as_text=True)


def test_semicolon_csv_from_a_french_spreadsheet_is_read(acme: Pages) -> None:
    content = CSV.replace(",", ";")
    response = _upload(acme, content, reference="ROUND-SEMI")
    assert "2 acceptés, 2 refusés" in response.get_data(as_text=True)


def test_manifest_page_shows_the_reconciliation(acme: Pages, world: World) -> None:
    _upload(acme, CSV)
    world.check_in("RR123456785FR")
    world.check_in("PARCELUNANNOUNCED", accept_unannounced=True)
    home = acme.text("/carrier")
    assert "ROUND-1" in home
    page = acme.text("/carrier/manifests/1")
    assert '<dd id="count-expected">2</dd>' in page
    assert '<dd id="count-checked-in">1</dd>' in page
    assert '<dd id="count-missing">1</dd>' in page and "PARCELCSV00001" in page
    # The site's name, not its internal code.
    assert '<td data-label="Site">Shop bourg</td>' in page


def test_another_carriers_manifest_is_not_found(acme: Pages, world: World) -> None:
    _upload(acme, CSV)
    other = Pages.carrier(world, accounts.issue_carrier_key(world.ctx, SYSTEM, "other").token)
    assert other.get("/carrier/manifests/1").status_code == 404
    assert "ROUND-1" not in other.text("/carrier")
