"""Digests end to end: issues per period, the ledger, retries, crashes, outboxes.

Messages go to a real SMTP server on loopback (aiosmtpd, scripted to misbehave) or
to a real Maildir; the store is SQLite and PostgreSQL. The clock is controlled so
periods, max_age and retry times are deterministic.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from sqlalchemy import select

from publisher import digests, ledger
from publisher.app import Publisher
from publisher.config import Settings
from publisher.errors import ConfigError, IssueError, TemplateError
from publisher.models import Consent, DeliveryStatus, Item, SubscriptionStatus
from publisher.store import Store
from publisher.store.subscriber_import import ImportRow
from publisher.store.tables import deliveries
from publisher.subscriptions import add, remove
from tests.smtp_server import Rule, SmtpSink

# Wednesday 2026-11-25 10:00 Zurich: inside the period that started Monday 09:00.
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [
    {
        "slug": "weekly",
        "name": "Weekly digest",
        "categories": ["*"],
        "schedule": "weekly-digest",
        "sender": "Social Protection <news@example.org>",
        "subject": "This week: {{ t('new_items', count=items|length) }}",
    },
    {
        "slug": "press",
        "name": "Press releases",
        "categories": ["press-releases"],
        "schedule": "weekly-digest",
        "sender": "Press <press@example.org>",
    },
]
SCHEDULES = {"weekly-digest": {"cron": "0 9 * * mon", "job": "digest", "timezone": "Europe/Zurich"}}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def item(n: int, published: datetime, category: str | None = "news") -> Item:
    return Item(
        id=f"urn:test:{n}",
        source="sample",
        title=f"Item {n}",
        link=f"https://example.org/{n}",
        published=published,
        updated=published,
        language="en",
        summary=f"<p>Summary {n}</p>",
        category=category,
        label=category,
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


def make_publisher(
    settings: Settings, clock: Clock, smtp: SmtpSink | None = None, **smtp_overrides: Any
) -> Publisher:
    if smtp is not None:
        settings = settings.model_copy(update={"smtp": smtp.config(**smtp_overrides)})
    return Publisher(settings, Store(settings.storage.url), clock=clock)


def subscribe(pub: Publisher, n: int, list_slug: str = "weekly", language: str = "en") -> list[str]:
    addresses = [f"reader{i}@example.org" for i in range(n)]
    for i, address in enumerate(addresses):
        add(pub.settings, pub.store, list_slug, address, f"Reader {i}", language, now=pub.clock())
    return addresses


def send(pub: Publisher, list_slug: str = "weekly", **kw: Any) -> digests.DigestReport:
    return asyncio.run(pub.send_digest(list_slug, **kw))


def test_one_issue_per_period_each_subscriber_once(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(days=1)), item(2, NOW - timedelta(days=2))], [], NOW)
    addresses = subscribe(pub, 5)

    first = send(pub)
    assert first.created and first.items == 2 and first.recipients == 5
    assert first.sent == 5 and first.ok
    assert first.period_key == "2026-11-23T08:00:00Z"  # Monday 09:00 Zurich
    assert sorted(r for m in smtp_server.accepted() for r in m.rcpt_tos) == sorted(addresses)

    clock.now += timedelta(hours=3)
    pub.store.items.save([item(3, clock.now)], [], clock.now)
    again = send(pub)  # same period: no second issue, nothing sent
    assert not again.created and again.sent == 0
    assert len(smtp_server.accepted()) == 5

    status = pub.digest_status("weekly")
    assert len(status) == 1 and status[0].sent == 5 and status[0].total == 5

    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # next week's period
    nxt = send(pub)
    assert nxt.created and nxt.items == 1  # only item 3: nothing falls between, nothing twice
    held = pub.store.issues.item_ids(nxt.issue_id or 0)
    assert held == ["urn:test:3"]
    assert len(smtp_server.accepted()) == 10


def test_message_is_personal_and_one_click_ready(settings: Settings, smtp_server: SmtpSink) -> None:
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=5))], [], NOW)
    add(pub.settings, pub.store, "weekly", "amina@example.org", "Amina Diallo", "fr", now=pub.clock())
    send(pub)
    (received,) = smtp_server.accepted()
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert msg["To"].addresses[0].display_name == "Amina Diallo"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/" in msg["List-Unsubscribe"]
    assert msg["Subject"] == "This week: 1 nouvelle actualité"  # plural rules, reader's language
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Item 1" in text and "Amina Diallo" in text
    assert "désabonner" in text.lower()  # French fixed strings for a French reader


def test_nothing_new_means_no_issue_and_first_issue_never_floods(
    settings: Settings, smtp_server: SmtpSink
) -> None:
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    subscribe(pub, 2)
    pub.store.items.save([item(1, NOW - timedelta(days=30))], [], NOW)  # older than max_age 14d
    report = send(pub)
    assert report.issue_id is None and "nothing new" in report.note
    assert smtp_server.accepted() == []
    assert pub.digest_status() == []


def test_list_categories_filter(settings: Settings, smtp_server: SmtpSink) -> None:
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    subscribe(pub, 1, "press")
    pub.store.items.save(
        [item(1, NOW - timedelta(days=1), "news"), item(2, NOW - timedelta(days=1), "press-releases")],
        [],
        NOW,
    )
    report = send(pub, "press")
    assert report.items == 1
    assert pub.store.issues.item_ids(report.issue_id or 0) == ["urn:test:2"]


def test_deferred_is_retried_with_backoff_then_sent(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 3)
    smtp_server.script(
        Rule("rcpt", reply="451 4.3.0 try again later", recipient="reader1@example.org", times=1)
    )
    first = send(pub)
    assert first.sent == 2 and first.deferred == 1 and first.ok

    clock.now += timedelta(minutes=2)  # before the 5 minute backoff: not retried yet
    assert send(pub).sent == 0
    clock.now += timedelta(minutes=4)
    retry = send(pub)
    assert retry.sent == 1
    assert len(smtp_server.accepted_for("reader1@example.org")) == 1
    assert len(smtp_server.accepted()) == 3


def test_deferred_gives_up_after_three_days(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 1)
    smtp_server.script(Rule("rcpt", reply="452 4.2.2 mailbox full"))
    assert send(pub).deferred == 1
    clock.now += timedelta(days=3, minutes=1)
    final = send(pub)
    assert final.tally.failed == 1 and not final.ok
    (row,) = pub.digest_status()
    assert row.failed == 1 and row.deferred == 0


def test_hard_bounce_suppresses_address(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    add(pub.settings, pub.store, "press", "reader0@example.org", "Reader 0", "en", now=pub.clock())
    smtp_server.script(Rule("rcpt", reply="550 5.1.1 user unknown", recipient="reader0@example.org"))
    report = send(pub)
    assert report.tally.bounced == 1 and report.sent == 1
    record = pub.store.subscribers.statuses(pub.store.subscribers.find_id("reader0@example.org"))
    assert record["weekly"] == SubscriptionStatus.BOUNCED
    assert record["press"] == SubscriptionStatus.BOUNCED  # the mailbox is gone for every list

    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    pub.store.items.save([item(2, clock.now)], [], clock.now)
    nxt = send(pub)
    assert nxt.recipients == 1  # the bounced address is not in the next issue


def test_a_refusal_with_a_nul_in_its_text_is_recorded_with_the_rest(
    settings: Settings, smtp_server: SmtpSink
) -> None:
    """A relay may put anything in a reply; PostgreSQL refuses NUL in text.

    The refusal is recorded with the NUL shown as an escape, and the batch it came in
    with (the other reader's message) is recorded too.
    """
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    smtp_server.script(Rule("rcpt", reply="550 5.1.1 no\x00such user", recipient="reader0@example.org"))
    report = send(pub)
    assert report.tally.bounced == 1 and report.sent == 1
    with pub.store.engine.connect() as conn:
        texts = {
            status: text for status, text in conn.execute(select(deliveries.c.status, deliveries.c.last_text))
        }
    assert "no\\x00such user" in texts["bounced"] and "sent" in texts


def test_421_slows_down_without_failing(settings: Settings, smtp_server: SmtpSink) -> None:
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 4)
    smtp_server.script(Rule("mail", reply="421 4.7.0 too many messages, slow down", times=2))
    report = send(pub)
    assert report.sent == 4 and report.failed == 0 and report.deferred == 0


def test_drop_after_data_is_unknown_and_not_resent(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    smtp_server.script(Rule("data", drop=True, recipient="reader0@example.org", times=1))
    report = send(pub)
    assert report.tally.unknown == 1 and report.sent == 1
    clock.now += timedelta(hours=5)
    assert send(pub).sent == 0  # unknown is never resent automatically
    (row,) = pub.digest_status()
    assert row.unknown == 1

    # Only an admin's explicit ask (`digest send --resend-unknown`) sends it again.
    assert pub.requeue_unknown("weekly") == 1
    assert send(pub).sent == 1
    assert len(smtp_server.received) == 3  # reader0's first copy reached the server, then the resend


def test_unsubscribed_after_issue_creation_is_skipped(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    smtp_server.script(Rule("rcpt", reply="451 4.3.0 later", recipient="reader1@example.org", times=1))
    send(pub)
    remove(pub.store, "weekly", "reader1@example.org", now=pub.clock())
    clock.now += timedelta(minutes=10)
    retry = send(pub)
    assert retry.sent == 0 and retry.tally.skipped == 1
    assert smtp_server.accepted_for("reader1@example.org") == []


def test_maildir_outbox_without_smtp(settings: Settings) -> None:
    pub = make_publisher(settings, Clock(NOW))
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 3)
    assert send(pub).sent == 3
    box = mailbox.Maildir(settings.outbox.path, create=False)
    recipients = sorted(str(m["To"]) for m in box)
    assert len(recipients) == 3 and all("@example.org" in r for r in recipients)


def test_force_sends_an_extra_issue(settings: Settings) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 1)
    send(pub)
    pub.store.items.save([item(2, NOW)], [], NOW)
    extra = send(pub, force=True)
    assert extra.created and extra.period_key.endswith("#extra-1") and extra.items == 1


def test_preview_dry_run_and_test_copy_record_nothing(
    settings: Settings, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    preview = pub.preview_digest("weekly", tmp_path / "preview")
    assert {p.suffix for p in preview.files} == {".html", ".eml"}
    assert "Item 1" in (tmp_path / "preview" / "weekly.html").read_text()
    dry = pub.dry_run_digest("weekly")
    assert dry.items == 1 and dry.recipients == 2
    result = asyncio.run(pub.send_test_copy("weekly", "editor@example.org"))
    assert result.status == DeliveryStatus.SENT
    assert [m.rcpt_tos for m in smtp_server.accepted()] == [["editor@example.org"]]
    assert pub.digest_status() == []  # no issue, no delivery recorded
    assert send(pub).created  # the real issue is still to come
    # Between issues a preview shows the latest issue's items, so templates can be checked.
    again = pub.preview_digest("weekly", tmp_path / "again")
    assert again.items == 1 and "Item 1" in (tmp_path / "again" / "weekly.html").read_text()


CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime, UTC
    from publisher.app import Publisher
    from publisher.config import load_config
    from publisher import digests
    settings = load_config(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    pub = Publisher(settings, clock=lambda: now)
    asyncio.run(pub.send_digest("weekly"))
    """
)


