"""Reading the dates sources give, and picking the newest items by them.

Ingest needs a date it can store (aware, any common notation); the per-run item cap
needs the same reading to decide which items are the newest before they are built,
so both take it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from email.utils import parsedate_to_datetime


def parse_date(value: datetime | str, tz: tzinfo) -> datetime | None:
    """ISO 8601 or RFC 2822 (as in RSS); a date without a zone is read in ``tz``."""
    if isinstance(value, datetime):
        parsed: datetime | None = value
    else:
        parsed = _parse_date_text(value.strip())
    if parsed is None:
        return None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def _parse_date_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def newest(dates: Sequence[datetime | str | None], limit: int, tz: tzinfo) -> list[int]:
    """Positions of the ``limit`` newest dates, in their original order.

    A missing or unreadable date counts as older than any other (such an item is
    rejected by ingest anyway); among equal dates the earlier position wins.
    """
    if len(dates) <= limit:
        return list(range(len(dates)))

    def key(position: int) -> tuple[bool, float, int]:
        value = dates[position]
        parsed = parse_date(value, tz) if value is not None else None
        return (parsed is not None, parsed.timestamp() if parsed else 0.0, -position)

    return sorted(sorted(range(len(dates)), key=key, reverse=True)[:limit])
