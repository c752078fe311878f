"""PostgreSQL connections that keep their prepared statements when a transaction is rolled
back (issue 15).

psycopg prepares a statement on a connection at its fifth run, and PostgreSQL then plans it
once for many runs instead of at every run. But psycopg's ``Connection.rollback()``
deallocates every statement the connection prepared (psycopg/_connection_base.py: a
rolled-back transaction may have dropped and re-created an object they name). In RelayOps a
rollback is a refused request: a parcel not announced here, an ambiguous number, a code not
found. After each one, the connection parsed and planned every statement again for its next
runs: measured in process, 5 % of check-ins refused raised PostgreSQL's CPU per request from
2.0 to 3.3 ms, 20 % to 4.3 ms (docs/benchmarks.md, "After a rollback").

RelayOps changes its schema only by migrations, run by the CLI before it does anything else
(``relay-ops db upgrade``, the demo's setup); a migration that fails ends the process. So no
transaction a connection rolls back has dropped and re-created what a prepared statement
names; and PostgreSQL itself re-plans a prepared statement whose tables changed. Their
rollback sends ``ROLLBACK`` through libpq directly, which leaves psycopg's record of what is
prepared, and the server's prepared statements, as they were. Anything unusual (a closed or
broken connection, an error from the server) goes to psycopg's own rollback, which reports
it.

A rollback to a savepoint (the locker bridge's retry path: a poisoned event undone alone)
did the same: psycopg clears its prepared statements on any command whose tag is
``ROLLBACK``, which ``ROLLBACK TO SAVEPOINT`` is. :meth:`rollback_to_savepoint` sends it
through libpq likewise; ``database.py`` makes the engine's dialect use it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import pq, sql


class KeepsPreparedOnRollback(psycopg.Connection[Any]):
    """A psycopg connection whose rollback keeps the statements it prepared."""

    def rollback(self) -> None:
        if self.closed or self.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            super().rollback()  # nothing to roll back, or psycopg's own error
            return
        with self.lock:
            result = self.pgconn.exec_(b"ROLLBACK")
        if result.status != pq.ExecStatus.COMMAND_OK:
            super().rollback()  # psycopg raises the error it finds

    def rollback_to_savepoint(self, name: str) -> None:
        """``ROLLBACK TO SAVEPOINT name``, the statements prepared kept."""
        statement = sql.SQL("ROLLBACK TO SAVEPOINT {}").format(sql.Identifier(name))
        if self.closed or self.broken:
            self.execute(statement)  # psycopg raises the error it finds
            return
        with self.lock:
            result = self.pgconn.exec_(statement.as_bytes(self))
        if result.status != pq.ExecStatus.COMMAND_OK:
            self.execute(statement)  # psycopg raises the error it finds