@pytest.mark.slow
def test_sigkill_mid_issue_then_rerun_serves_everyone_once(
    make_settings: Callable[..., Settings], tmp_path: Path, store_url: str, smtp_server: SmtpSink
) -> None:
    connections = 4
    db = store_url
    config = tmp_path / "crash.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [site]
            base_url = "http://127.0.0.1:8080"
            timezone = "Europe/Zurich"
            postal_address = "1 Main Street, Geneva"
            [storage]
            url = "{db}"
            [smtp]
            host = "{smtp_server.host}"
            port = {smtp_server.port}
            connections = {connections}
            [delivery]
            journal_dir = "{tmp_path / "journal"}"
            batch_size = 50
            [[sources]]
            name = "sample"
            type = "directory"
            path = "content"
            [[lists]]
            slug = "weekly"
            name = "Weekly"
            sender = "News <news@example.org>"
            schedule = "weekly-digest"
            [schedules.weekly-digest]
            cron = "0 9 * * mon"
            job = "digest"
            """
        )
    )
    from publisher.config import load_config

    settings = load_config(config)
    pub = Publisher(settings, Store(settings.storage.url), clock=Clock(NOW))
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    total = 400
    rows = "\n".join(f"r{i}@example.org,Reader {i},en" for i in range(total))
    csv = tmp_path / "subs.csv"
    csv.write_text("email,name,language\n" + rows + "\n")
    from publisher.subscriptions import import_csv

    import_csv(settings, pub.store, "weekly", csv, now=pub.clock())
    smtp_server.script(Rule("data", delay=0.01))  # slow enough to be killed mid-issue

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(config), NOW.isoformat()], env=env)
    deadline = time.monotonic() + 60
    while len(smtp_server.accepted()) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
        assert proc.poll() is None, "the sender finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before_rerun = len(smtp_server.accepted())
    assert 100 <= before_rerun < total

    smtp_server.script()  # keep the delay rule; rerun in this process
    report = asyncio.run(pub.send_digest("weekly"))
    assert not report.created  # the same issue continues

    per_recipient = Counter(r for m in smtp_server.accepted() for r in m.rcpt_tos)
    assert max(per_recipient.values()) == 1, "someone got the issue twice"
    missing = total - len(per_recipient)
    assert missing <= connections
    (row,) = pub.digest_status()
    assert row.sent + row.unknown == total
    assert missing <= row.unknown <= connections  # only in-flight messages are in doubt
    assert row.pending == row.sending == 0


def test_failures_say_why_each_delivery_was_not_sent_newest_issue_first(
    settings: Settings, smtp_server: SmtpSink
) -> None:
    """`digest failures`' library half: rows with the server's reply, reasons counted.

    The refusals name their recipient (as Postfix does), yet count as one reason; a
    multi-line reply's reason is its first line; the row keeps the whole reply.
    """
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1), "press-releases")], [], NOW)
    subscribe(pub, 5)  # reader0 to reader4 on weekly
    add(pub.settings, pub.store, "press", "reader5@example.org", "Reader 5", "en", now=clock())
    unknown = "550 5.1.1 <{0}>: Recipient address rejected: User unknown in virtual mailbox table"
    smtp_server.script(
        *(
            Rule("rcpt", reply=unknown.format(a), recipient=a)
            for a in ("reader0@example.org", "reader1@example.org")
        ),
        Rule("rcpt", reply="452 4.2.2 mailbox full", recipient="reader2@example.org"),
        Rule(
            "rcpt",
            reply="554-5.7.1 Message refused\r\n554 5.7.1 see https://mail.example.net/why",
            recipient="reader3@example.org",
        ),
        Rule("rcpt", reply="554 5.7.1 not from here", recipient="reader5@example.org", times=1),
    )
    assert send(pub).sent == 1  # reader4
    clock.now += timedelta(minutes=1)
    assert send(pub, "press").tally.failed == 1  # reader5, on the press list

    report = pub.delivery_failures()
    assert [(i.list_slug, i.total) for i in report.issues] == [("press", 1), ("weekly", 5)]
    assert report.total == 5 and len(report.deliveries) == 5
    newest = report.deliveries[0]
    assert (newest.email, newest.list_slug, newest.status, newest.code) == (
        "reader5@example.org",
        "press",
        "failed",
        554,
    )
    by_address = {d.email: d for d in report.deliveries}
    assert by_address["reader0@example.org"].status == "bounced"
    assert by_address["reader0@example.org"].text == unknown.format("reader0@example.org").removeprefix(
        "550 "
    )
    deferred = by_address["reader2@example.org"]
    assert (deferred.status, deferred.code, deferred.attempts) == ("deferred", 452, 1)
    assert deferred.next_attempt is not None and deferred.next_attempt > clock.now - timedelta(minutes=1)
    assert deferred.worker and deferred.period_key == report.issues[1].period_key
    assert (
        by_address["reader3@example.org"].text
        == "5.7.1 Message refused\n5.7.1 see https://mail.example.net/why"
    )
    assert (
        by_address["reader3@example.org"].shown_text
        == "5.7.1 Message refused 5.7.1 see https://mail.example.net/why"
    )
    reasons = [(r.count, r.status, r.code, r.reason) for r in report.reasons]
    assert reasons == [
        (
            2,
            "bounced",
            550,
            "5.1.1 <address>: Recipient address rejected: User unknown in virtual mailbox table",
        ),
        (1, "deferred", 452, "4.2.2 mailbox full"),
        (1, "failed", 554, "5.7.1 Message refused"),
        (1, "failed", 554, "5.7.1 not from here"),
    ]

    weekly = pub.delivery_failures("weekly", statuses=(DeliveryStatus.BOUNCED,), limit=1)
    assert weekly.total == 2 and len(weekly.deliveries) == 1 and weekly.deliveries[0].status == "bounced"
    assert [(r.count, r.status) for r in weekly.reasons] == [(2, "bounced")]
    (weekly_issue,) = weekly.issues
    assert pub.delivery_failures(issue_id=weekly_issue.id).total == 4
    with pytest.raises(IssueError):
        pub.delivery_failures("press", issue_id=weekly_issue.id)  # another list's issue
    with pytest.raises(IssueError):
        pub.delivery_failures(issue_id=weekly_issue.id + 100)
    with pytest.raises(ConfigError):
        pub.delivery_failures("nope")

    # A new period's issue is the one looked at by default; the old one stays reachable.
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    pub.store.items.save([item(2, clock.now)], [], clock.now)
    smtp_server.script()  # the same rules: reader0/1 are suppressed now, reader2 still full
    send(pub)
    latest = pub.delivery_failures("weekly")
    assert latest.issues[0].id != weekly_issue.id
    assert {d.email for d in latest.deliveries} == {"reader2@example.org", "reader3@example.org"}
    assert pub.delivery_failures("weekly", issue_id=weekly_issue.id).total == 4


def test_stop_request_leaves_the_rest_queued(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    addresses = subscribe(pub, 30)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if done == 10:
            pub.request_stop()  # what SIGTERM does in `run` and `worker`

    first = send(pub, progress=progress)
    assert 10 <= first.sent < 30 and first.tally.released == 30 - first.sent and first.tally.unknown == 0
    (row,) = pub.digest_status()
    assert row.pending == 30 - first.sent and row.sending == 0

    pub._stop = False  # a new process would start without the stop flag
    rest = send(pub)
    assert rest.sent == 30 - first.sent
    per_recipient = Counter(r for m in smtp_server.accepted() for r in m.rcpt_tos)
    assert sorted(per_recipient) == sorted(addresses) and set(per_recipient.values()) == {1}


def test_worker_delivers_what_another_process_queued(settings: Settings, smtp_server: SmtpSink) -> None:
    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 5)
    pub.request_stop()  # the issue is created, nothing sent: as if the sender stopped at once
    queued = send(pub)
    assert queued.created and queued.sent == 0
    worker = make_publisher(settings, clock, smtp_server)  # `publisher worker --once`
    rounds: list[int] = []
    asyncio.run(worker.deliver_queue(once=True, on_round=lambda t: rounds.append(t.sent)))
    assert rounds == [5] and len(smtp_server.accepted()) == 5


@pytest.mark.parametrize("interval", [0.0, -1.0, 0.05, float("nan"), float("inf"), 3601.0])
def test_a_worker_interval_that_would_busy_loop_or_never_wake_is_refused(
    settings: Settings, smtp_server: SmtpSink, interval: float
) -> None:
    worker = make_publisher(settings, Clock(NOW), smtp_server)
    with pytest.raises(ConfigError, match=r"worker interval .*: choose between 0\.1 and 3600 seconds"):
        asyncio.run(worker.deliver_queue(interval=interval))


def test_languages_outside_the_catalogue_share_one_render(
    settings: Settings, smtp_server: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    # Languages are refused on the way in now; these were stored before that (or by hand).
    readers = [
        ImportRow(f"r{n}@example.org", f"R {n}", lang) for n, lang in enumerate(["de", "pt", "it", "en"])
    ]
    pub.store.subscribers.import_rows("weekly", readers, Consent(at=pub.clock(), method="import"), "en")
    rendered: list[str] = []
    real_render = ledger.render_stored_issue

    def counting(*args: Any, **kwargs: Any) -> Any:
        rendered.append(args[4])  # the language rendered
        return real_render(*args, **kwargs)

    monkeypatch.setattr(ledger, "render_stored_issue", counting)
    assert send(pub).sent == 4
    assert rendered == ["en"]  # de, pt and it read the site language's render


def test_forget_clears_what_the_smtp_server_said_about_the_address(
    settings: Settings, smtp_server: SmtpSink
) -> None:
    from sqlalchemy import select

    from publisher.store.tables import deliveries, delivery_attempts
    from publisher.subscriptions import forget

    pub = make_publisher(settings, Clock(NOW), smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 1)
    smtp_server.script(Rule("rcpt", reply="550 5.1.1 <reader0@example.org>: user unknown"))
    send(pub)
    with pub.store.engine.connect() as conn:
        assert "reader0@example.org" in conn.execute(select(deliveries.c.last_text)).scalar_one()
    assert forget(pub.store, "reader0@example.org", now=pub.clock())
    with pub.store.engine.connect() as conn:
        assert conn.execute(select(deliveries.c.last_text)).scalar_one() is None
        assert conn.execute(select(delivery_attempts.c.text)).scalars().all() == [None]
        assert conn.execute(select(deliveries.c.status)).scalar_one() == "bounced"  # the ledger stays


def _parts(message: mailbox.MaildirMessage) -> tuple[str, str]:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    html_part = parsed.get_body(preferencelist=("html",))
    text_part = parsed.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    return html_part.get_content(), text_part.get_content()


def test_an_issue_shows_max_items_and_counts_the_rest_which_the_next_issue_does_not_bring(
    make_settings: Callable[..., Settings], tmp_path: Path, store_url: str
) -> None:
    settings = make_settings(
        storage={"url": store_url},
        lists=[{**LISTS[0], "max_items": 100}],
        schedules=SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
    )
    clock = Clock(NOW)
    pub = make_publisher(settings, clock)
    # 120 new items: item 0 is the newest, item 119 the oldest.
    pub.store.items.save([item(n, NOW - timedelta(minutes=n + 1)) for n in range(120)], [], NOW)
    add(settings, pub.store, "weekly", "ana@example.org", "Ana", "en", now=NOW)
    add(settings, pub.store, "weekly", "zoe@example.org", "Zoé", "fr", now=NOW)

    dry = pub.dry_run_digest("weekly")
    assert (dry.items, dry.omitted) == (100, 20)
    report = send(pub)
    assert report.created and (report.items, report.omitted) == (100, 20) and report.sent == 2
    assert report.recipients == 2
    assert len(pub.store.issues.item_ids(report.issue_id or 0)) == 120  # all covered

    mails = {str(m["To"]): _parts(m) for m in mailbox.Maildir(settings.outbox.path, create=False)}
    html, text = mails['"Ana" <ana@example.org>']
    assert html.count('class="item-title"') == 100
    assert ">Item 99<" in html and ">Item 100<" not in html  # the newest hundred
    assert '<a href="http://127.0.0.1:8080/"' in html and "and 20 more on the website</a>" in html
    assert "and 20 more on the website: http://127.0.0.1:8080/" in text
    french_html, _ = next(v for k, v in mails.items() if "zoe@example.org" in k)
    assert "et 20 de plus sur le site" in french_html

    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # next week's period
    pub.store.items.save([item(500, clock.now - timedelta(hours=1))], [], clock.now)
    nxt = send(pub)
    assert nxt.created and (nxt.items, nxt.omitted) == (1, 0)
    assert pub.store.issues.item_ids(nxt.issue_id or 0) == ["urn:test:500"]  # no leftovers


# -- relay outages: nothing becomes unknown unless its text went out ---------------------


def _journal_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every delivery the sender journals as started (an S line)."""
    from publisher import ledger

    started: list[int] = []
    real = ledger.Journal.started

    def spy(self: ledger.Journal, delivery_id: int) -> None:
        started.append(delivery_id)
        real(self, delivery_id)

    monkeypatch.setattr(ledger.Journal, "started", spy)
    return started


