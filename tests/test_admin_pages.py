"""The console's Lists, Subscribers and Items pages over real HTTP (issue 11, second half).

Same set-up as tests/test_admin.py (uvicorn on loopback, the test's clock, SQLite and
PostgreSQL); the generic checks there (no session -> 303, no CSRF -> 403, GETs change
nothing) already cover these routes. Here: what each page shows and that each action is
the CLI's operation, audited. Mail goes to the Maildir outbox (no [smtp] in this config).
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import mailbox
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from publisher.app import Publisher
from publisher.config import load_config
from publisher.errors import SubscriberError
from publisher.store import Store
from publisher.uploads import META, HeldUploads
from tests.admin_client import (
    HASH_ENV,
    admin_hash,
    chromium_page,
    require_chromium,
    shoot,
    sign_in,
    sign_in_browser,
)
from tests.smtp_server import Rule, SmtpSink
from tests.test_admin import Clock, Console, Server, write_config


@pytest.fixture
def site(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The console test site with a public list, a rejected item, ingested once."""
    monkeypatch.setenv(HASH_ENV, admin_hash())
    path = write_config(tmp_path, store_url)
    path.write_text(
        path.read_text().replace(
            'sender = "News <news@example.org>"', 'sender = "News <news@example.org>"\npublic = true'
        )
    )
    (tmp_path / "content" / "undated.md").write_text(
        "---\ntitle: No date here\ncategory: News\nlink: https://www.example.org/news/2\n---\n\nBody\n"
    )
    clock = Clock()
    publisher = Publisher(load_config(path), Store(store_url), clock=clock)
    publisher.ingest()
    publisher.build()
    with Server(publisher) as server:
        yield Console(publisher, server, clock, path)
    publisher.close()


def outbox(console: Console) -> list[email.message.Message]:
    box = mailbox.Maildir(console.publisher.settings.outbox.path, create=False)
    policy = email.policy.default
    return [email.message_from_bytes(box.get_bytes(key), policy=policy) for key in box.iterkeys()]


def actions(console: Console) -> list[tuple[str, str]]:
    return [(e.action, e.detail) for e in console.publisher.audit_log()]


# -- Lists and digests --------------------------------------------------------------------


def test_a_list_shows_subscribers_by_status_and_past_issues_with_counts_and_archive_link(
    site: Console,
) -> None:
    p = site.publisher
    p.add_subscriber("weekly", "ana@example.org", "Ana")
    p.add_subscriber("weekly", "ben@example.org", "Ben")
    p.remove_subscriber("weekly", "ben@example.org")
    report = asyncio.run(p.send_digest("weekly"))
    assert report.sent == 1
    with site.client() as client:
        sign_in(client)
        overview = client.get("/admin/lists")
        assert overview.status_code == 200 and "Weekly digest" in overview.text
        page = client.get("/admin/lists/weekly")
    assert page.status_code == 200
    counts = re.search(r'<dl class="pairs" id="counts">(.*?)</dl>', page.text, re.S)
    assert counts is not None
    assert "<dt>confirmed</dt><dd>1</dd>" in counts.group(1)
    assert "<dt>unsubscribed</dt><dd>1</dd>" in counts.group(1)
    (summary,) = p.digest_status("weekly")
    issue_cell = r"<tr>\s*<td data-label=\"Issue\"><div>" + re.escape(summary.period_key)
    row = re.search(issue_cell + r".*?</tr>", page.text, re.S)
    assert row is not None
    assert '<td class="num" data-label="Sent">1</td>' in row.group(0)
    assert '<td class="num" data-label="Failed">0</td>' in row.group(0)
    link = re.search(r'<a href="([^"]+)">view</a>', row.group(0))
    assert link is not None and link.group(1).startswith("http://127.0.0.1:8080/archive/weekly/")
    # The archive page the link names exists (written when the mail went out).
    relative = link.group(1).removeprefix("http://127.0.0.1:8080/")
    assert (p.settings.feeds.output_dir / relative / "index.html").is_file()


