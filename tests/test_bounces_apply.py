"""Reports applied to a store (SQLite and PostgreSQL) after a real send through aiosmtpd.

Each test sends a real issue, so the tokens and Message-IDs in the reports are the
ones the sender put on the wire, read back from the SMTP server's envelope.
"""

from __future__ import annotations

import asyncio
import email
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher.app import Publisher
from publisher.bounces.mailboxes import MAX_REPORT_BYTES, MaildirMailbox
from publisher.bounces.reports import MAX_RECIPIENT_BLOCKS
from publisher.bounces.verp import make_verp_token, token_in
from publisher.config import Settings
from publisher.errors import SubscriberError
from publisher.models import (
    DeliveryStatus,
    FeedbackEvent,
    FeedbackKind,
    FeedbackOutcome,
    JobKind,
    ReportOutcome,
    SubscriptionStatus,
    Unsubscribe,
)
from publisher.store import Store
from publisher.subscriptions import add, import_csv, unsubscribe_by_id
from tests.smtp_server import SmtpSink
from tests.test_bounces import BOUNCES, fixture, with_recipient_blocks
from tests.test_digests import LISTS, SCHEDULES, Clock, item

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
READERS = ["reader0@example.org", "reader1@example.org", "reader2@example.org"]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path, store_url: str) -> Settings:
    maildir = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    return make_settings(
        storage={"url": store_url},
        lists=LISTS,
        schedules=SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
        bounces={"address": BOUNCES, "maildir": str(maildir)},
    )


class Sent:
    """A publisher that has sent one issue to READERS (all on weekly, reader0 also on press)."""

    def __init__(self, pub: Publisher, smtp: SmtpSink, clock: Clock) -> None:
        self.pub, self.smtp, self.clock = pub, smtp, clock
        pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
        for i, address in enumerate(READERS):
            add(pub.settings, pub.store, "weekly", address, f"Reader {i}", "en", now=clock())
        add(pub.settings, pub.store, "press", READERS[0], "Reader 0", "en", now=clock())
        self.report = asyncio.run(pub.send_digest("weekly"))
        assert self.report.sent == len(READERS)

    def token(self, address: str) -> str:
        (received,) = [r for r in self.smtp.accepted_for(address)][-1:]
        token = token_in(received.mail_from, BOUNCES)
        assert token is not None, received.mail_from
        return token

    def message_id(self, address: str) -> str:
        received = self.smtp.accepted_for(address)[-1]
        return str(email.message_from_bytes(received.data)["Message-ID"])

    def report_for(self, name: str, address: str, token: str | None = None) -> bytes:
        return fixture(name, token or self.token(address), address, self.message_id(address))

    def statuses(self, address: str) -> dict[str, SubscriptionStatus]:
        store = self.pub.store
        return store.subscribers.statuses(store.subscribers.find_id(address) or -1)

    def drop(self, name: str, raw: bytes) -> Path:
        assert self.pub.settings.bounces and self.pub.settings.bounces.maildir
        path = self.pub.settings.bounces.maildir / "new" / f"1764061331.{name}.host"
        path.write_bytes(raw)
        return path


@pytest.fixture
def sent(settings: Settings, smtp_server: SmtpSink) -> Iterator[Sent]:
    clock = Clock(NOW + timedelta(minutes=5))
    pub = Publisher(
        settings.model_copy(update={"smtp": smtp_server.config()}), Store(settings.storage.url), clock=clock
    )
    yield Sent(pub, smtp_server, clock)
    pub.close()


def event(kind: FeedbackKind, token: str | None, report_id: str = "<r1@relay>", **kw: Any) -> FeedbackEvent:
    return FeedbackEvent(kind=kind, report_id=report_id, source="maildir", delivery_token=token, **kw)