def _once_each(sink: SmtpSink, addresses: list[str]) -> bool:
    per_recipient = Counter(r for m in sink.accepted() for r in m.rcpt_tos)
    return sorted(per_recipient) == sorted(addresses) and set(per_recipient.values()) == {1}


@pytest.mark.parametrize("outage", ["421 at connect", "no greeting", "broken STARTTLS"])
def test_a_relay_outage_leaves_every_delivery_queued_then_all_are_sent_once(
    settings: Settings, tls_files: Any, monkeypatch: pytest.MonkeyPatch, outage: str
) -> None:
    from publisher.errors import MailError
    from publisher.ledger import recover
    from tests.smtp_server import DOWN, SILENT

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.cert))  # the sender trusts the test relay
    starttls = outage == "broken STARTTLS"
    with SmtpSink(security="starttls" if starttls else "none", tls=tls_files) as sink:
        sink.greeting = {"421 at connect": DOWN, "no greeting": SILENT}.get(outage)
        sink.break_starttls = starttls
        clock = Clock(NOW)
        pub = make_publisher(settings, clock, sink, timeout=0.5)
        pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
        addresses = subscribe(pub, 10)
        started = _journal_spy(monkeypatch)

        for _attempt in range(2):
            with pytest.raises(MailError) as caught:
                send(pub)
            message = str(caught.value)
            assert message.startswith(f"cannot send mail via 127.0.0.1:{sink.port}: ")
            assert message.endswith("; 10 message(s) left queued") and "\n" not in message
            (row,) = pub.digest_status()
            assert row.pending == 10 and row.unknown == 0 and row.sending == 0
            clock.now += timedelta(minutes=1)
        assert started == []  # no S line: nothing is in doubt
        assert recover(pub.store, settings.delivery.journal_dir, clock.now) == {
            "recorded": 0,
            "unknown": 0,
            "released": 0,
        }
        assert sink.received == []

        sink.greeting, sink.break_starttls = None, False  # the relay is back
        report = send(pub)
        assert report.sent == 10 and report.tally.unknown == 0 and not report.created
        assert _once_each(sink, addresses)
        assert sorted(started) == sorted(set(started)) and len(started) == 10


