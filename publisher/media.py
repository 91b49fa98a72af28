"""An item's picture and enclosure: checking what sources give, and sizing the picture for mail.

Sources hand over media URLs, types, sizes and alt texts from outside; feeds, pages and
mail clients use them verbatim (an ``<enclosure url>``, an ``<img src>``). So ingest
keeps only absolute http(s) URLs (resolved against the item's link, as a browser
would), media types of the ``type/subtype`` form, and whole numbers for sizes. Each
check raises :class:`ValueError` saying what is wrong; ingest turns that into a
warning naming the item, drops the field and keeps the item.

The digest shows the picture in a column 600 px wide with 24 px padding, so
:func:`picture` never asks for more than :data:`MAIL_PICTURE_WIDTH` pixels and scales
the height with the width, keeping the proportions the source gave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from publisher.models import Item
from publisher.text import xml_safe

#: The digest's content column: 600 px less 2 x 24 px padding.
MAIL_PICTURE_WIDTH = 552

_MAX_URL_LENGTH = 2000
_MAX_PIXELS = 20_000
_MAX_ALT_LENGTH = 300
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}$")


def media_url(text: str, base: str) -> str:
    """``text`` resolved against ``base`` (the item's link); it must be an absolute http(s) URL."""
    value = " ".join(xml_safe(text).split())
    if not value:
        raise ValueError("it is empty")
    if " " in value:
        raise ValueError("it contains spaces: encode them as %20")
    if len(value) > _MAX_URL_LENGTH:
        raise ValueError(f"it is longer than {_MAX_URL_LENGTH} characters")
    url = urljoin(base, value)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "it is not an http(s) URL: write it as https://host/path or a path on the item's site"
        )
    return url


def media_type(text: str) -> str:
    """A media type such as ``video/mp4``, lower-cased and without parameters."""
    value = xml_safe(text).split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.match(value):
        raise ValueError(f"{text[:100]!r} is not a media type such as 'video/mp4' or 'image/jpeg'")
    return value


def pixels(value: int | str | None, what: str) -> int | None:
    """A width or height in pixels: a whole number from 1 to 20000, or None when absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _whole(value, what)
    if not 1 <= number <= _MAX_PIXELS:
        raise ValueError(f"{what} {number} is not between 1 and {_MAX_PIXELS} pixels")
    return number


def byte_length(value: int | str | None) -> int | None:
    """An enclosure's size in bytes: a whole number, 0 or more, or None when absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _whole(value, "length")
    if number < 0 or number >= 2**63:
        raise ValueError(f"length {number} is not a size in bytes")
    return number


def alt_text(text: str | None) -> str | None:
    """One line of at most 300 characters, or None (the title then serves)."""
    value = " ".join(xml_safe(text or "").split())
    return value[:_MAX_ALT_LENGTH] or None


def _whole(value: int | str, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{what} {text[:50]!r} is not a whole number")
    return int(text)


@dataclass(frozen=True, slots=True)
class Picture:
    """What an ``<img>`` in a digest needs: its source, alt text and display size."""

    src: str
    alt: str
    width: int
    height: int | None  # None: unknown proportions, the mail client scales it


def picture(item: Item, max_width: int = MAIL_PICTURE_WIDTH) -> Picture | None:
    """The item's picture sized for a mail column, or None when it has none.

    The URL is checked again (http(s) only) because a row written before this check
    existed, or by hand, must not put a ``javascript:`` or ``data:`` URL into a mail.
    """
    if not item.image:
        return None
    scheme = urlsplit(item.image).scheme.lower()
    if scheme not in ("http", "https"):
        return None
    alt = item.image_alt or item.title
    width, height = item.image_width, item.image_height
    if width is None:
        return Picture(item.image, alt, max_width, None)
    shown = min(width, max_width)
    scaled = round(height * shown / width) if height else None
    return Picture(item.image, alt, shown, max(scaled, 1) if scaled is not None else None)