def test_envelope_sender_is_the_signed_verp_address_of_each_delivery(sent: Sent) -> None:
    store = sent.pub.store
    for address in READERS:
        (received,) = sent.smtp.accepted_for(address)
        sid = store.subscribers.find_id(address)
        assert sid is not None
        secret = store.subscribers.secret(sid)
        assert secret is not None
        issue_id = sent.report.issue_id or 0
        assert received.mail_from == f"bounces+{make_verp_token(issue_id, sid, secret)}@example.org"
    assert len({r.mail_from for r in sent.smtp.accepted()}) == len(READERS)


def test_hard_bounce_marks_the_delivery_and_the_address_on_every_list(sent: Sent) -> None:
    pub = sent.pub
    outcome = pub.record_feedback(
        event(FeedbackKind.HARD_BOUNCE, sent.token(READERS[0]), status_code="5.1.1")
    )
    assert outcome is FeedbackOutcome.APPLIED
    assert sent.statuses(READERS[0]) == {
        "press": SubscriptionStatus.BOUNCED,
        "weekly": SubscriptionStatus.BOUNCED,
    }
    assert sent.statuses(READERS[1])["weekly"] is SubscriptionStatus.CONFIRMED
    (summary,) = pub.digest_status("weekly")
    assert summary.bounced == 1 and summary.sent == len(READERS) - 1
    record = pub.subscriber(READERS[0])
    (feedback,) = record.feedback
    assert (feedback.kind, feedback.status_code, feedback.source) == ("hard-bounce", "5.1.1", "maildir")
    assert feedback.report_id == "<r1@relay>" and feedback.list_slug == "weekly"
    assert [e.event for e in record.events if e.event == "bounced"] == ["bounced", "bounced"]


def test_a_reports_own_words_are_stored_on_one_line_without_control_characters(sent: Sent) -> None:
    # A remote server writes the diagnostic and the report's Message-ID: `subscribers show`
    # prints them and the log records them, so escape codes and line breaks must not survive.
    hostile = event(
        FeedbackKind.HARD_BOUNCE,
        sent.token(READERS[0]),
        "<r1@relay>\x1b[2J\r\nforged: line",
        status_code="5.1.1",
        diagnostic="user unknown\x1b]0;owned\x07\n\u202edlrow",
    )
    assert sent.pub.record_feedback(hostile) is FeedbackOutcome.APPLIED
    (feedback,) = sent.pub.subscriber(READERS[0]).feedback
    assert feedback.report_id == "<r1@relay> [2J forged: line"
    assert feedback.diagnostic == "user unknown ]0;owned dlrow"
    assert sent.pub.record_feedback(hostile) is FeedbackOutcome.DUPLICATE


def test_the_same_report_twice_changes_nothing_more(sent: Sent) -> None:
    first = event(FeedbackKind.SOFT_BOUNCE, sent.token(READERS[1]), status_code="4.2.2")
    assert sent.pub.record_feedback(first) is FeedbackOutcome.APPLIED
    assert sent.pub.record_feedback(first) is FeedbackOutcome.DUPLICATE
    assert len(sent.pub.subscriber(READERS[1]).feedback) == 1


def test_soft_bounces_count_and_the_limit_within_the_window_suppresses(sent: Sent) -> None:
    token = sent.token(READERS[1])
    for n in range(2):
        outcome = sent.pub.record_feedback(event(FeedbackKind.SOFT_BOUNCE, token, f"<soft{n}@relay>"))
        assert outcome is FeedbackOutcome.APPLIED
    assert sent.statuses(READERS[1])["weekly"] is SubscriptionStatus.CONFIRMED  # 2 of 3
    (summary,) = sent.pub.digest_status("weekly")
    assert summary.soft_bounces == 2 and summary.bounced == 0
    sent.pub.record_feedback(event(FeedbackKind.SOFT_BOUNCE, token, "<soft2@relay>"))
    assert sent.statuses(READERS[1])["weekly"] is SubscriptionStatus.BOUNCED


