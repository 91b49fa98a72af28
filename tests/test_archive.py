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
from lxml import html as lxml_html

from publisher import archive
from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import Item
from publisher.store import Store
from publisher.subscriptions import add
from publisher.web.app import create_app
from tests.test_digests import Clock
from tests.test_digests import item as digests_item
from tests.test_web import Server

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


def item(n: int, published: datetime) -> Item:
    """test_digests' item, with the title the pages here are checked for."""
    made = digests_item(n, published)
    made.title = f"Item number {n}"
    return made


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


def subscribe(pub: Publisher, list_slug: str, language: str = "en") -> None:
    add(
        pub.settings,
        pub.store,
        list_slug,
        f"carla.{list_slug}.{language}@example.org",
        "Carla Secretname",
        language,
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
    # the reader's language's page (English: index.html), whatever their browser asks for
    assert f"View in browser: {BASE}{path}index.html" in text
    assert f'href="{BASE}{path}index.html"' in html

    index, lst, page, no_slash = get(
        pub,
        ("GET", "/archive/", {}),
        ("GET", "/archive/weekly/", {}),
        ("GET", path, {}),
        ("GET", path[:-1], {}),
    )
    assert index.status_code == 200 and f'href="{BASE}/archive/weekly/index.html"' in index.text
    assert (
        lst.status_code == 200
        and f'href="{BASE}{path}index.html"' in lst.text
        and "This week: 2 new items" in lst.text
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
    for name in ("index.fr.html", "index.es.html"):  # nor in any other language
        (page,) = get(pub, ("GET", f"/archive/{name}", {"accept-language": "fr"}))
        assert page.status_code == 200 and "Staff bulletin" not in page.text and "staff" not in page.text
        (lst,) = get(pub, ("GET", f"/archive/staff/{name}", {}))
        assert lst.status_code == 404
    (negotiated,) = get(pub, ("GET", "/archive/staff/", {"accept-language": "fr"}))
    assert negotiated.status_code == 404
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
    assert (
        pub.settings.feeds.output_dir / ".feed-pages" / "archive" / "weekly" / "feed.atom.xml.html"
    ).exists()
    pub.close()
    private = publisher([{**lst, "public": False} for lst in LISTS])
    private.build()
    out = private.settings.feeds.output_dir
    assert sorted(archive_files(private.settings)) == ["index.es.html", "index.fr.html", "index.html"]
    assert not (out / "archive" / "weekly").exists()
    assert not (out / ".feed-pages" / "archive" / "weekly").exists()  # the feed's page went too
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
    urls = [f"{BASE}{page_path(i.period_key)}index.html" for i in issues]

    def shown(response: httpx.Response) -> list[str]:
        return [u for u in urls if f'href="{u}"' in response.text]

    assert shown(first) == urls[:2] and shown(second) == urls[2:4] and shown(third) == urls[4:]
    assert first.text.index(urls[0]) < first.text.index(urls[1])  # newest first
    assert (
        f'href="{BASE}/archive/weekly/page/2/index.html" rel="next"' in first.text
        and 'rel="prev"' not in first.text
    )
    assert (
        f'href="{BASE}/archive/weekly/index.html" rel="prev"' in second.text and "Page 2 of 3" in second.text
    )
    assert 'rel="next"' not in third.text and fourth.status_code == 404
    feed = feedparser.parse(get(pub, ("GET", "/archive/weekly/feed.atom.xml", {}))[0].content)
    # the feed holds the newest page; its ids are the folder URLs (negotiated, never changed)
    assert [e.id for e in feed.entries] == [u.removesuffix("index.html") for u in urls[:2]]

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


def test_the_issue_feed_has_a_page_for_browsers_like_every_feed(pub: Publisher) -> None:
    """A browser opening the archive's feed gets its HTML page (publisher.feed_pages), not
    raw XML; feed readers get valid Atom that still names feed.xsl, like every feed.
    Without the page (an older build) the browser gets the feed as XML, for feed.xsl."""
    subscribe(pub, "weekly")
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    send(pub)
    pub.build()  # feed.xsl is written with the feeds
    browser = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page, xsl, reader = get(
        pub,
        ("GET", "/archive/weekly/feed.atom.xml", browser),
        ("GET", "/feed.xsl", {}),
        ("GET", "/archive/weekly/feed.atom.xml", {"accept": "application/atom+xml"}),
    )
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["vary"] == "Accept"
    shown = lxml_html.fromstring(page.content)
    assert shown.xpath("string(//h1)") == "Social Protection Department: Weekly digest"
    assert shown.get_element_by_id("address").text == f"{BASE}/archive/weekly/feed.atom.xml"
    assert shown.xpath("//a[text()='Visit the website']/@href") == [f"{BASE}/archive/weekly/"]
    (issue,) = pub.store.issues.sent_issues("weekly")
    assert shown.xpath("//ul[@class='items']//h3/a/@href") == [BASE + page_path(issue.period_key)]
    assert reader.content.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>'
    assert xsl.status_code == 200 and b"<xsl:stylesheet" in xsl.content
    assert reader.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(reader.content)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10" and len(feed.entries) == 1
    (pub.settings.feeds.output_dir / ".feed-pages/archive/weekly/feed.atom.xml.html").unlink()
    (as_xml,) = get(pub, ("GET", "/archive/weekly/feed.atom.xml", browser))
    assert as_xml.headers["content-type"].startswith("application/xml") and as_xml.content == reader.content


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
        "index.es.html",
        "index.fr.html",
        "index.html",
        "weekly/2026-11-23T08-00-00Z/index.es.html",
        "weekly/2026-11-23T08-00-00Z/index.fr.html",
        "weekly/2026-11-23T08-00-00Z/index.html",
        "weekly/feed.atom.xml",
        "weekly/index.es.html",
        "weekly/index.fr.html",
        "weekly/index.html",
    ]


def test_an_issue_nobody_received_is_not_archived(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    report = asyncio.run(pub.send_digest("weekly"))  # no subscriber: an issue with no delivery
    assert report.issue_id is not None and report.sent == 0
    pub.build()
    assert sorted(archive_files(pub.settings)) == [
        "index.es.html",
        "index.fr.html",
        "index.html",
        "weekly/feed.atom.xml",
        "weekly/index.es.html",
        "weekly/index.fr.html",
        "weekly/index.html",
    ]
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


# -- languages -------------------------------------------------------------------------

#: What each language's pages say, from the catalogue: (archive title, greeting, subject).
TEXTS = {
    "en": ("Past issues", "Hello,", "This week: 2 new items"),
    "fr": ("Anciens numéros", "Bonjour,", "This week: 2 nouvelles actualités"),
    "es": ("Números anteriores", "Hola:", "This week: 2 noticias nuevas"),
}
FILES = {"en": "index.html", "fr": "index.fr.html", "es": "index.es.html"}


def switcher(page: str) -> dict[str, str]:
    """The language switcher's links of a page: hreflang -> href (plain <a> in a <nav>)."""
    tree = lxml_html.fromstring(page)
    links = tree.xpath("//nav[@aria-label]//a[@hreflang]")
    return {str(a.get("hreflang")): str(a.get("href")) for a in links}


def current(page: str) -> list[str]:
    """The switcher's languages marked as the page's own (aria-current)."""
    tree = lxml_html.fromstring(page)
    return [str(a.get("hreflang")) for a in tree.xpath("//nav[@aria-label]//a[@aria-current='page']")]


def alternates(page: str) -> dict[str, str]:
    tree = lxml_html.fromstring(page)
    return {str(e.get("hreflang")): str(e.get("href")) for e in tree.xpath("//head/link[@hreflang]")}


def html_lang(page: str) -> str:
    return str(lxml_html.fromstring(page).get("lang"))


def test_every_page_is_written_in_every_language_with_a_switcher_that_resolves(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1)), item(2, NOW - timedelta(days=2))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    (issue,) = pub.store.issues.sent_issues("weekly")
    folders = {"index": "/archive/", "list": "/archive/weekly/", "issue": page_path(issue.period_key)}
    for kind, folder in folders.items():
        pages = dict(zip(FILES, get(pub, *(("GET", folder + f, {}) for f in FILES.values())), strict=True))
        for language, response in pages.items():
            where = f"{folder}{FILES[language]}"
            assert response.status_code == 200, where
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "vary" not in response.headers, where  # a file URL is an explicit choice
            page = response.text
            assert html_lang(page) == language, where
            title, greeting, subject = TEXTS[language]
            if kind == "index":
                assert f"<h1>{title}</h1>" in page, where
            elif kind == "list":
                assert subject in page and f'{BASE}{page_path(issue.period_key)}{FILES[language]}"' in page, (
                    where
                )
            else:
                assert f"<title>{subject}</title>" in page and greeting in page, where
                assert "Item number 1" in page and "Carla" not in page and "/unsubscribe/" not in page
            expected = {code: f"{BASE}{folder}{name}" for code, name in FILES.items()}
            assert switcher(page) == expected, where
            assert alternates(page) == {**expected, "x-default": f"{BASE}{folder}"}, where
            assert current(page) == [language], where
            # every switcher link resolves to the page in its language
            for code, response_ in zip(
                expected,
                get(pub, *(("GET", url.removeprefix(BASE), {}) for url in expected.values())),
                strict=True,
            ):
                assert response_.status_code == 200 and html_lang(response_.text) == code


def test_a_french_reader_s_view_in_browser_link_opens_the_french_page(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1)), item(2, NOW - timedelta(days=2))], [], NOW)
    subscribe(pub, "weekly", "fr")
    send(pub)
    (issue,) = pub.store.issues.sent_issues("weekly")
    url = f"{BASE}{page_path(issue.period_key)}index.fr.html"
    (mail,) = mails(pub.settings)
    text, html = parts(mail)
    assert f"Voir dans le navigateur: {url}" in text and f'href="{url}"' in html
    # An English browser still gets the French page the link names.
    (page,) = get(pub, ("GET", url.removeprefix(BASE), {"accept-language": "en"}))
    assert page.status_code == 200 and html_lang(page.text) == "fr"
    assert "<title>This week: 2 nouvelles actualités</title>" in page.text and "Bonjour," in page.text
    assert "Voir dans le navigateur" not in page.text  # the page does not link to itself


