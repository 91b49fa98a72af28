"""Copy a whole store into a new, empty one: the way from the embedded SQLite to PostgreSQL.

A site starts on ``make run``'s SQLite and moves to PostgreSQL when it goes to
production. An export and import of subscribers would carry the addresses only: the
consent records (the proof a regulator asks for), the history, the bounce reports, the
issues (the guard that a period's digest never goes twice), the deliveries and the
site's token secret (the unsubscribe links in every mail already sent) would be lost.
So this copies every table, row by row with their ids, in the order of the foreign keys,
in one transaction on the target: a failure leaves the target as empty as it was.

The source is read in one snapshot (a read transaction), and the copy refuses while a
sender holds deliveries in flight or a worker's lease is live: what is in doubt belongs
to that sender's journal, which does not move with the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, Integer, Table, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from publisher.errors import StoreError
from publisher.store import tables as t
from publisher.store.db import shown_url
from publisher.store.workers import db_now

#: Rows read and written per statement: bounded memory at a million subscribers.
BATCH_ROWS = 5_000


@dataclass(frozen=True)
class TableCopy:
    """One table copied: its name and how many rows it holds in the target now."""

    name: str
    rows: int


@dataclass(frozen=True)
class CopyReport:
    """What ``storage copy`` did: the target (password hidden) and each table's rows."""

    source: str
    target: str
    tables: tuple[TableCopy, ...]

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)


def same_database(a: Engine, b: Engine) -> bool:
    """True when both engines open one database (SQLite: one file, however it is spelt)."""
    if a.dialect.name == b.dialect.name == "sqlite" and a.url.database and b.url.database:
        return Path(a.url.database).resolve() == Path(b.url.database).resolve()
    return a.url == b.url


def copy_store(
    source: Engine,
    target: Engine,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every row of ``source`` into ``target`` (both migrated to the same revision).

    Refuses (``StoreError``, nothing written) when both are the same database, when the
    target holds any row, or when a sender is at work on the source. ``progress`` gets
    each table's name and its row count once the table is copied.
    """
    if same_database(source, target):
        raise StoreError(
            f"the target is the configured store itself ({shown_url(source.url)}); name a new database"
        )
    try:
        _refuse_unless_empty(target)
        copied: list[TableCopy] = []
        with _snapshot(source) as src, target.begin() as dst:
            _refuse_while_sending(src)
            for table in t.metadata.sorted_tables:
                rows = _copy_table(table, src, dst, batch_rows)
                stored = dst.execute(select(func.count()).select_from(table)).scalar_one()
                if stored != rows:  # a trigger or a rule on the target: do not commit
                    raise StoreError(f"table {table.name}: {rows} rows read but {stored} in the target")
                if dst.dialect.name == "postgresql":
                    _restart_sequences(table, dst)
                copied.append(TableCopy(table.name, rows))
                if progress is not None:
                    progress(table.name, rows)
    except SQLAlchemyError as e:
        raise StoreError(f"copy to {shown_url(target.url)} failed, nothing was kept there: {e}") from e
    return CopyReport(shown_url(source.url), shown_url(target.url), tuple(copied))


def _refuse_unless_empty(target: Engine) -> None:
    with target.connect() as conn:
        for table in t.metadata.sorted_tables:
            count = conn.execute(select(func.count()).select_from(table)).scalar_one()
            if count:
                raise StoreError(
                    f"the target {shown_url(target.url)} already holds data (table {table.name}: {count} "
                    "row(s)); copy only into a new, empty database"
                )


def _refuse_while_sending(conn: Connection) -> None:
    in_flight = conn.execute(
        select(func.count()).select_from(t.deliveries).where(t.deliveries.c.status == "sending")
    ).scalar_one()
    live = conn.execute(
        select(t.workers.c.host, t.workers.c.pid).where(
            t.workers.c.ended.is_(None), t.workers.c.lease_until > db_now(conn)
        )
    ).all()
    if in_flight or live:
        who = ", ".join(f"{host} pid {pid}" for host, pid in live) or "a sender that stopped without settling"
        raise StoreError(
            f"{in_flight} message(s) are in flight ({who}): stop `publisher run` and every "
            "`publisher worker` (a worker settles its journal when it stops; a restarted one "
            "settles what a killed one left) and copy again"
        )


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one moment of the store."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            yield conn
        return
    # pysqlite starts a transaction only before a write; a read transaction must be asked for.
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()


def _copy_table(table: Table, src: Connection, dst: Connection, batch_rows: int) -> int:
    order = list(table.primary_key.columns)
    result = src.execution_options(yield_per=batch_rows).execute(select(table).order_by(*order))
    rows = 0
    for part in result.partitions():
        dst.execute(insert(table), [dict(row._mapping) for row in part])
        rows += len(part)
    return rows


def _restart_sequences(table: Table, conn: Connection) -> None:
    """Make the target's next generated id follow the copied ones (PostgreSQL keeps a counter)."""
    for column in table.primary_key.columns:
        if isinstance(column.type, Integer) and column.autoincrement is True:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                )
            )
