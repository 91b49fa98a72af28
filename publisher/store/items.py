"""Item rows and per-source fetch state: what ingest writes and feeds read.

Which stored items readers see is decided here, once, by :func:`shown`: not hidden by
an admin, from a source still in config.toml, and not a second copy of a story an
earlier source (in config order) already has. It is a query condition, not a stored
flag, so removing a source or reordering sources takes effect at the next build and
is undone just as simply; feeds, index.html and new issues all use the same condition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Engine,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    select,
    true,
    update,
)
from sqlalchemy.engine import Row

from publisher.models import IngestRejection, Item, ItemKey, ItemState, ListedItem, SourceState
from publisher.store.tables import ingest_rejections, items, source_state
from publisher.text import canonical_link

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
    "image_alt",
    "image_width",
    "image_height",
    "enclosure_url",
    "enclosure_type",
    "enclosure_length",
    "content_hash",
)


def row_to_item(row: Row[Any]) -> Item:
    m = row._mapping
    return Item(**{c: m[c] for c in _ITEM_COLUMNS})


def link_key(link: str) -> str:
    """sha256 of the canonical link: equal for one story's items from any source."""
    return hashlib.sha256(canonical_link(link).encode("utf-8")).hexdigest()


def _item_values(item: Item) -> dict[str, Any]:
    # ``hidden`` is not here: an edit read from the source never undoes an admin's hide.
    return {**{c: getattr(item, c) for c in _ITEM_COLUMNS}, "link_key": link_key(item.link)}


def _rank(column: Any, sources: Sequence[str]) -> Any:
    """A source's position in config order (NULL for a source no longer configured)."""
    return case({name: n for n, name in enumerate(sources)}, value=column)


def duplicate_clause(sources: Sequence[str]) -> ColumnElement[bool]:
    """True for an item whose story an item of an earlier configured source already has.

    The earlier item counts even when hidden: hiding the story's first copy must not
    bring a second copy of it into the feeds.
    """
    if not sources:
        return false()
    other = items.alias("earlier")
    earlier = select(other.c.id).where(
        other.c.link_key == items.c.link_key,
        other.c.link_key != "",
        other.c.source.in_(list(sources)),
        _rank(other.c.source, sources) < _rank(items.c.source, sources),
    )
    return exists(earlier)