def test_folder_urls_answer_in_the_visitor_s_accept_language_over_http(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1)), item(2, NOW - timedelta(days=2))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    pub.build()
    (issue,) = pub.store.issues.sent_issues("weekly")
    with Server(pub) as server, httpx.Client(base_url=server.base) as client:
        for folder in ("/archive/", "/archive/weekly/", page_path(issue.period_key)):
            cases = {
                "fr-CH, fr;q=0.9, en;q=0.8": "fr",
                "de-DE, es;q=0.7, en;q=0.3": "es",  # German is not offered: the next one is
                "en-GB": "en",
                "de, ja": "en",  # nothing offered: the site language
                "": "en",
                "fr;q=0, es;q=0.1": "es",  # q=0 means "not this one"
                "fr;q=nonsense": "en",
            }
            for header, language in cases.items():
                answer = client.get(folder, headers={"accept-language": header} if header else {})
                assert answer.status_code == 200, (folder, header)
                assert html_lang(answer.text) == language, (folder, header)
                assert answer.headers["vary"] == "Accept-Language", (folder, header)
                assert answer.headers["content-location"] == FILES[language]
            french = client.get(folder, headers={"accept-language": "fr"})
            english = client.get(folder, headers={"accept-language": "en"})
            assert TEXTS["fr"][0 if folder == "/archive/" else 2] in french.text
            # the explicit file always wins over the header: the switcher's choice sticks
            chosen = client.get(folder + "index.html", headers={"accept-language": "fr"})
            assert html_lang(chosen.text) == "en" and "vary" not in chosen.headers
            assert html_lang(client.get(folder + "index.fr.html").text) == "fr"
            # each language has its own validator; a 304 only for the same language's copy
            etag = french.headers["etag"]
            assert etag != english.headers["etag"]
            again = client.get(folder, headers={"accept-language": "fr", "if-none-match": etag})
            assert again.status_code == 304 and again.headers["vary"] == "Accept-Language"
            assert again.headers["etag"] == etag
            other = client.get(folder, headers={"accept-language": "en", "if-none-match": etag})
            assert other.status_code == 200 and html_lang(other.text) == "en"
            assert client.get(folder + "index.fr.html", headers={"if-none-match": etag}).status_code == 304
            head = client.head(folder, headers={"accept-language": "es"})
            assert (
                head.status_code == 200
                and head.content == b""
                and head.headers["content-location"] == FILES["es"]
            )
        # a folder without its slash is still redirected; elsewhere nothing is negotiated
        assert client.get("/archive/weekly", headers={"accept-language": "fr"}).status_code == 307
        site = client.get("/", headers={"accept-language": "fr"})
        assert site.status_code == 200 and "vary" not in site.headers
        assert client.get("/archive/staff/", headers={"accept-language": "fr"}).status_code == 404