# A refusal written to break the console: markup, a script, an ANSI sequence, a bidi override.
HOSTILE_REPLY = "451 4.7.1 <b>bold</b><script>alert(1)</script> \x1b[31mred\x1b[0m [bold]x[/bold] \u202eevil"
UNKNOWN_USER = "550 5.1.1 <{0}>: Recipient address rejected: User unknown"


@pytest.fixture
def refusing_site(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpSink
) -> Iterator[Console]:
    """The console test site sending through an SMTP server that refuses four of five readers."""
    monkeypatch.setenv(HASH_ENV, admin_hash())
    path = write_config(tmp_path, store_url)
    path.write_text(
        path.read_text() + f'\n[smtp]\nhost = "{smtp_server.host}"\nport = {smtp_server.port}\ntimeout = 5\n'
    )
    clock = Clock()
    publisher = Publisher(load_config(path), Store(store_url), clock=clock)
    publisher.ingest()
    for name in ("ana", "ben", "cy", "dee", "eve"):
        publisher.add_subscriber("weekly", f"{name}@example.org", name.title())
    smtp_server.script(
        *(
            Rule("rcpt", reply=UNKNOWN_USER.format(a), recipient=a)
            for a in ("ana@example.org", "ben@example.org")
        ),
        Rule("rcpt", reply=HOSTILE_REPLY, recipient="cy@example.org"),
        Rule("rcpt", reply="554 5.7.1 " + "blocked" * 100, recipient="dee@example.org"),
    )
    report = asyncio.run(publisher.send_digest("weekly"))
    assert (report.sent, report.deferred, report.tally.failed, report.tally.bounced) == (1, 1, 1, 2)
    with Server(publisher) as server:
        yield Console(publisher, server, clock, path)
    publisher.close()


def test_an_issue_page_says_why_deliveries_were_not_sent_with_the_replies_made_harmless(
    refusing_site: Console,
) -> None:
    p = refusing_site.publisher
    (issue,) = p.digest_status("weekly")
    page_path = f"/admin/lists/weekly/issues/{issue.id}"
    with refusing_site.client() as client:
        sign_in(client)
        lists = client.get("/admin/lists/weekly")
        dashboard = client.get("/admin/")
        page = client.get(page_path)
        deferred = client.get(page_path, params={"status": "deferred"})
        head = client.head(page_path)
        missing = client.get(f"/admin/lists/weekly/issues/{issue.id + 1}")
        back = client.get(missing.headers["location"])
        no_list = client.get(f"/admin/lists/nope/issues/{issue.id}")
    assert f'<a href="{page_path}">why not sent</a>' in lists.text
    assert f'<a href="{page_path}">{issue.period_key}</a>' in dashboard.text
    assert page.status_code == 200 and head.status_code == 200 and no_list.status_code == 404
    assert missing.status_code == 303 and missing.headers["location"].startswith("/admin/lists/weekly?")
    assert "That issue is not one of this list&#39;s" in back.text
    assert "<dt>bounced</dt><dd>2</dd>" in page.text and "<dt>sent</dt><dd>1</dd>" in page.text
    reasons = page.text.split('id="reasons-table"')[1].split("</table>")[0]
    first = reasons.split("<tr>")[2]  # the most frequent reason comes first
    assert '<td class="num" data-label="Count">2</td>' in first and "550" in first
    assert "5.1.1 &lt;address&gt;: Recipient address rejected: User unknown" in first
    rows = page.text.split('id="deliveries-table"')[1].split("</table>")[0]
    assert rows.count("<tr>") == 4 + 1  # the head's row and four deliveries
    ana_id = p.subscriber("ana@example.org").id
    assert f'<a href="/admin/subscribers/{ana_id}">ana@example.org</a>' in rows
    assert "5.1.1 &lt;ana@example.org&gt;: Recipient address rejected: User unknown" in rows
    # The hostile reply is text: escaped for HTML, its controls shown as escapes.
    assert "<script>" not in page.text and "<b>bold" not in page.text
    assert (
        "4.7.1 &lt;b&gt;bold&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt; \\x1b[31mred\\x1b[0m "
        "[bold]x[/bold] \\u202eevil" in rows
    )
    assert "\x1b" not in page.text and "\u202e" not in page.text
    assert "blocked" * 30 in rows and "blocked" * 40 not in rows  # cut (240 characters)
    assert "4 of 4 shown" in page.text and f"--issue {issue.id} --limit 4 --json" in page.text
    # ?status= narrows the list to one status; the counts stay the issue's.
    only = deferred.text.split('id="deliveries-table"')[1].split("</table>")[0]
    assert only.count("<tr>") == 2 and "cy@example.org" in only and "ana@example.org" not in only
    assert '<strong aria-current="page">deferred (1)</strong>' in deferred.text