def shown(sources: Sequence[str]) -> ColumnElement[bool]:
    """The condition for an item readers see, given the configured sources in order."""
    if not sources:
        return false()
    return and_(items.c.hidden == false(), items.c.source.in_(list(sources)), ~duplicate_clause(sources))


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

    def latest(
        self, category: str | None = None, limit: int = 50, sources: Sequence[str] | None = None
    ) -> list[Item]:
        """Newest first by published date (id breaks ties so output is deterministic).

        With ``sources`` (the configured source names in config order) only the items
        readers see (:func:`shown`); without, every stored item.
        """
        q = select(items)
        if category is not None:
            q = q.where(items.c.category == category)
        if sources is not None:
            q = q.where(shown(sources))
        q = q.order_by(items.c.published.desc(), items.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [row_to_item(r) for r in conn.execute(q)]

    def listing(
        self,
        sources: Sequence[str],
        category: str | None = None,
        limit: int = 100,
        *,
        item_id: str | None = None,
    ) -> list[ListedItem]:
        """Every stored item (or the one ``item_id``), newest first, with whether readers
        see it and why not."""
        duplicate = duplicate_clause(sources)
        q = select(items, duplicate.label("is_duplicate"))
        if category is not None:
            q = q.where(items.c.category == category)
        if item_id is not None:
            q = q.where(items.c.id == item_id)
        q = q.order_by(items.c.published.desc(), items.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            winners = self._first_of_story(conn, [r.link_key for r in rows if r.is_duplicate], sources)
        listed: list[ListedItem] = []
        for row in rows:
            item = row_to_item(row)
            state, first = ItemState.SHOWN, None
            if row.hidden:
                state = ItemState.HIDDEN
            elif item.source not in sources:
                state = ItemState.SOURCE_REMOVED
            elif row.is_duplicate:
                state, first = ItemState.DUPLICATE, winners.get(row.link_key)
            listed.append(ListedItem(item, bool(row.hidden), state, first))
        return listed

    @staticmethod
    def _first_of_story(conn: Any, keys: Sequence[str], sources: Sequence[str]) -> dict[str, str]:
        """link_key -> id of the story's item from the earliest configured source."""
        if not keys or not sources:
            return {}
        rank = _rank(items.c.source, sources)
        q = (
            select(items.c.link_key, items.c.id)
            .where(items.c.link_key.in_(list(set(keys))), items.c.source.in_(list(sources)))
            .order_by(items.c.link_key, rank, items.c.published, items.c.id)
        )
        first: dict[str, str] = {}
        for key, item_id in conn.execute(q):
            first.setdefault(key, item_id)
        return first

    def story_sources(self, links: Sequence[str]) -> dict[str, set[str]]:
        """link_key -> the sources whose stored items have that canonical link."""
        keys = sorted({link_key(link) for link in links})
        found: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                q = select(items.c.link_key, items.c.source).where(
                    items.c.link_key.in_(keys[start : start + 500])
                )
                for key, source in conn.execute(q):
                    found.setdefault(key, set()).add(source)
        return found

    def set_hidden(self, item_id: str, hidden: bool) -> bool | None:
        """Hide or show one item; answers its previous flag, None when no item has that id."""
        with self.engine.begin() as conn:
            before = conn.execute(select(items.c.hidden).where(items.c.id == item_id)).scalar_one_or_none()
            if before is None:
                return None
            conn.execute(
                update(items).where(items.c.id == item_id).values(hidden=true() if hidden else false())
            )
        return bool(before)

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

    def history(self, sources: Sequence[str] | None = None) -> list[ItemKey]:
        """Every item's key fields, oldest first by published date (id breaks ties).

        Feed archives (publisher.feed_archives) are cut from this list: narrow rows read
        through the driver's cursor (SQLAlchemy's row objects would cost several times
        the query at 100k items), and full items only for the pages to render.

        With ``sources`` (the configured source names in config order) only the items
        readers see, as :func:`shown` decides. The hidden flag and the source are
        filtered in the index scan; second copies of a story are worked out here in one
        pass over the rows, because the correlated ``EXISTS`` of :func:`duplicate_clause`
        would cost an index probe per row, most of a rebuild's time at 100k items. With
        one configured source there can be no second copy (it needs an earlier source),
        so that read is as narrow as the unfiltered one.
        """
        # Plain columns: the covering index answers alone, and expressions (lower(),
        # concatenation) would double the query's time at 100k rows.
        key = (items.c.id, items.c.category, items.c.language, items.c.content_hash)
        order = (items.c.published, items.c.id)
        if sources is None:
            return self._cursor_rows(select(*key).order_by(*order))
        if not sources:
            return []
        if len(sources) == 1:
            q = select(*key).where(items.c.hidden == false(), items.c.source == sources[0])
            return self._cursor_rows(q.order_by(*order))
        # A hidden first copy still keeps later copies out (as duplicate_clause says), so
        # hidden rows are read too, for the duplicate pass.
        q = select(*key, items.c.hidden, items.c.source, items.c.link_key)
        rows = self._cursor_rows(q.where(items.c.source.in_(list(sources))).order_by(*order))
        rank = {name: n for n, name in enumerate(sources)}
        first: dict[str, int] = {}  # link key -> the earliest configured source holding it
        for row in rows:
            if row[6] and rank[row[5]] < first.get(row[6], len(rank)):
                first[row[6]] = rank[row[5]]
        return [
            (r[0], r[1], r[2], r[3]) for r in rows if not r[4] and not (r[6] and first[r[6]] < rank[r[5]])
        ]

    def _cursor_rows(self, q: ClauseElement) -> list[Any]:
        """The rows of ``q`` as the driver's plain tuples (see :meth:`history`)."""
        sql = str(q.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql)
                return list(cursor.fetchall())
            finally:
                cursor.close()


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

    def record_rejections(self, name: str, now: datetime, rejected: Sequence[tuple[str, str]]) -> None:
        """Replace the source's rejected items (origin, reason) by those of this read."""
        with self.engine.begin() as conn:
            conn.execute(delete(ingest_rejections).where(ingest_rejections.c.source == name))
            if rejected:
                conn.execute(
                    ingest_rejections.insert(),
                    [{"source": name, "at": now, "origin": o, "reason": r} for o, r in rejected],
                )

    def rejections(self, sources: Sequence[str], limit: int = 200) -> list[IngestRejection]:
        """The configured sources' rejected items from their last read, in config order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ingest_rejections)
                .where(ingest_rejections.c.source.in_(list(sources)))
                .order_by(ingest_rejections.c.id)
            ).all()
        order = {name: i for i, name in enumerate(sources)}
        rows = sorted(rows, key=lambda r: order.get(r.source, len(order)))[:limit]
        return [IngestRejection(r.source, r.at, r.origin, r.reason) for r in rows]


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