def test_soft_bounces_older_than_the_window_do_not_count(sent: Sent) -> None:
    token = sent.token(READERS[1])
    for n in range(3):
        sent.pub.record_feedback(event(FeedbackKind.SOFT_BOUNCE, token, f"<soft{n}@relay>"))
        sent.clock.now += timedelta(days=16)  # 3 within 48 days, never 3 within 30
    assert sent.statuses(READERS[1])["weekly"] is SubscriptionStatus.CONFIRMED


def test_complaint_marks_complained_on_every_list_even_over_unsubscribed(sent: Sent) -> None:
    pub = sent.pub
    pub.remove_subscriber("press", READERS[0])
    outcome = pub.record_feedback(
        event(FeedbackKind.COMPLAINT, None, original_message_id=sent.message_id(READERS[0]))
    )
    assert outcome is FeedbackOutcome.APPLIED
    assert sent.statuses(READERS[0]) == {
        "press": SubscriptionStatus.COMPLAINED,
        "weekly": SubscriptionStatus.COMPLAINED,
    }
    (summary,) = pub.digest_status("weekly")
    assert summary.complaints == 1


def _forged(token: str) -> str:
    """The token with the last two characters of its MAC changed (never to what they were:
    a fixed "00" was the real MAC once in a few hundred runs, with its random secret)."""
    return token[:-2] + ("11" if token.endswith("00") else "00")


@pytest.mark.parametrize(
    "token_of",
    [
        lambda s: None,  # no token
        lambda s: _forged(s.token(READERS[0])),  # forged MAC
        lambda s: make_verp_token(s.report.issue_id, 424242, "guess"),  # nobody we sent to
        lambda s: "not-a-token",
    ],
)
def test_forged_or_missing_tokens_change_nobody(sent: Sent, token_of: Callable[[Sent], str | None]) -> None:
    outcome = sent.pub.record_feedback(event(FeedbackKind.HARD_BOUNCE, token_of(sent)))
    assert outcome is FeedbackOutcome.UNMATCHED
    assert all(sent.statuses(a)["weekly"] is SubscriptionStatus.CONFIRMED for a in READERS)
    assert sent.pub.subscriber(READERS[0]).feedback == ()


def test_a_token_of_another_subscriber_signed_with_ones_own_secret_is_forged(sent: Sent) -> None:
    store = sent.pub.store
    mine = store.subscribers.find_id(READERS[1]) or 0
    theirs = store.subscribers.find_id(READERS[0]) or 0
    forged = make_verp_token(sent.report.issue_id or 0, theirs, store.subscribers.secret(mine) or "")
    assert sent.pub.record_feedback(event(FeedbackKind.HARD_BOUNCE, forged)) is FeedbackOutcome.UNMATCHED
    assert sent.statuses(READERS[0])["weekly"] is SubscriptionStatus.CONFIRMED


def test_an_expired_token_changes_nobody(sent: Sent) -> None:
    token = sent.token(READERS[0])
    sent.clock.now += timedelta(days=91)
    assert sent.pub.record_feedback(event(FeedbackKind.HARD_BOUNCE, token)) is FeedbackOutcome.UNMATCHED
    assert sent.statuses(READERS[0])["weekly"] is SubscriptionStatus.CONFIRMED


def test_webhook_events_name_an_address_we_sent_to(sent: Sent) -> None:
    stranger = FeedbackEvent(FeedbackKind.COMPLAINT, "sns-1", "webhook:generic", address="who@else.example")
    assert sent.pub.record_feedback(stranger) is FeedbackOutcome.UNMATCHED
    known = FeedbackEvent(FeedbackKind.HARD_BOUNCE, "sns-2", "webhook:ses", address=READERS[2].upper())
    assert sent.pub.record_feedback(known) is FeedbackOutcome.APPLIED
    assert sent.statuses(READERS[2])["weekly"] is SubscriptionStatus.BOUNCED
    # An unauthenticated source naming an address is not trusted.
    claimed = FeedbackEvent(FeedbackKind.COMPLAINT, "x-1", "maildir", address=READERS[1])
    assert sent.pub.record_feedback(claimed) is FeedbackOutcome.UNMATCHED


