"""The database under the history: plain SQL with named parameters, run on a SQLite file with the
standard library's sqlite3, and on any other database with SQLAlchemy.

A generation's own writes and the cost model's reads are plain SQL so that a generation on SQLite
never imports SQLAlchemy: its 22 MB of modules would sit in the CLI's process beside every encoder
(measured: 113 MB to 86 MB at the peak of a 9:16 captioned video). The history's pages, figures and
migrations use SQLAlchemy Core, which they import when they run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from engine.errors import HistoryUnavailable

# The schema version the code writes (migrations.MIGRATIONS has this many steps; tested).
SCHEMA_VERSION = 9

Params = Mapping[str, Any]


class Transaction(Protocol):
    def rows(self, sql: str, params: Params | None = None) -> list[tuple]: ...

    def mappings(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """The rows as column name to value."""
        ...

    def run(self, sql: str, params: Params | Sequence[Params] | None = None) -> None:
        """One statement, or the same statement once for each mapping of a sequence."""
        ...


class Database(Protocol):
    def transaction(self, write: bool = False) -> Any:
        """A context manager giving a Transaction, committed on leaving, rolled back on an error;
        HistoryUnavailable when the database fails."""
        ...

    def schema_version(self) -> int:
        """The version in the `meta` table; 0 for a database without one."""
        ...


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:///path`, with any driver or options); None for another
    database, or SQLite in memory."""
    scheme, found, rest = url.partition(":///")
    if not found or not is_sqlite(scheme):
        return None
    path = unquote(rest.split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


def is_sqlite(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] == "sqlite"


def set_pragmas(connection: Any, busy_timeout_s: float) -> None:
    """What every connection to a history file sets (a DB-API connection, either library's).
    WAL lets readers work beside one writer; busy_timeout makes writers wait, not fail."""
    cursor = connection.cursor()
    _turn_to_wal(cursor, busy_timeout_s)
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _turn_to_wal(cursor: Any, busy_timeout_s: float) -> None:
    """WAL is kept in the file, so this changes a new file only. SQLite takes that write lock from
    inside a read and, to avoid a deadlock, does not wait for it: two processes opening a new
    history at once (three CLIs on a fresh DATA_DIR) got "database is locked" at once, whatever
    busy_timeout said. So the change is tried again, within the same timeout."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class SqliteDatabase:
    """A history file through sqlite3: a connection per transaction (opening one takes well under a
    millisecond), so that threads never share one."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[_SqliteTransaction]:
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryUnavailable(str(exc)) from exc
        try:
            set_pragmas(connection, self.busy_timeout_s)
            # A writer takes the write lock first: a read that later wants to write could be refused
            # at once (the snapshot it read is stale) instead of waiting its turn.
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield _SqliteTransaction(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(connection)
            raise HistoryUnavailable(str(exc)) from exc
        except BaseException:
            _rollback(connection)
            raise
        finally:
            connection.close()

    def schema_version(self) -> int:
        if not self.path.exists():
            return 0
        try:
            with self.transaction() as tx:
                rows = tx.rows("SELECT value FROM meta WHERE key = 'schema_version'")
        except HistoryUnavailable as exc:
            if "no such table" in str(exc):
                return 0
            raise
        return int(rows[0][0]) if rows and rows[0][0] else 0  # as migrations.current_version reads it


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        # The connection is closed next, and SQLite drops what was not committed anyway.
        with suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


class _SqliteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def rows(self, sql: str, params: Params | None = None) -> list[tuple]:
        return self.connection.execute(sql, params or {}).fetchall()

    def mappings(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        cursor = self.connection.execute(sql, params or {})
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def run(self, sql: str, params: Params | Sequence[Params] | None = None) -> None:
        if isinstance(params, Sequence):
            self.connection.executemany(sql, params)
        else:
            self.connection.execute(sql, params or {})


class AlchemyDatabase:
    """Any database SQLAlchemy reaches (PostgreSQL), through an engine of the store's."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[_AlchemyTransaction]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.begin() as connection:
                yield _AlchemyTransaction(connection)
        except SQLAlchemyError as exc:
            raise HistoryUnavailable(str(exc)) from exc

    def schema_version(self) -> int:
        from engine.history.migrations import current_version

        with self.transaction() as tx:
            return current_version(tx.connection)


class _AlchemyTransaction:
    def __init__(self, connection: Any) -> None:
        import sqlalchemy as sa

        self.connection = connection
        self.text = sa.text

    def rows(self, sql: str, params: Params | None = None) -> list[tuple]:
        return [tuple(row) for row in self.connection.execute(self.text(sql), params or {})]

    def mappings(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in self.connection.execute(self.text(sql), params or {})]

    def run(self, sql: str, params: Params | Sequence[Params] | None = None) -> None:
        if isinstance(params, Sequence):
            self.connection.execute(self.text(sql), list(params))
        else:
            self.connection.execute(self.text(sql), params or {})