@pytest.mark.slow
def test_a_relay_going_down_mid_run_keeps_what_was_sent_and_queues_the_rest(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publisher.errors import MailError

    with SmtpSink() as sink:
        sink.go_down_after(4)  # open sessions are cut with a 421, new ones refused
        clock = Clock(NOW)
        pub = make_publisher(settings, clock, sink, connections=1)
        pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
        addresses = subscribe(pub, 10)
        with pytest.raises(MailError, match=r"421 4\.3\.2 .*; 6 message\(s\) left queued$"):
            send(pub)
        (row,) = pub.digest_status()
        assert row.sent == 4 and row.pending == 6 and row.unknown == 0

        sink.greeting = None
        clock.now += timedelta(minutes=1)
        assert send(pub).sent == 6
        assert _once_each(sink, addresses)


def test_worker_once_and_scheduled_digests_report_an_outage_and_keep_the_queue(
    settings: Settings,
) -> None:
    from publisher.errors import MailError
    from tests.smtp_server import DOWN

    with SmtpSink() as sink:
        sink.greeting = DOWN
        clock = Clock(NOW)
        pub = make_publisher(settings, clock, sink)
        pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
        addresses = subscribe(pub, 5)

        run = asyncio.run(pub.arun_schedule("weekly-digest", NOW))
        assert run.outcome == "failed" and run.error is not None
        assert run.error.startswith(f"cannot send mail via 127.0.0.1:{sink.port}: 421 4.3.2")
        assert run.error.endswith("; 5 message(s) left queued")

        worker = make_publisher(settings, clock, sink)  # `publisher worker --once`
        with pytest.raises(MailError, match=r"; 5 message\(s\) left queued$"):
            asyncio.run(worker.deliver_queue(once=True))
        (row,) = pub.digest_status()
        assert row.pending == 5 and row.unknown == 0

        sink.greeting = None
        rounds: list[int] = []
        asyncio.run(worker.deliver_queue(once=True, on_round=lambda t: rounds.append(t.sent)))
        assert rounds == [5] and _once_each(sink, addresses)


def _mark_unknown(pub: Publisher, text: str, emails: list[str], code: int | None = None) -> None:
    """Put deliveries in the state an older version (or a real lost reply) left them in."""
    from sqlalchemy import update

    from publisher.store.tables import deliveries

    ids = [pub.store.subscribers.find_id(e) for e in emails]
    with pub.store.engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.subscriber_id.in_(ids))
            .values(status="unknown", last_code=code, last_text=text, attempts=1, claimed_by=None)
        )