def test_the_issue_page_reads_at_375_px(refusing_site: Console) -> None:
    """No sideways scroll on a phone, however long a reply's words (Chromium, no script)."""
    require_chromium()
    (issue,) = refusing_site.publisher.digest_status("weekly")
    base = refusing_site.server.base
    with chromium_page() as page:
        sign_in_browser(page, base)
        page.goto(f"{base}/admin/lists/weekly/issues/{issue.id}")
        assert page.locator("#deliveries-table").is_visible()
        shoot(page, "issue-failures")


def test_the_preview_is_the_next_issue_in_the_chosen_language_framed_with_a_strict_csp(site: Console) -> None:
    with site.client() as client:
        sign_in(client)
        page = client.get("/admin/lists/weekly", params={"language": "fr"})
        html = client.get("/admin/lists/weekly/preview.html", params={"language": "fr"})
        english = client.get("/admin/lists/weekly/preview.html")
    assert page.status_code == 200
    subject = re.search(r'<dd id="preview-subject">(.*?)</dd>', page.text)
    assert subject is not None and "1 nouvelle actualité" in subject.group(1)
    assert "Pensions rise" in page.text
    text_part = re.search(r'<pre class="preview" id="preview-text">(.*?)</pre>', page.text, re.S)
    assert text_part is not None and "Se désabonner" in text_part.group(1)
    size = re.search(r'<dd id="preview-size">([\d,]+) bytes', page.text)
    assert size is not None and int(size.group(1).replace(",", "")) > 1000
    assert '<iframe class="preview" id="preview-html"' in page.text and " sandbox " in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    # The framed HTML: the mail's own, French, unable to run anything or leave the frame.
    assert html.status_code == 200 and "Pensions rise" in html.text and "Se désabonner" in html.text
    csp = html.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "script-src" not in csp and "frame-ancestors 'self'" in csp
    assert html.headers["x-frame-options"] == "SAMEORIGIN"
    assert "Unsubscribe" in english.text and "Se désabonner" not in english.text


def test_a_test_copy_goes_to_one_address_marked_test_and_is_audited(site: Console) -> None:
    with site.client() as client:
        token = sign_in(client)
        bad = client.post(
            "/admin/lists/weekly/test",
            data={"csrf_token": token, "address": "not an address", "language": "es"},
        )
        assert bad.status_code == 422 and "No test copy was sent" in bad.text
        assert actions(site)[0][0] == "sign-in"
        sent = client.post(
            "/admin/lists/weekly/test",
            data={"csrf_token": token, "address": "Editor@Example.org", "language": "es"},
        )
        assert sent.status_code == 303
        assert sent.headers["location"].startswith("/admin/lists/weekly?done=test-sent")
        after = client.get(sent.headers["location"])
        assert "A test copy of weekly was sent." in after.text
    (message,) = outbox(site)
    assert message["To"] == "Editor@example.org"  # the domain lower-cased, as the CLI does
    assert str(message["Subject"]).startswith("[TEST] ") and "noticia nueva" in str(message["Subject"])
    assert ("test copy sent", "weekly (es) to Editor@Example.org") in actions(site)
    assert site.publisher.digest_status("weekly") == []  # a test copy records no issue


def test_export_is_the_cli_csv_with_formulas_escaped_and_audited(site: Console) -> None:
    site.publisher.add_subscriber("weekly", "eve@example.org", '=HYPERLINK("http://evil")')
    with site.client() as client:
        token = sign_in(client)
        answer = client.post("/admin/lists/weekly/export", data={"csrf_token": token})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="weekly.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["email"] for r in rows] == ["eve@example.org"]
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil")'
    assert ("subscribers exported", "weekly: 1 rows") in actions(site)


