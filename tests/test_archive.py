"""The archive of sent issues: static pages and an Atom feed, served by the web app.

Issues are really sent (to the Maildir outbox), the archive is really written under a
tmp output folder and served by the real ASGI app through httpx; the Atom feed is read
with feedparser. The store is SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from publisher import archive
from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import Item
from publisher.store import Store
from publisher.subscriptions import add
from publisher.web.app import create_app

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday; periods start Monday 09:00 Zurich
BASE = "http://127.0.0.1:8080"
LISTS: list[dict[str, Any]] = [
    {
        "slug": "weekly",
        "name": "Weekly digest",
        "schedule": "weekly-digest",
        "sender": "Social Protection <news@example.org>",
        "subject": "This week: {{ t('new_items', count=items|length) }}",
    },
    {
        "slug": "staff",
        "name": "Staff bulletin",
        "schedule": "weekly-digest",
        "sender": "Staff <staff@example.org>",
        "public": False,
    },
]
SCHEDULES = {"weekly-digest": {"cron": "0 9 * * mon", "job": "digest", "timezone": "Europe/Zurich"}}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def item(n: int, published: datetime) -> Item:
    return Item(
        id=f"urn:test:{n}",
        source="sample",
        title=f"Item number {n}",
        link=f"https://example.org/{n}",
        published=published,
        updated=published,
        language="en",
        summary=f"<p>Summary {n}</p>",
        category="news",
        label="news",
        content_hash=f"h{n}",
    )


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path, store_url: str) -> Settings:
    return make_settings(
        storage={"url": store_url},
        lists=LISTS,
        schedules=SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
    )


@pytest.fixture
def pub(settings: Settings) -> Iterator[Publisher]:
    publisher = Publisher(settings, Store(settings.storage.url), clock=Clock(NOW))
    yield publisher
    publisher.close()


def subscribe(pub: Publisher, list_slug: str) -> None:
    add(
        pub.settings,
        pub.store,
        list_slug,
        f"carla.{list_slug}@example.org",
        "Carla Secretname",
        "en",
        now=pub.clock(),
    )


def send(pub: Publisher, list_slug: str = "weekly") -> None:
    report = asyncio.run(pub.send_digest(list_slug))
    assert report.sent == 1, report


def mails(settings: Settings) -> list[EmailMessage]:
    box = mailbox.Maildir(settings.outbox.path, create=False)
    raw = [box.get_bytes(key) for key in box.iterkeys()]
    found = [email.message_from_bytes(data, policy=email.policy.default) for data in raw]
    return [m for m in found if isinstance(m, EmailMessage)]


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = (str(p.get_content()) for p in message.iter_parts())
    return text, html


def get(pub: Publisher, *requests: tuple[str, str, dict[str, str]]) -> list[httpx.Response]:
    """Answers of the real web app to (method, path, headers) requests, in order."""
    transport = httpx.ASGITransport(app=create_app(pub))

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return [await client.request(m, path, headers=h) for m, path, h in requests]

    return asyncio.run(run())


def page_path(period_key: str, list_slug: str = "weekly") -> str:
    return f"/archive/{list_slug}/{archive.issue_slug(period_key)}/"


def archive_files(settings: Settings) -> dict[str, int]:
    root = settings.feeds.output_dir / "archive"
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_sent_issue_is_archived_as_sent_for_nobody_and_the_mail_links_to_it(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1)), item(2, NOW - timedelta(days=2))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    (issue,) = pub.store.issues.sent_issues("weekly")
    path = page_path(issue.period_key)
    assert path == "/archive/weekly/2026-11-23T08-00-00Z/"  # Monday 09:00 Zurich

    (mail,) = mails(pub.settings)
    text, html = parts(mail)
    assert f"View in browser: {BASE}{path}" in text
    assert f'href="{BASE}{path}"' in html

    index, lst, page, no_slash = get(
        pub,
        ("GET", "/archive/", {}),
        ("GET", "/archive/weekly/", {}),
        ("GET", path, {}),
        ("GET", path[:-1], {}),
    )
    assert index.status_code == 200 and f'href="{BASE}/archive/weekly/"' in index.text
    assert (
        lst.status_code == 200 and f'href="{BASE}{path}"' in lst.text and "This week: 2 new items" in lst.text
    )
    assert (
        '<link rel="alternate" type="application/atom+xml" title="Weekly digest" '
        f'href="{BASE}/archive/weekly/feed.atom.xml">' in lst.text
    )
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "Item number 1" in page.text and "Item number 2" in page.text and "Hello," in page.text
    # nothing personal: no name, no address, no token link, no view-in-browser link to itself
    for leak in ("Carla", "Secretname", "carla.weekly", "/unsubscribe/", "/preferences/", "View in browser"):
        assert leak not in page.text
    assert "Route des Morillons 4, 1211 Geneva 22, Switzerland" in page.text
    # StaticFiles (html=True) redirects a folder without its slash to the slash
    assert no_slash.status_code == 307 and no_slash.headers["location"] == f"{BASE}{path}"


def test_a_private_list_is_absent_everywhere_and_its_mail_has_no_browser_link(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "staff")
    send(pub, "staff")
    pub.build()
    (mail,) = mails(pub.settings)
    text, html = parts(mail)
    assert "View in browser" not in text and "View in browser" not in html and "/archive/" not in html + text
    assert "Route des Morillons 4" in text and "Route des Morillons 4" in html  # the footer still has it
    assert not (pub.settings.feeds.output_dir / "archive" / "staff").exists()
    index, lst, feed, site = get(
        pub,
        ("GET", "/archive/", {}),
        ("GET", "/archive/staff/", {}),
        ("GET", "/archive/staff/feed.atom.xml", {}),
        ("GET", "/", {}),
    )
    assert index.status_code == 200 and "Staff bulletin" not in index.text and "staff" not in index.text
    assert lst.status_code == 404 and feed.status_code == 404
    assert f'href="{BASE}/archive/"' in site.text  # "weekly" is public: the index links the archive


def test_a_list_made_private_loses_its_archive_and_the_index_its_link(
    make_settings: Callable[..., Settings], tmp_path: Path, store_url: str
) -> None:
    def publisher(lists: list[dict[str, Any]]) -> Publisher:
        settings = make_settings(
            storage={"url": store_url},
            lists=lists,
            schedules=SCHEDULES,
            delivery={"journal_dir": str(tmp_path / "journal")},
        )
        return Publisher(settings, Store(settings.storage.url), clock=Clock(NOW))

    pub = publisher(LISTS)
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    assert (pub.settings.feeds.output_dir / "archive" / "weekly" / "feed.atom.xml").exists()
    pub.close()
    private = publisher([{**lst, "public": False} for lst in LISTS])
    private.build()
    out = private.settings.feeds.output_dir
    assert sorted(archive_files(private.settings)) == ["index.html"]
    assert not (out / "archive" / "weekly").exists()
    assert "/archive/" not in (out / "index.html").read_text(encoding="utf-8")
    private.close()


def test_the_list_pages_are_paged_newest_first(pub: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "PAGE_SIZE", 2)
    subscribe(pub, "weekly")
    clock = pub.clock
    assert isinstance(clock, Clock)
    for week in range(5):  # one issue a week, each with one new item
        clock.now = NOW + timedelta(weeks=week)
        pub.store.items.save([item(week, clock.now - timedelta(hours=1))], [], clock.now)
        send(pub)
    issues = pub.store.issues.sent_issues("weekly")
    assert [i.created for i in issues] == [NOW + timedelta(weeks=w) for w in (4, 3, 2, 1, 0)]
    first, second, third, fourth = get(
        pub,
        ("GET", "/archive/weekly/", {}),
        ("GET", "/archive/weekly/page/2/", {}),
        ("GET", "/archive/weekly/page/3/", {}),
        ("GET", "/archive/weekly/page/4/", {}),
    )
    urls = [f"{BASE}{page_path(i.period_key)}" for i in issues]

    def shown(response: httpx.Response) -> list[str]:
        return [u for u in urls if f'href="{u}"' in response.text]

    assert shown(first) == urls[:2] and shown(second) == urls[2:4] and shown(third) == urls[4:]
    assert first.text.index(urls[0]) < first.text.index(urls[1])  # newest first
    assert f'href="{BASE}/archive/weekly/page/2/" rel="next"' in first.text and 'rel="prev"' not in first.text
    assert f'href="{BASE}/archive/weekly/" rel="prev"' in second.text and "Page 2 of 3" in second.text
    assert 'rel="next"' not in third.text and fourth.status_code == 404
    feed = feedparser.parse(get(pub, ("GET", "/archive/weekly/feed.atom.xml", {}))[0].content)
    assert [e.id for e in feed.entries] == urls[:2]  # the feed holds the newest page

    monkeypatch.setattr(archive, "PAGE_SIZE", 50)
    pub.build()
    assert not (pub.settings.feeds.output_dir / "archive" / "weekly" / "page").exists()  # stale pages go


def test_archive_pages_answer_conditional_requests_and_head_changes_nothing(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    (issue,) = pub.store.issues.sent_issues("weekly")
    path = page_path(issue.period_key)
    before = archive_files(pub.settings)
    (first,) = get(pub, ("GET", path, {}))
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    by_etag, by_date, head = get(
        pub,
        ("GET", path, {"if-none-match": etag}),
        ("GET", path, {"if-modified-since": modified}),
        ("HEAD", path, {}),
    )
    assert by_etag.status_code == 304 and by_date.status_code == 304 and by_etag.content == b""
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    assert archive_files(pub.settings) == before
    assert len(pub.store.issues.sent_issues("weekly")) == 1
    report = pub.build()  # nothing new: no archive file is rewritten, so validators stay true
    assert not [p for p in report.written if "archive" in p.parts]
    assert archive_files(pub.settings) == before
    (again,) = get(pub, ("GET", path, {}))
    assert again.headers["etag"] == etag


def test_the_issue_feed_is_valid_atom_and_byte_identical_on_rebuild(pub: Publisher) -> None:
    subscribe(pub, "weekly")
    clock = pub.clock
    assert isinstance(clock, Clock)
    for week in range(2):
        clock.now = NOW + timedelta(weeks=week)
        pub.store.items.save([item(week, clock.now - timedelta(hours=1))], [], clock.now)
        send(pub)
    feed_file = pub.settings.feeds.output_dir / "archive" / "weekly" / "feed.atom.xml"
    data = feed_file.read_bytes()
    (response,) = get(pub, ("GET", "/archive/weekly/feed.atom.xml", {}))
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10" and feed.feed.title == "Social Protection Department: Weekly digest"
    assert feed.feed.id == f"{BASE}/archive/weekly/feed.atom.xml"
    assert [link.rel for link in feed.feed.links] == ["self", "alternate"]
    newest, oldest = feed.entries
    issues = pub.store.issues.sent_issues("weekly")
    assert newest.id == newest.link == f"{BASE}{page_path(issues[0].period_key)}"
    assert newest.title == "This week: 1 new item" and oldest.id == f"{BASE}{page_path(issues[1].period_key)}"
    assert newest.updated_parsed[:6] == (NOW + timedelta(weeks=1)).timetuple()[:6]
    assert feed.feed.updated_parsed[:6] == newest.updated_parsed[:6]
    mtime = feed_file.stat().st_mtime_ns
    clock.now = NOW + timedelta(weeks=3)  # a later build time changes nothing
    pub.build()
    assert feed_file.read_bytes() == data and feed_file.stat().st_mtime_ns == mtime


def test_publish_shows_the_new_issue_in_the_archive_in_one_run(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "weekly")
    subscribe(pub, "staff")
    report = pub.publish()
    assert sum(r.sent for r in report.digests) == 2
    (issue,) = pub.store.issues.sent_issues("weekly")
    (page,) = get(pub, ("GET", page_path(issue.period_key), {}))
    assert page.status_code == 200 and "Item number 1" in page.text
    assert sorted(archive_files(pub.settings)) == [
        "index.html",
        "weekly/2026-11-23T08-00-00Z/index.html",
        "weekly/feed.atom.xml",
        "weekly/index.html",
    ]


def test_an_issue_nobody_received_is_not_archived(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    report = asyncio.run(pub.send_digest("weekly"))  # no subscriber: an issue with no delivery
    assert report.issue_id is not None and report.sent == 0
    pub.build()
    assert sorted(archive_files(pub.settings)) == ["index.html", "weekly/feed.atom.xml", "weekly/index.html"]
    (lst,) = get(pub, ("GET", "/archive/weekly/", {}))
    assert "No issue sent yet." in lst.text


def test_the_postal_address_is_escaped_in_the_html_footer(
    make_settings: Callable[..., Settings], tmp_path: Path, store_url: str
) -> None:
    settings = make_settings(
        site={"postal_address": "Rue <b>Haute</b> & Co, Genève"},
        storage={"url": store_url},
        lists=LISTS[:1],
        schedules=SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
    )
    pub = Publisher(settings, Store(settings.storage.url), clock=Clock(NOW))
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    pub.close()
    text, html = parts(mails(settings)[0])
    assert "Rue &lt;b&gt;Haute&lt;/b&gt; &amp; Co, Genève" in html and "<b>Haute" not in html
    assert "Rue <b>Haute</b> & Co, Genève" in text
    page = next((settings.feeds.output_dir / "archive" / "weekly").glob("*/index.html")).read_text(
        encoding="utf-8"
    )
    assert "Rue &lt;b&gt;Haute&lt;/b&gt; &amp; Co, Genève" in page
