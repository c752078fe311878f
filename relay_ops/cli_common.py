"""What the operator commands share: the app's context, and a refused command reports the
rule it broke."""

from __future__ import annotations

from collections.abc import Callable
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


def metrics_options(process: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--metrics-port`` and ``--metrics-address`` for a process that serves its own
    Prometheus metrics (``RELAY_OPS_<PROCESS>_METRICS_PORT``... in the environment)."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--metrics-address", default="127.0.0.1", show_default=True,
            envvar=f"RELAY_OPS_{process}_METRICS_ADDRESS",
            help="the address the metrics listen on (unauthenticated: keep it private)",
        )(command)
        return click.option(
            "--metrics-port", type=click.IntRange(1, 65535), default=None,
            envvar=f"RELAY_OPS_{process}_METRICS_PORT",
            help="serve Prometheus metrics on this port (default: none)",
        )(command)
    return decorate