def test_requeue_stopped_unknown_repairs_only_what_old_versions_marked_in_flight(
    settings: Settings, smtp_server: SmtpSink
) -> None:
    from publisher.ledger import LEGACY_STOPPED_TEXT, STOPPED_TEXT

    clock = Clock(NOW)
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    addresses = subscribe(pub, 6)
    pub.request_stop()
    send(pub)  # the issue and its 6 pending deliveries, nothing sent
    pub._stop = False
    assert LEGACY_STOPPED_TEXT == "sender stopped while this message was in flight; not resent"
    _mark_unknown(pub, LEGACY_STOPPED_TEXT, addresses[:3])
    lost = "connection lost after the message was sent, before the server confirmed it: reset"
    _mark_unknown(pub, lost, addresses[3:4])
    _mark_unknown(pub, STOPPED_TEXT, addresses[4:5])  # what the fixed recovery writes

    dry = pub.requeue_stopped_unknown("weekly", dry_run=True)
    assert [(r.list_slug, r.count) for r in dry] == [("weekly", 3)]
    (row,) = pub.digest_status()
    assert row.unknown == 5  # a dry run changes nothing

    done = pub.requeue_stopped_unknown("weekly")
    assert [r.count for r in done] == [3] and done[0].issue_id == row.id
    assert pub.requeue_stopped_unknown("weekly") == []  # nothing left to repair
    report = send(pub)
    assert report.sent == 4  # the three repaired and the one still pending
    assert sorted(r for m in smtp_server.accepted() for r in m.rcpt_tos) == sorted(
        addresses[:3] + addresses[5:]
    )
    (row,) = pub.digest_status()
    assert row.unknown == 2  # true unknowns stay for --resend-unknown