def test_reimport_never_lifts_and_unsuppress_restores_the_status_before(sent: Sent, tmp_path: Path) -> None:
    pub = sent.pub
    pub.remove_subscriber("press", READERS[0])  # unsubscribed from press before the bounce
    pub.record_feedback(event(FeedbackKind.COMPLAINT, sent.token(READERS[0])))
    csv = tmp_path / "weekly.csv"
    csv.write_text("email,name\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    import_csv(pub.settings, pub.store, "weekly", csv, now=sent.clock())
    assert sent.statuses(READERS[0])["weekly"] is SubscriptionStatus.COMPLAINED

    restored = pub.unsuppress_subscriber(READERS[0], "asked by phone, ticket 42")
    assert restored == {"press": SubscriptionStatus.UNSUBSCRIBED, "weekly": SubscriptionStatus.CONFIRMED}
    record = pub.subscriber(READERS[0])
    assert any("unsuppressed" in (e.detail or "") and "ticket 42" in (e.detail or "") for e in record.events)
    weekly = next(s for s in record.lists if s.list_slug == "weekly")
    assert weekly.consent_method == "cli"  # the original consent record is kept
    assert pub.unsuppress_subscriber(READERS[0]) == {}


def test_an_unsubscribe_while_suppressed_is_kept_when_the_suppression_is_lifted(sent: Sent) -> None:
    """Before, `remove` on a bounced address recorded nothing ("not on the list"), and
    `unsuppress` then made it confirmed: a person who asked to leave was mailed again."""
    pub = sent.pub
    pub.suppress_subscriber(READERS[1], SubscriptionStatus.BOUNCED, "mailbox full")
    assert pub.remove_subscriber("weekly", READERS[1]) is Unsubscribe.RECORDED
    assert sent.statuses(READERS[1])["weekly"] is SubscriptionStatus.BOUNCED  # still suppressed
    assert pub.remove_subscriber("weekly", READERS[1]) is Unsubscribe.ALREADY  # nothing more written
    events = [(e.event, e.detail) for e in pub.subscriber(READERS[1]).events]
    assert events[-1] == ("unsubscribed", "cli (while bounced; lifting that leaves it unsubscribed)")
    assert len(events) == 3  # confirmed, bounced, unsubscribed
    # A complaint replaces the bounce; lifting it still leaves the unsubscribe.
    pub.suppress_subscriber(READERS[1], SubscriptionStatus.COMPLAINED, "")
    assert pub.unsuppress_subscriber(READERS[1]) == {"weekly": SubscriptionStatus.UNSUBSCRIBED}
    assert pub.remove_subscriber("weekly", READERS[1]) is Unsubscribe.ALREADY

    # The same holds for a mailed unsubscribe link used after the address bounced.
    pub.suppress_subscriber(READERS[2], SubscriptionStatus.BOUNCED, "")
    reader = pub.subscriber(READERS[2]).id
    assert unsubscribe_by_id(pub.store, reader, "weekly", now=sent.clock())
    assert not unsubscribe_by_id(pub.store, reader, "weekly", now=sent.clock())  # repeats: idempotent
    assert pub.unsuppress_subscriber(READERS[2]) == {"weekly": SubscriptionStatus.UNSUBSCRIBED}


def test_suppress_by_hand_is_recorded_even_for_an_address_never_mailed(sent: Sent) -> None:
    pub = sent.pub
    add(pub.settings, pub.store, "press", "new@example.org", "", "en", now=sent.clock())
    changed = pub.suppress_subscriber("new@example.org", SubscriptionStatus.BOUNCED, "known dead mailbox")
    assert changed == ("press",)
    (feedback,) = pub.subscriber("new@example.org").feedback
    assert (feedback.source, feedback.diagnostic, feedback.list_slug) == ("cli", "known dead mailbox", None)
    with pytest.raises(SubscriberError, match="no such subscriber"):
        pub.suppress_subscriber("nobody@example.org", SubscriptionStatus.COMPLAINED)


def test_status_rates_warn_above_two_percent_bounces_and_a_tenth_percent_complaints(sent: Sent) -> None:
    pub = sent.pub
    rates = pub.status().feedback
    assert rates is not None and (rates.mailed, rates.bounced, rates.complaints) == (3, 0, 0)
    assert rates.warnings == []
    pub.record_feedback(event(FeedbackKind.HARD_BOUNCE, sent.token(READERS[0])))
    pub.record_feedback(event(FeedbackKind.COMPLAINT, sent.token(READERS[1]), "<c1@fbl>"))
    rates = pub.status().feedback
    assert rates is not None and (rates.mailed, rates.bounced, rates.complaints) == (3, 1, 1)
    assert rates.bounce_rate == pytest.approx(1 / 3)
    assert len(rates.warnings) == 2 and "bounce rate 33.3%" in rates.warnings[0]
    sent.clock.now += timedelta(days=31)
    assert pub.status().feedback.warnings == []  # type: ignore[union-attr]


def test_forget_clears_bounce_diagnostics(sent: Sent) -> None:
    pub = sent.pub
    pub.record_feedback(
        event(FeedbackKind.HARD_BOUNCE, sent.token(READERS[0]), diagnostic=f"550 <{READERS[0]}> unknown")
    )
    sid = pub.store.subscribers.find_id(READERS[0]) or 0
    pub.forget_subscriber(READERS[0])
    record = pub.store.subscribers.record(sid)
    assert record is not None and [f.diagnostic for f in record.feedback] == [""]


# -- the Maildir run --------------------------------------------------------------------


def test_bounces_process_applies_reports_and_files_each_message(sent: Sent) -> None:
    maildir = sent.pub.settings.bounces.maildir  # type: ignore[union-attr]
    assert maildir is not None
    sent.drop("hard", sent.report_for("m365-recipient-not-found.eml", READERS[0]))
    sent.drop("soft", sent.report_for("gmail-mailbox-full.eml", READERS[1]))
    sent.drop("ooo", sent.report_for("auto-reply.eml", READERS[2]))
    sent.drop("arf", sent.report_for("arf-headers-only.eml", READERS[2]))
    sent.drop(
        "forged",
        sent.report_for(
            "postfix-user-unknown.eml",
            READERS[1],
            sent.token(READERS[1])[:-1] + ("0" if sent.token(READERS[1])[-1] != "0" else "1"),
        ),
    )
    sent.drop("stranger", fixture("never-mailed.eml", ""))
    sent.drop("garbage", fixture("garbage.eml", ""))

    report = sent.pub.process_bounces()
    assert (report.processed, report.unmatched, report.unparsed) == (4, 2, 1)
    assert (report.applied, report.duplicate, report.ignored) == (3, 0, 1)
    assert sorted(p.name.split(".")[1] for p in (maildir / "cur").iterdir()) == ["arf", "hard", "ooo", "soft"]
    assert all(p.name.endswith(":2,S") for p in (maildir / "cur").iterdir())
    assert sorted(p.name.split(".")[1] for p in (maildir / "unmatched").iterdir()) == ["forged", "stranger"]
    assert [p.name.split(".")[1] for p in (maildir / "unparsed").iterdir()] == ["garbage"]
    assert list((maildir / "new").iterdir()) == []
    assert sent.statuses(READERS[0])["press"] is SubscriptionStatus.BOUNCED
    assert sent.statuses(READERS[1])["weekly"] is SubscriptionStatus.CONFIRMED  # one soft bounce
    assert sent.statuses(READERS[2])["weekly"] is SubscriptionStatus.COMPLAINED
    assert sent.pub.process_bounces().processed == 0  # nothing new


def test_an_oversized_report_is_read_only_past_the_limit_and_left_unparsed(sent: Sent) -> None:
    maildir = sent.pub.settings.bounces.maildir  # type: ignore[union-attr]
    assert maildir is not None
    # A real hard bounce for reader0, made larger than any report: it must not act.
    raw = sent.report_for("postfix-user-unknown.eml", READERS[0])
    big = raw + b"\r\n" + b"x" * MAX_REPORT_BYTES
    sent.drop("big", big)
    mailbox = MaildirMailbox(maildir)
    (message,) = mailbox.fetch_new()
    assert len(message.raw) == MAX_REPORT_BYTES + 1  # read one byte past the limit, no more
    report = sent.pub.process_bounces()
    assert (report.processed, report.unparsed, report.applied) == (0, 1, 0)
    (kept,) = (maildir / "unparsed").iterdir()
    assert kept.read_bytes() == big  # moved whole, for an admin
    assert sent.statuses(READERS[0])["weekly"] is SubscriptionStatus.CONFIRMED


def test_a_crash_before_the_move_loses_nothing_and_counts_nothing_twice(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sent.drop("soft", sent.report_for("gmail-mailbox-full.eml", READERS[1]))

    def crash(self: MaildirMailbox, key: str, outcome: ReportOutcome) -> None:
        raise KeyboardInterrupt  # the process dies after the store commit, before the move

    monkeypatch.setattr(MaildirMailbox, "settle", crash)
    with pytest.raises(KeyboardInterrupt):
        sent.pub.process_bounces()
    assert path.exists()  # still new
    monkeypatch.undo()
    report = sent.pub.process_bounces()
    assert (report.processed, report.applied, report.duplicate) == (1, 0, 1)
    assert not path.exists()
    (summary,) = sent.pub.digest_status("weekly")
    assert summary.soft_bounces == 1


def test_the_bounces_job_kind_runs_the_mailbox(sent: Sent) -> None:
    sent.drop("hard", sent.report_for("exim-failed.eml", READERS[2]))
    counts = asyncio.run(sent.pub.arun_job(JobKind.BOUNCES))
    assert counts["processed"] == 1 and counts["applied"] == 1 and counts["ok"] is True
    assert sent.statuses(READERS[2])["weekly"] is SubscriptionStatus.BOUNCED


def test_a_dsn_with_20000_recipient_blocks_is_one_warning_not_20000_log_lines(
    sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    raw = with_recipient_blocks(sent.report_for("postfix-user-unknown.eml", READERS[0]), 20_000)
    sent.drop("flood", raw)
    with caplog.at_level(logging.INFO, logger="publisher.bounces"):
        report = sent.pub.process_bounces()
    assert (report.processed, report.applied) == (1, 1)
    assert report.duplicate == MAX_RECIPIENT_BLOCKS - 1  # the same token: one finding, the rest repeats
    assert sent.statuses(READERS[0])["weekly"] is SubscriptionStatus.BOUNCED
    lines = [r.getMessage() for r in caplog.records if r.name == "publisher.bounces"]
    assert len(lines) <= MAX_RECIPIENT_BLOCKS + 1, len(lines)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.endswith("read the first 100, ignored the other 19900"), warning


def test_a_delivery_bounced_later_is_recorded_on_the_delivery(sent: Sent) -> None:
    sent.pub.record_feedback(event(FeedbackKind.HARD_BOUNCE, sent.token(READERS[2]), status_code="5.1.1"))
    issue_id = sent.report.issue_id or 0
    ref = sent.pub.store.feedback.delivery(issue_id, sent.pub.store.subscribers.find_id(READERS[2]) or 0)
    assert ref is not None and ref.status is DeliveryStatus.BOUNCED


def test_a_maildir_that_is_missing_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    settings.bounces.maildir = tmp_path / "nowhere"  # type: ignore[union-attr]
    pub = Publisher(settings, Store(settings.storage.url))
    try:
        with pytest.raises(Exception, match=r"bounces.maildir: .*nowhere is not a Maildir"):
            pub.process_bounces()
    finally:
        pub.close()
    assert not os.path.exists(tmp_path / "nowhere")
