"""Operator commands for the season's shape: ``relay-ops demand-index ...``
(``services/demand_index.py``; docs/forecast.md, "The season's shape")."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import click

from relay_ops.cli_common import ReportDomainErrors, ctx
from relay_ops.domain.errors import ValidationFailed
from relay_ops.services import demand_index
from relay_ops.services.principal import SYSTEM

DAY = click.DateTime(formats=["%Y-%m-%d"])


@click.group("demand-index", cls=ReportDomainErrors)
def demand_index_group() -> None:
    """The season's demand factor per day (1.0: an ordinary day), network-wide."""


def period(command: Callable[..., None]) -> Callable[..., None]:
    """The command's ``--from`` and ``--to`` days (both included), as ``first`` and ``last``."""
    def as_day(_context: click.Context, _param: click.Parameter, value: datetime) -> date:
        return value.date()

    command = click.option("--to", "last", type=DAY, required=True, callback=as_day)(command)
    return click.option("--from", "first", type=DAY, required=True, callback=as_day)(command)


@demand_index_group.command("show")
@period
def show(first: date, last: date) -> None:
    """The declared days from FIRST to LAST, both included (JSON)."""
    items = demand_index.declared(ctx(), SYSTEM, first, last)
    click.echo(json.dumps(items, indent=2))


@demand_index_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="where the factors come from, kept with them")
def import_csv(path: Path, source: str | None) -> None:
    """Declare the days of a CSV file of `day,factor` lines (a header line is allowed), all
    or none."""
    days = read_days(path)
    items = demand_index.declare(ctx(), SYSTEM, days, source or path.name)
    click.echo(f"{len(items)} day(s) declared, {items[0]['day']} to {items[-1]['day']}")


@demand_index_group.command("from-last-year")
@period
def from_last_year(first: date, last: date) -> None:
    """Declare FIRST to LAST from the network's own first attempts 52 weeks before."""
    items = demand_index.from_last_year(ctx(), SYSTEM, first, last)
    top = max(items, key=lambda item: item["factor"])
    click.echo(f"{len(items)} day(s) declared; the highest: {top['day']} at {top['factor']}")


@demand_index_group.command("withdraw")
@period
def withdraw(first: date, last: date) -> None:
    """Forget the factors from FIRST to LAST: ordinary days again."""
    gone = demand_index.withdraw(ctx(), SYSTEM, first, last)
    click.echo(f"{gone} day(s) withdrawn")


def read_days(path: Path) -> list[tuple[date, float]]:
    """The file's `day,factor` lines; a line that is neither (but a first header) is refused
    with its number."""
    days = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and row[0].strip().lower() == "day"):
                continue
            try:
                day, factor = row
                days.append((date.fromisoformat(day.strip()), float(factor)))
            except ValueError:
                raise ValidationFailed(f"{path.name} line {number}: not `day,factor` "
                                       "(2026-12-01,1.4)") from None
    return days