# -- Subscribers ------------------------------------------------------------------------------


def test_search_by_address_or_name_is_paged(site: Console) -> None:
    for n in range(55):
        site.publisher.add_subscriber("weekly", f"reader{n:02d}@example.org", f"Reader {n}")
    site.publisher.add_subscriber("weekly", "zoe@example.org", "Zoé 100%_sure")
    with site.client() as client:
        sign_in(client)
        first = client.get("/admin/subscribers", params={"q": "READER"})
        second = client.get("/admin/subscribers", params={"q": "reader", "page": "2"})
        by_name = client.get("/admin/subscribers", params={"q": "zoé"})
        literal = client.get("/admin/subscribers", params={"q": "0%_s"})
        wildcard = client.get("/admin/subscribers", params={"q": "%"})

    def addresses(answer: httpx.Response) -> list[str]:
        return re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', answer.text)

    assert "55 subscribers" in first.text and "page 1 of 2" in first.text
    assert len(addresses(first)) == 50 and addresses(first)[0] == "reader00@example.org"
    assert addresses(second) == [f"reader{n}@example.org" for n in range(50, 55)]
    assert 'href="/admin/subscribers?q=reader&amp;page=1"' in second.text
    assert addresses(by_name) == ["zoe@example.org"]
    assert addresses(literal) == ["zoe@example.org"]  # % and _ are not wildcards
    assert addresses(wildcard) == ["zoe@example.org"]


def test_a_page_number_out_of_range_shows_a_page_not_an_error(site: Console) -> None:
    site.publisher.add_subscriber("weekly", "ana@example.org", "Ana")
    with site.client() as client:
        sign_in(client)
        for page in ("9" * 30, "-3", "0", "x", "²"):
            answer = client.get("/admin/subscribers", params={"q": "ana", "page": page})
            assert answer.status_code == 200, page
            assert "1 subscriber" in answer.text, page
            assert client.get("/admin/audit", params={"page": page}).status_code == 200, page
        unknown = client.get("/admin/subscribers/" + "9" * 30)
        assert unknown.status_code == 303 and "done=subscriber-unknown" in unknown.headers["location"]


def test_add_then_the_subscriber_page_shows_lists_consent_deliveries_and_audit(site: Console) -> None:
    with site.client() as client:
        token = sign_in(client)
        refused = client.post(
            "/admin/subscribers/add", data={"csrf_token": token, "list": "weekly", "email": "nobody"}
        )
        assert refused.status_code == 422 and "Not added" in refused.text
        added = client.post(
            "/admin/subscribers/add",
            data={
                "csrf_token": token,
                "list": "weekly",
                "email": "ana@Example.org",
                "name": "Ana",
                "language": "fr",
            },
        )
        assert added.status_code == 303
        location = added.headers["location"]
        assert re.match(r"/admin/subscribers/\d+\?done=subscriber-added", location)
        asyncio.run(site.publisher.send_digest("weekly"))
        page = client.get(location)
    assert page.status_code == 200
    assert "<h1>ana@example.org</h1>" in page.text
    assert "ana@example.org on weekly is subscribed." in page.text
    subscription = re.search(r'<table class="stacked" id="subscriptions">.*?</table>', page.text, re.S)
    assert subscription is not None
    assert "confirmed" in subscription.group(0) and "cli" in subscription.group(0)
    deliveries = page.text.split('id="deliveries"')[1].split('id="feedback"')[0]
    assert "sent" in deliveries and "weekly" in deliveries
    audit = page.text.split('<h2 id="audit">')[1]
    assert "subscriber added" in audit and "ana@example.org (#" in audit


