"""Item rows and per-source fetch state: what ingest writes and feeds read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Row

from publisher.models import Item, ItemKey, SourceState
from publisher.store.tables import items, source_state

_ITEM_COLUMNS = (
    "id",
    "source",
    "category",
    "label",
    "language",
    "title",
    "summary",
    "content",
    "link",
    "published",
    "updated",
    "image",
    "content_hash",
)


def row_to_item(row: Row[Any]) -> Item:
    m = row._mapping
    return Item(**{c: m[c] for c in _ITEM_COLUMNS})


def _item_values(item: Item) -> dict[str, Any]:
    return {c: getattr(item, c) for c in _ITEM_COLUMNS}


class ItemStore:
    """Items keyed by their stable id; writes in batches, reads newest first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, new: Sequence[Item], changed: Sequence[Item], now: datetime) -> None:
        """Insert new items and rewrite changed ones, in one transaction."""
        with self.engine.begin() as conn:
            if new:
                conn.execute(items.insert(), [{**_item_values(i), "first_seen": now} for i in new])
            for item in changed:
                values = _item_values(item)
                del values["id"]
                conn.execute(update(items).where(items.c.id == item.id).values(**values))

    def latest(self, category: str | None = None, limit: int = 50) -> list[Item]:
        """Newest first by published date (id breaks ties so output is deterministic)."""
        q = select(items)
        if category is not None:
            q = q.where(items.c.category == category)
        q = q.order_by(items.c.published.desc(), items.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [row_to_item(r) for r in conn.execute(q)]

    def get(self, item_id: str) -> Item | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(items).where(items.c.id == item_id)).first()
        return row_to_item(row) if row else None

    def by_ids(self, ids: Sequence[str]) -> list[Item]:
        """Items with the given ids, in the order given (unknown ids are skipped)."""
        found: dict[str, Item] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                for row in conn.execute(select(items).where(items.c.id.in_(chunk))):
                    found[row.id] = row_to_item(row)
        return [found[i] for i in ids if i in found]

    def count_by_category(self) -> dict[str | None, int]:
        q = select(items.c.category, func.count()).group_by(items.c.category)
        with self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(q)}

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(items)).scalar_one())

    def history(self) -> list[ItemKey]:
        """Every item's key fields, oldest first by published date (id breaks ties).

        Feed archives (publisher.feed_archives) are cut from this list: narrow rows read
        through the driver's cursor (SQLAlchemy's row objects would cost several times
        the query at 100k items), and full items only for the pages to render.
        """
        # Plain columns: the covering index answers alone, and expressions (lower(),
        # concatenation) would double the query's time at 100k rows.
        q = select(items.c.id, items.c.category, items.c.language, items.c.content_hash).order_by(
            items.c.published, items.c.id
        )
        sql = str(q.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return list(rows)


class SourceStateStore:
    """Per-source HTTP cache validators and the outcome of the last fetch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str) -> SourceState:
        """What is known of source ``name``; a source never fetched has no validators."""
        with self.engine.connect() as conn:
            row = conn.execute(select(source_state).where(source_state.c.name == name)).first()
        return _source_state(row) if row else SourceState(name)

    def all(self) -> list[SourceState]:
        with self.engine.connect() as conn:
            return [
                _source_state(r) for r in conn.execute(select(source_state).order_by(source_state.c.name))
            ]

    def record(
        self,
        name: str,
        now: datetime,
        *,
        error: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        item_count: int | None = None,
    ) -> None:
        """Remember one fetch: validators on success, the error otherwise."""
        with self.engine.begin() as conn:
            row = conn.execute(select(source_state).where(source_state.c.name == name)).first()
            values: dict[str, Any] = {"last_fetch": now, "last_error": error}
            if error is None:
                values["last_ok"] = now
                values["etag"] = etag
                values["last_modified"] = last_modified
                if item_count is not None:
                    values["item_count"] = item_count
            if row is None:
                values.setdefault("item_count", 0)
                conn.execute(source_state.insert().values(name=name, **values))
            else:
                conn.execute(update(source_state).where(source_state.c.name == name).values(**values))


def _source_state(row: Row[Any]) -> SourceState:
    return SourceState(
        name=row.name,
        etag=row.etag,
        last_modified=row.last_modified,
        last_fetch=row.last_fetch,
        last_ok=row.last_ok,
        last_error=row.last_error,
        item_count=int(row.item_count or 0),
    )
