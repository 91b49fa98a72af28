"""Media fields: what ingest accepts as a picture or enclosure, and how a digest sizes a picture."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from publisher.media import MAIL_PICTURE_WIDTH, byte_length, media_type, media_url, picture, pixels
from publisher.models import Item

LINK = "https://www.example.org/news/item-1"


def item(**fields: Any) -> Item:
    when = datetime(2024, 3, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "i1",
        "source": "sample",
        "title": "A title",
        "link": LINK,
        "published": when,
        "updated": when,
        "language": "en",
    }
    return Item(**(values | fields))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://cdn.example.org/a.jpg", "https://cdn.example.org/a.jpg"),
        ("/images/a.jpg", "https://www.example.org/images/a.jpg"),  # resolved against the item's link
        ("a.jpg", "https://www.example.org/news/a.jpg"),
        ("  http://example.org/b.png\n", "http://example.org/b.png"),
    ],
)
def test_media_urls_resolve_against_the_item_link(given: str, expected: str) -> None:
    assert media_url(given, LINK) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("javascript:alert(1)", "not an http(s) URL"),
        ("data:image/gif;base64,R0lGOD", "not an http(s) URL"),
        ("ftp://example.org/video.mp4", "not an http(s) URL"),
        ("https://example.org/a picture.jpg", "spaces"),
        ("https://example.org/" + "a" * 2100, "longer than"),
    ],
)
def test_bad_media_urls_are_refused_with_the_reason(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        media_url(given, LINK)


def test_media_types_sizes_and_lengths() -> None:
    assert media_type("Video/MP4; codecs=avc1") == "video/mp4"
    for bad in ("video", "video/mp4/x", "<script>/x", ""):
        with pytest.raises(ValueError, match="not a media type"):
            media_type(bad)
    assert pixels("640", "width") == 640 and pixels(None, "width") is None
    for bad_size in ("wide", "-3", "0", "99999", "1.5"):
        with pytest.raises(ValueError, match="width"):
            pixels(bad_size, "width")
    assert byte_length(0) == 0 and byte_length("48213776") == 48213776 and byte_length("") is None
    with pytest.raises(ValueError, match="length"):
        byte_length("12 MB")


def test_a_large_picture_is_scaled_to_the_mail_column_keeping_its_proportions() -> None:
    pic = picture(
        item(image="https://example.org/a.jpg", image_width=1200, image_height=800, image_alt="Alt")
    )
    assert pic is not None
    assert (pic.width, pic.height, pic.alt) == (MAIL_PICTURE_WIDTH, 368, "Alt")
    assert MAIL_PICTURE_WIDTH <= 600


def test_a_small_picture_keeps_its_size_and_an_unknown_one_gets_the_column_width() -> None:
    small = picture(item(image="https://example.org/a.jpg", image_width=300, image_height=200))
    assert small is not None and (small.width, small.height) == (300, 200)
    assert small.alt == "A title"  # no alt given: the title
    unknown = picture(item(image="https://example.org/a.jpg"))
    assert unknown is not None and (unknown.width, unknown.height) == (MAIL_PICTURE_WIDTH, None)


def test_no_picture_for_a_url_that_is_not_http() -> None:
    assert picture(item(image="javascript:alert(1)")) is None
    assert picture(item()) is None