def test_unsubscribe_suppress_unsuppress_are_the_cli_operations(site: Console) -> None:
    p = site.publisher
    ana = p.add_subscriber("weekly", "ana@example.org")
    base = f"/admin/subscribers/{ana.id}"
    with site.client() as client:
        token = sign_in(client)
        answer = client.post(f"{base}/suppress", data={"csrf_token": token, "status": "complained"})
        assert answer.status_code == 303
        assert p.subscriber("ana@example.org").lists[0].status.value == "complained"
        page = client.get(answer.headers["location"])
        feedback = page.text.split('id="feedback"')[1].split('id="history"')[0]
        assert "complaint" in feedback and "by hand" in feedback  # the bounce events table
        assert 'id="unsuppress"' in page.text
        assert client.post(f"{base}/unsuppress", data={"csrf_token": token}).status_code == 303
        assert p.subscriber("ana@example.org").lists[0].status.value == "confirmed"
        answer = client.post(f"{base}/unsubscribe", data={"csrf_token": token, "list": "weekly"})
        assert answer.status_code == 303 and "done=subscriber-removed" in answer.headers["location"]
        assert p.subscriber("ana@example.org").lists[0].status.value == "unsubscribed"
        wrong = client.post(f"{base}/suppress", data={"csrf_token": token, "status": "confirmed"})
        assert wrong.status_code == 422
    done = [a for a, _ in actions(site)]
    assert done[:3] == ["subscriber unsubscribed", "subscriber unsuppressed", "subscriber suppressed"]


def test_forget_asks_first_then_erases_and_scrubs_the_audit_log(site: Console) -> None:
    p = site.publisher
    ana = p.add_subscriber("weekly", "ana@example.org", "Ana")
    base = f"/admin/subscribers/{ana.id}"
    with site.client() as client:
        token = sign_in(client)
        client.post(f"{base}/suppress", data={"csrf_token": token, "status": "bounced"})
        confirm = client.get(f"{base}/forget")
        assert confirm.status_code == 200 and 'id="confirm-forget"' in confirm.text
        assert p.subscriber_record(ana.id).email == "ana@example.org"  # type: ignore[union-attr]
        unconfirmed = client.post(f"{base}/forget", data={"csrf_token": token})
        assert unconfirmed.status_code == 422
        assert p.subscriber_record(ana.id).email == "ana@example.org"  # type: ignore[union-attr]
        done = client.post(f"{base}/forget", data={"csrf_token": token, "confirm": "yes"})
        assert done.status_code == 303
        page = client.get(done.headers["location"])
    assert p.subscriber_record(ana.id).email is None  # type: ignore[union-attr]
    assert "Forgotten subscriber #" in page.text and "ana@example.org" not in page.text
    assert all("ana@example.org" not in detail for _, detail in actions(site))
    assert ("subscriber suppressed", f"forgotten (#{ana.id}) as bounced: weekly") in actions(site)


def test_import_shows_rejected_rows_before_committing_and_commits_the_held_file(site: Console) -> None:
    p = site.publisher
    data = (
        "email,name\n"
        "ana@example.org,Ana\n"
        "not-an-address,Bad\n"
        "ben@example.org,Ben\n"
        ",Nobody\n"
        "ana@example.org,Ana again\n"
    )
    with site.client() as client:
        token = sign_in(client)
        upload = client.post(
            "/admin/subscribers/import",
            data={"csrf_token": token, "list": "weekly"},
            files={"file": ("new readers.csv", data.encode(), "text/csv")},
        )
        assert upload.status_code == 303
        held = upload.headers["location"]
        assert re.fullmatch(r"/admin/subscribers/import/[0-9a-f]{32}", held)
        check = client.get(held)
        assert p.search_subscribers().total == 0  # nothing imported before the commit
        summary = re.search(r'<p id="import-summary"[^>]*>(.*?)</p>', check.text, re.S)
        assert summary is not None
        assert (
            "Import 5 rows of <code>new_readers.csv</code> into Weekly digest, 2 rejected" in summary.group(1)
        )
        rejected = re.findall(
            r'<td data-label="Line">([^<]+)</td><td data-label="Reason">([^<]+)</td>', check.text
        )
        assert [line for line, _ in rejected] == ["new_readers.csv:3", "new_readers.csv:5"]
        assert all(reason for _, reason in rejected)
        committed = client.post(f"{held}/commit", data={"csrf_token": token})
        assert committed.status_code == 303 and "done=import-done" in committed.headers["location"]
        again = client.post(f"{held}/commit", data={"csrf_token": token})
        assert "done=import-gone" in again.headers["location"]
        bad_file = client.post(
            "/admin/subscribers/import",
            data={"csrf_token": token, "list": "weekly"},
            files={"file": ("x.csv", b"name\nAna\n", "text/csv")},
        )
        assert bad_file.status_code == 422 and "no" in bad_file.text and "email" in bad_file.text
    assert sorted(m.email or "" for m in p.search_subscribers().matches) == [
        "ana@example.org",
        "ben@example.org",
    ]
    record = p.subscriber("ana@example.org")
    assert record.lists[0].consent_method == "import" and record.lists[0].consent_source == "new_readers.csv"
    assert [a for a, _ in actions(site)][:2] == ["subscribers imported", "import uploaded"]
    uploads = p.settings.path.parent / "var" / "uploads"  # type: ignore[union-attr]
    assert list(uploads.iterdir()) == []  # the held file is gone once used