def test_a_rebuild_keeps_every_language_file_and_removes_what_it_did_not_write(pub: Publisher) -> None:
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    before = archive_files(pub.settings)
    assert len(before) == 10  # 3 languages x (index, list, issue) + the feed
    stray = pub.settings.feeds.output_dir / "archive" / "weekly" / "index.de.html"
    stray.write_text("<html lang=de>", encoding="utf-8")  # no German in the catalogue: not ours
    report = pub.build()
    assert not stray.exists()
    assert archive_files(pub.settings) == before  # the siblings it wrote stay, untouched
    assert not [p for p in report.written if "archive" in p.parts]


def test_a_rebuild_renders_only_the_issue_pages_whose_inputs_changed(
    pub: Publisher, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An issue page is rendered again only when its issue, items, list or templates change,
    or when its file is gone; otherwise the file stays as it is (and costs no rendering)."""
    pub.store.items.save([item(1, NOW - timedelta(days=1))], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    week = NOW + timedelta(days=7)
    assert isinstance(pub.clock, Clock)
    pub.clock.now = week
    pub.store.items.save([item(2, week - timedelta(days=1))], [], week)
    send(pub)
    rendered: list[str] = []
    real = archive.render_web_copy

    def counting(*args: object, **kwargs: Any) -> str:
        rendered.append(str(kwargs["language"]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "render_web_copy", counting)
    before = archive_files(pub.settings)

    pub.build()
    assert rendered == [] and archive_files(pub.settings) == before  # nothing changed

    edited = item(1, NOW - timedelta(days=1))
    edited.title, edited.content_hash, edited.updated = "Item number 1, corrected", "h1b", week
    pub.store.items.save([], [edited], week)
    pub.build()
    assert sorted(rendered) == ["en", "es", "fr"]  # that issue's three pages, not the other's
    issues = pub.store.issues.sent_issues("weekly")
    first = min(issues, key=lambda i: i.created)
    folder = pub.settings.feeds.output_dir / "archive" / "weekly" / archive.issue_slug(first.period_key)
    assert "Item number 1, corrected" in (folder / "index.fr.html").read_text(encoding="utf-8")

    rendered.clear()
    (folder / "index.es.html").unlink()
    pub.build()
    assert rendered == ["es"] and (folder / "index.es.html").is_file()

    rendered.clear()
    templates = pub.settings.templates.path
    assert templates is None  # the built-ins: a changed override folder re-renders everything
    override = tmp_path / "overrides"
    (override / "email").mkdir(parents=True)
    pub.settings.templates.path = override
    pub.build()
    assert len(rendered) == 6  # two issues x three languages


def test_a_rebuild_after_an_interrupted_one_leaves_no_stale_issue_page(
    pub: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build stopped after rewriting pages but before saving what it rendered them from
    must not make the next build take those pages for what the older inputs render to."""
    original = item(1, NOW - timedelta(days=1))
    pub.store.items.save([original], [], NOW)
    subscribe(pub, "weekly")
    send(pub)
    [issue] = pub.store.issues.sent_issues("weekly")
    page = pub.settings.feeds.output_dir / "archive" / "weekly" / archive.issue_slug(issue.period_key)
    page /= "index.html"
    assert "Item number 1" in page.read_text(encoding="utf-8")

    edited = item(1, NOW - timedelta(days=1))
    edited.title, edited.content_hash = "Item number 1, withdrawn draft", "h1b"
    pub.store.items.save([], [edited], NOW)

    def interrupted(self: object, keep: object) -> None:
        raise KeyboardInterrupt  # killed after the pages were written, before the state was saved

    with monkeypatch.context() as patch:
        patch.setattr(archive._PageCache, "save", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pub.build()
    assert "withdrawn draft" in page.read_text(encoding="utf-8")

    pub.store.items.save([], [original], NOW)  # the edit is undone
    pub.build()
    assert "withdrawn draft" not in page.read_text(encoding="utf-8")
    assert "Item number 1" in page.read_text(encoding="utf-8")