def test_an_issue_is_dated_by_the_day_it_is_sent_not_its_period_start(
    settings: Settings, smtp_server: SmtpSink
) -> None:
    """Sent on Wednesday 25 November, the issue of the period that began on Monday the 23rd
    says 25 November (what the inbox shows), in the mail and in its retries."""
    clock = Clock(NOW)  # Wednesday
    pub = make_publisher(settings, clock, smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    smtp_server.script(Rule("rcpt", reply="451 4.7.1 try later", recipient="reader1@example.org", times=1))
    report = send(pub)
    assert report.period_key == "2026-11-23T08:00:00Z" and report.sent == 1 and report.deferred == 1

    def dated(received: Any) -> str:
        """The line under the list name: the issue's date."""
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content()).splitlines()[1]

    (first,) = smtp_server.accepted()
    assert dated(first) == "November 25, 2026"  # not the period's start, November 23

    clock.now = NOW + timedelta(days=1)  # the retry goes out on Thursday
    assert send(pub).sent == 1
    retry = smtp_server.accepted()[-1]
    assert retry.rcpt_tos == ["reader1@example.org"]
    assert dated(retry) == "November 25, 2026"  # the issue's date, not the retry's


# -- withdrawn items and one story once ----------------------------------------------------


def test_hidden_duplicate_and_removed_source_items_stay_out_of_the_next_issue_and_its_picture_shows(
    make_settings: Callable[..., Settings], tmp_path: Path, store_url: str
) -> None:
    settings = make_settings(
        storage={"url": store_url},
        lists=LISTS,
        schedules=SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
        sources=[
            {"name": "sample", "type": "directory", "path": "content"},
            {"name": "upstream", "type": "directory", "path": "content"},
        ],
    )
    clock = Clock(NOW)
    pub = make_publisher(settings, clock)
    hour = timedelta(hours=1)
    shown = item(1, NOW - hour)
    shown.image, shown.image_alt = "https://example.org/img/1.jpg", 'Photo "one" <b>'
    hidden = item(2, NOW - hour)
    second_copy = item(3, NOW - hour)
    second_copy.source, second_copy.link = "upstream", shown.link  # the same story, later source
    gone = item(4, NOW - hour)
    gone.source = "removed-source"
    pub.store.items.save([shown, hidden, second_copy, gone], [], NOW)
    pub.hide_item("urn:test:2", build=False)
    add(settings, pub.store, "weekly", "ana@example.org", "Ana", "en", now=NOW)

    report = send(pub)

    assert pub.store.issues.item_ids(report.issue_id or 0) == ["urn:test:1"]
    (message,) = mailbox.Maildir(settings.outbox.path, create=False)
    html, _text = _parts(message)
    (img,) = lxml.html.fromstring(html).xpath("//img")
    assert (img.get("src"), img.get("alt"), img.get("width")) == (
        "https://example.org/img/1.jpg",
        'Photo "one" <b>',  # an attribute value, escaped for it: no element comes of it
        "552",
    )
    assert img.getparent().tag == "a" and img.getparent().get("href") == "https://example.org/1"
    assert "Item 2" not in html and "Item 3" not in html and "Item 4" not in html