def test_a_form_or_an_upload_over_its_size_limit_is_refused_and_changes_nothing(site: Console) -> None:
    with site.client() as client:
        token = sign_in(client)
        form = {"csrf_token": token, "list": "weekly", "email": "ana@example.org", "name": "x" * 70_000}
        assert client.post("/admin/subscribers/add", data=form).status_code == 413  # forms: 64 KiB
        row = b"someone.with.a.long.address@example.org,Someone\n"
        huge = b"email,name\n" + row * (20 * 1024 * 1024 // len(row) + 1)  # uploads: 20 MiB
        upload = client.post(
            "/admin/subscribers/import",
            data={"csrf_token": token, "list": "weekly"},
            files={"file": ("huge.csv", huge, "text/csv")},
        )
        assert upload.status_code == 413
        small = client.post(
            "/admin/subscribers/import",
            data={"csrf_token": token, "list": "weekly"},
            files={"file": ("small.csv", huge[: 1024 * 1024], "text/csv")},
        )
        assert small.status_code == 303  # the limit is the upload's, not a form's
    assert site.publisher.search_subscribers().total == 0
    uploads = site.publisher.settings.path.parent / "var" / "uploads"  # type: ignore[union-attr]
    assert len(list(uploads.iterdir())) == 1  # only the small file is held


def test_a_discarded_or_expired_upload_cannot_be_committed(site: Console) -> None:
    with site.client() as client:
        token = sign_in(client)

        def upload() -> str:
            answer = client.post(
                "/admin/subscribers/import",
                data={"csrf_token": token, "list": "weekly"},
                files={"file": ("a.csv", b"email\nana@example.org\n", "text/csv")},
            )
            return str(answer.headers["location"])

        first = upload()
        assert client.post(f"{first}/discard", data={"csrf_token": token}).status_code == 303
        assert (
            "done=import-gone"
            in client.post(f"{first}/commit", data={"csrf_token": token}).headers["location"]
        )
        second = upload()
        site.clock.now += timedelta(hours=1, seconds=1)
        assert "done=import-gone" in client.get(second).headers["location"]
        assert (
            "done=import-gone"
            in client.post(f"{second}/commit", data={"csrf_token": token}).headers["location"]
        )
    assert site.publisher.search_subscribers().total == 0


# -- Items --------------------------------------------------------------------------------------


def test_hiding_an_item_rebuilds_the_feeds_without_it_and_unhiding_brings_it_back(site: Console) -> None:
    feed = site.publisher.settings.feeds.output_dir / "feeds" / "all.atom.xml"
    assert "Pensions rise" in feed.read_text()
    (listed,) = [i for i in site.publisher.items() if i.item.title == "Pensions rise"]
    with site.client() as client:
        token = sign_in(client)
        page = client.get("/admin/items")
        assert "Pensions rise" in page.text and "News" in page.text and "sample" in page.text
        answer = client.post("/admin/items/hide", data={"csrf_token": token, "id": listed.item.id})
        assert answer.status_code == 303
        assert "Pensions rise" not in feed.read_text()
        after = client.get(answer.headers["location"])
        assert "Hidden: Pensions rise." in after.text and ">hidden</span>" in after.text
        assert (
            client.post("/admin/items/unhide", data={"csrf_token": token, "id": listed.item.id}).status_code
            == 303
        )
        assert "Pensions rise" in feed.read_text()
        unknown = client.post("/admin/items/hide", data={"csrf_token": token, "id": "no-such-id"})
        assert "done=item-unknown" in unknown.headers["location"]
    assert [a for a, _ in actions(site)][:2] == ["item unhidden", "item hidden"]


def test_the_items_page_lists_failed_sources_and_rejected_items_of_the_last_ingest(site: Console) -> None:
    with site.client() as client:
        sign_in(client)
        page = client.get("/admin/items")
    failed = page.text.split('id="failed-sources"')[1].split('id="rejected-items"')[0]
    assert "upstream" in failed and "missing/news.atom" in failed
    rejected = page.text.split('id="rejected-items"')[1]
    assert "undated.md" in rejected and "date" in rejected
    # A later read that rejects nothing clears the source's list.
    (site.config.parent / "content" / "undated.md").unlink()
    site.publisher.ingest()
    assert site.publisher.ingest_problems().rejected == []


def test_an_upload_is_held_for_its_uploader_only_and_ids_are_checked(site: Console) -> None:
    p = site.publisher
    held = p.hold_import("weekly", "../../etc/passwd", b"email\nana@example.org\n", "bob")
    assert held.check.file_name == "passwd" and held.check.addresses == 1
    named_like_the_record = p.hold_import("weekly", "meta.json", b"email\nben@example.org\n", "bob")
    assert named_like_the_record.check.addresses == 1
    p.discard_import(named_like_the_record.id, "bob")
    with pytest.raises(SubscriberError):
        p.held_import(held.id, "alice")  # another admin's upload
    for forged in ("../" + held.id, held.id.upper(), "", "x" * 32):
        with pytest.raises(SubscriberError):
            p.commit_import(forged, "bob")
    assert p.search_subscribers().total == 0
    p.commit_import(held.id, "bob")
    assert p.search_subscribers().total == 1


def test_holding_an_upload_keeps_one_another_request_is_holding_and_drops_old_ones(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    uploads = HeldUploads(tmp_path)
    being_held = tmp_path / ("a" * 32)  # another request's: folder made, meta.json not yet written
    being_held.mkdir()
    abandoned = tmp_path / ("b" * 32)  # a crash between the two, two hours ago
    abandoned.mkdir()
    two_hours_ago = (now - timedelta(hours=2)).timestamp()
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    broken = tmp_path / ("c" * 32)  # meta.json without the fields: unknown, not a crash
    broken.mkdir()
    (broken / META).write_text("{}")
    held = uploads.hold(b"email\nana@example.org\n", "a.csv", "weekly", "alice", now)
    assert being_held.is_dir() and not abandoned.exists()
    assert uploads.get(held.id, "alice", now).path.read_bytes() == b"email\nana@example.org\n"
    with pytest.raises(SubscriberError, match="unknown or expired"):
        uploads.get("c" * 32, "alice", now)


def test_the_new_pages_change_nothing_on_get_with_real_data(site: Console) -> None:
    p = site.publisher
    ana = p.add_subscriber("weekly", "ana@example.org", "Ana")
    with site.client() as client:
        token = sign_in(client)
        upload = client.post(
            "/admin/subscribers/import",
            data={"csrf_token": token, "list": "weekly"},
            files={"file": ("a.csv", b"email\nben@example.org\n", "text/csv")},
        ).headers["location"]
        before = (p.audit_count(), p.subscriber_record(ana.id), p.search_subscribers().total, p.items())
        for path in (
            "/admin/lists",
            "/admin/lists/weekly?language=es",
            "/admin/lists/weekly/preview.html?language=fr",
            "/admin/subscribers?q=ana",
            f"/admin/subscribers/{ana.id}",
            f"/admin/subscribers/{ana.id}/forget",
            upload,
            "/admin/items",
        ):
            assert client.get(path).status_code == 200, path
            assert client.head(path).status_code == 200, path
        after = (p.audit_count(), p.subscriber_record(ana.id), p.search_subscribers().total, p.items())
        assert after == before
        assert client.post(f"{upload}/commit", data={"csrf_token": token}).status_code == 303  # still held
