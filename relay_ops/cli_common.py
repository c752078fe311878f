"""What the operator commands share: the app's context, and a refused command reports the
rule it broke."""

from __future__ import annotations

from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from relay_ops.domain.errors import DomainError
from relay_ops.services.context import Ctx


def ctx() -> Ctx:
    return current_app.extensions["relay_ops"]


class ReportDomainErrors(AppGroup):
    """A refused command prints the rule it broke and exits 1, without a traceback."""

    def invoke(self, context: click.Context) -> Any:
        try:
            return super().invoke(context)
        except DomainError as err:
            raise click.ClickException(f"{err.slug}: {err.detail}") from None