def test_a_story_mailed_from_a_later_source_is_not_mailed_again_when_the_first_source_catches_up(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"sources": [*settings.sources, settings.sources[0].model_copy(update={"name": "upstream"})]}
    )
    clock = Clock(NOW)
    pub = make_publisher(settings, clock)
    mailed = item(1, NOW - timedelta(hours=1))
    mailed.source = "upstream"
    pub.store.items.save([mailed], [], NOW)
    add(settings, pub.store, "weekly", "ana@example.org", "Ana", "en", now=NOW)
    assert send(pub).items == 1

    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # next week's period
    first_source_copy = item(2, NOW - timedelta(minutes=30))
    first_source_copy.link = mailed.link
    pub.store.items.save([first_source_copy, item(3, clock.now - timedelta(hours=1))], [], clock.now)
    nxt = send(pub)

    assert pub.store.issues.item_ids(nxt.issue_id or 0) == ["urn:test:3"]


def _with_text_template(settings: Settings, tmp_path: Path, text: str) -> Settings:
    folder = tmp_path / "my-templates" / "email"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "digest.txt.j2").write_text(text, encoding="utf-8")
    return settings.model_copy(
        update={"templates": settings.templates.model_copy(update={"path": folder.parent})}
    )


def test_a_greeting_that_tests_the_name_reaches_each_reader_right(settings: Settings, tmp_path: Path) -> None:
    """Rendered once with placeholders, "Dear ," reached nameless readers; each is rendered on its own now."""
    dear = (
        "{% if subscriber.name %}Dear {{ subscriber.name }},{% else %}Dear reader,{% endif %}\n\n"
        "{{ unsubscribe_url }}\n"
    )
    pub = make_publisher(_with_text_template(settings, tmp_path, dear), Clock(NOW))
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    add(pub.settings, pub.store, "weekly", "ana@example.org", "Ana", "en", now=NOW)
    add(pub.settings, pub.store, "weekly", "anon@example.org", "", "en", now=NOW)
    assert send(pub).sent == 2
    texts = {}
    for message in mailbox.Maildir(pub.settings.outbox.path, create=False):
        parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        texts[parsed["To"].addresses[0].addr_spec] = body.get_content()
    assert texts["ana@example.org"].startswith("Dear Ana,\n")
    assert texts["anon@example.org"].startswith("Dear reader,\n")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{{ 'x' * 10**9 }}", "1,000,000,000 characters"),
        ("{{ '%s' % 'a' * 100000000 }}", "100,000,000 characters"),
        ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "loops more than"),
        ("{% for i in range(4) %}{{ '=' * 999999 }}{% endfor %}", "at most 10 MB is sent"),
    ],
)
def test_a_template_over_the_limits_stops_the_send_before_any_issue(
    settings: Settings, tmp_path: Path, text: str, says: str
) -> None:
    pub = make_publisher(_with_text_template(settings, tmp_path, text), Clock(NOW))
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 2)
    with pytest.raises(TemplateError) as info:
        send(pub, force=True)
    assert "digest.txt.j2" in str(info.value) and says in str(info.value)
    assert pub.digest_status() == []  # no issue, so no delivery either
