"""Bounce reports read without a store: VERP tokens, every fixture format, config.

The fixtures in tests/data/bounces were written for these tests after RFC 3464, RFC
5965 and the layouts Postfix, Exim, Microsoft 365 and Gmail produce (see the README
there). Their placeholders are filled with a real token, so the parser is tested on
what it will see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from publisher.bounces.reports import MAX_RECIPIENT_BLOCKS, parse_report
from publisher.bounces.verp import (
    ReturnPath,
    make_verp_token,
    read_verp_token,
    token_in,
    verify_verp_token,
)
from publisher.config import Settings
from publisher.errors import ConfigError, ReportError, TokenError
from publisher.models import FeedbackKind

DATA = Path(__file__).parent / "data" / "bounces"
BOUNCES = "bounces@example.org"
SECRET = "0123456789abcdef0123456789abcdef"
RCPT = "reader0@example.org"
MSGID = "<issue-3.9.0a1b2c3d4e5f@example.org>"


def fixture(name: str, token: str, recipient: str = RCPT, message_id: str = MSGID) -> bytes:
    raw = (DATA / name).read_bytes()
    return (
        raw.replace(b"@@TOKEN@@", token.encode())
        .replace(b"@@RCPT@@", recipient.encode())
        .replace(b"@@MSGID@@", message_id.encode())
    )


# -- tokens ---------------------------------------------------------------------------


def test_token_round_trip_names_the_delivery_and_verifies_with_the_secret() -> None:
    token = make_verp_token(3, 9, SECRET)
    assert verify_verp_token(token, SECRET).issue_id == 3
    assert read_verp_token(token).subscriber_id == 9
    with pytest.raises(TokenError):
        verify_verp_token(token, "another subscriber's secret")


def test_token_survives_an_mta_that_changes_the_case_of_the_local_part() -> None:
    address = ReturnPath(BOUNCES).for_delivery(123456, 654321, SECRET)
    for seen in (address.upper(), address.lower(), address.title()):
        token = token_in(seen, BOUNCES)
        assert token is not None
        assert verify_verp_token(token, SECRET).subscriber_id == 654321


def test_token_is_address_and_url_safe_and_fits_smtp_limits() -> None:
    address = ReturnPath("a" * 24 + "@example.org").for_delivery(2**31 - 1, 2**31 - 1, SECRET)
    local = address.split("@")[0]
    assert len(local) <= 64  # RFC 5321 local part
    assert all(c.isalnum() or c in "+-" for c in local)


@pytest.mark.parametrize(
    "altered",
    [
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # one MAC digit changed
        lambda t: "4-" + t.split("-", 1)[1],  # another issue, same MAC
        lambda t: t.rsplit("-", 1)[0],  # no MAC
        lambda t: t + "00",  # longer MAC
    ],
)
def test_an_altered_token_does_not_verify(altered: Callable[[str], str]) -> None:
    token = make_verp_token(3, 9, SECRET)
    with pytest.raises(TokenError):
        verify_verp_token(altered(token), SECRET)


def test_only_sub_addresses_of_the_bounce_address_carry_a_token() -> None:
    token = make_verp_token(3, 9, SECRET)
    assert token_in(f"<bounces+{token}@example.org>", BOUNCES) == token
    assert token_in(f"bounces+{token}@other.example", BOUNCES) is None
    assert token_in(f"news+{token}@example.org", BOUNCES) is None
    assert token_in("bounces@example.org", BOUNCES) is None


# -- report formats -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("postfix-user-unknown.eml", FeedbackKind.HARD_BOUNCE, "5.1.1"),
        ("exim-failed.eml", FeedbackKind.HARD_BOUNCE, "5.0.0"),
        ("m365-recipient-not-found.eml", FeedbackKind.HARD_BOUNCE, "5.1.10"),
        ("gmail-mailbox-full.eml", FeedbackKind.SOFT_BOUNCE, "4.2.2"),
        ("exim-plain-quota.eml", FeedbackKind.SOFT_BOUNCE, "5.2.2"),  # a full mailbox is temporary
        ("plain-mailbox-full.eml", FeedbackKind.SOFT_BOUNCE, None),
        ("yahoo-legacy.eml", FeedbackKind.HARD_BOUNCE, None),  # no code: flufl.bounce's layouts
    ],
)
def test_bounces_of_each_mta_are_read_with_their_token(
    name: str, kind: FeedbackKind, status: str | None
) -> None:
    token = make_verp_token(3, 9, SECRET)
    report = parse_report(fixture(name, token), bounce_address=BOUNCES, source="maildir")
    (event,) = report.events
    assert event.kind is kind
    assert event.status_code == status
    assert event.delivery_token == token
    assert event.diagnostic  # what the admin sees in `subscribers show`
    assert event.report_id.startswith("<") and event.source == "maildir"


def test_dsn_carries_the_final_recipient_and_the_unfolded_diagnostic() -> None:
    raw = fixture("postfix-user-unknown.eml", make_verp_token(3, 9, SECRET))
    (event,) = parse_report(raw, bounce_address=BOUNCES, source="maildir").events
    assert event.address == RCPT
    assert event.diagnostic == (
        f"550 5.1.1 <{RCPT}>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert event.report_id == "<20261125090211.4Xk2Lq0Ymzz9sRy@relay.example.org>"


def test_arf_complaint_names_the_delivery_by_our_return_path_and_message_id() -> None:
    token = make_verp_token(3, 9, SECRET)
    (event,) = parse_report(fixture("arf-abuse.eml", token), bounce_address=BOUNCES, source="imap").events
    assert event.kind is FeedbackKind.COMPLAINT
    assert event.delivery_token == token  # from Original-Mail-From, though sent to fbl@
    assert event.original_message_id == MSGID
    assert event.address == RCPT


def test_arf_with_headers_only_is_identified_by_our_message_id() -> None:
    raw = fixture("arf-headers-only.eml", "unused")
    (event,) = parse_report(raw, bounce_address=BOUNCES, source="maildir").events
    assert event.kind is FeedbackKind.COMPLAINT
    assert event.delivery_token is None and event.original_message_id == MSGID


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("postfix-delayed.eml", "delay"),
        ("auto-reply.eml", "auto-reply"),  # says "mailbox is full" in its text: still no bounce
        ("arf-not-spam.eml", "not-spam"),
    ],
)
def test_warnings_auto_replies_and_not_spam_reports_change_nothing(name: str, note: str) -> None:
    report = parse_report(
        fixture(name, make_verp_token(3, 9, SECRET)), bounce_address=BOUNCES, source="maildir"
    )
    assert report.events == ()
    assert note in report.note


def test_a_dsn_to_the_bare_bounce_address_has_no_token() -> None:
    report = parse_report(fixture("never-mailed.eml", "x"), bounce_address=BOUNCES, source="maildir")
    (event,) = report.events
    assert event.delivery_token is None and event.address == "stranger@elsewhere.example"


@pytest.mark.parametrize(
    "raw",
    [
        (DATA / "garbage.eml").read_bytes(),
        b"",
        b"From: someone@example.org\nSubject: hello\n\nJust a note to the bounce address.\n",
        b"From: x@example.org\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nno status part\n--b--\n",
    ],
)
def test_what_is_no_report_raises_a_report_error(raw: bytes) -> None:
    with pytest.raises(ReportError):
        parse_report(raw, bounce_address=BOUNCES, source="maildir")


def test_a_report_without_message_id_gets_a_stable_id_from_its_bytes() -> None:
    raw = fixture("plain-mailbox-full.eml", make_verp_token(3, 9, SECRET)).replace(
        b"Message-ID: <notice-20261125-1005@smallhost.example>\n", b""
    )
    first = parse_report(raw, bounce_address=BOUNCES, source="maildir")
    again = parse_report(raw, bounce_address=BOUNCES, source="maildir")
    assert first.report_id == again.report_id and first.report_id.startswith("sha256:")


# -- config ---------------------------------------------------------------------------


def test_bounces_config_defaults_and_paths(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings(bounces={"address": "Bounces@Example.org", "maildir": "var/bounces"})
    assert settings.bounces is not None
    assert settings.bounces.address == "bounces@example.org"
    assert settings.bounces.maildir == tmp_path / "var" / "bounces"
    assert settings.bounces.soft_limit == 3 and str(settings.bounces.soft_window) == "30d"


@pytest.mark.parametrize(
    ("bounces", "message"),
    [
        ({"address": "bounces+x@example.org"}, "without '+'"),
        ({"address": "not an address"}, "plain address"),
        ({"maildir": "a", "imap": {"host": "h", "username": "u", "password_env": "P"}}, "at most one"),
        ({"soft_limit": 0}, "greater than or equal to 1"),
        ({"soft_window": "soon"}, "not a duration"),
        ({"imap": {"host": "h", "username": "u"}}, "password_env: required"),
    ],
)
def test_bad_bounces_config_names_the_key(
    make_settings: Callable[..., Settings], bounces: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(bounces=bounces)
    assert message in str(caught.value) and "bounces" in str(caught.value)


def test_a_bounces_schedule_needs_a_mailbox(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="job 'bounces' reads reports"):
        make_settings(schedules={"bounces": {"every": "10m", "job": "bounces"}})
    make_settings(
        schedules={"bounces": {"every": "10m", "job": "bounces"}}, bounces={"maildir": "var/bounces"}
    )


def test_truncated_and_mangled_reports_give_a_report_or_a_report_error_never_a_crash() -> None:
    """Anyone can mail the bounce address: any bytes must end as parsed or unparsed."""
    token = make_verp_token(3, 9, SECRET)
    for path in sorted(DATA.glob("*.eml")):
        raw = fixture(path.name, token)
        variants = [raw[:cut] for cut in range(0, len(raw), max(len(raw) // 40, 1))]
        variants += [raw.replace(b"\n", b"\r"), raw.replace(b":", b""), raw.replace(b"--", b"-")]
        variants += [raw.replace(b"boundary=", b"boundary=x"), bytes(b ^ 0x80 for b in raw[:400]) + raw[400:]]
        for variant in variants:
            with contextlib.suppress(ReportError):
                parse_report(variant, bounce_address=BOUNCES, source="maildir")


def test_a_report_nested_too_deeply_for_the_parser_is_unparsed() -> None:
    """Multiparts nested thousands deep make the standard library recurse past its limit."""
    raw = b"From: MAILER-DAEMON@relay.example\nSubject: Undelivered Mail\n"
    raw += b"Content-Type: multipart/mixed; boundary=b0\n\n"
    raw += b"".join(
        b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i) for i in range(1, 3000)
    )
    with pytest.raises(ReportError, match="RecursionError"):
        parse_report(raw, bounce_address=BOUNCES, source="maildir")


def with_recipient_blocks(raw: bytes, count: int) -> bytes:
    """The DSN ``raw`` with its one per-recipient block repeated ``count`` times."""
    start = raw.index(b"Final-Recipient:")
    end = raw.index(b"\n\n--", start) + 1
    block = raw[start:end]
    return raw[:start] + (block + b"\n") * (count - 1) + block + raw[end:]


def test_a_dsn_with_thousands_of_recipient_blocks_is_read_only_to_the_cap() -> None:
    raw = fixture("postfix-user-unknown.eml", make_verp_token(3, 9, SECRET))
    report = parse_report(with_recipient_blocks(raw, 20_000), bounce_address=BOUNCES, source="maildir")
    assert len(report.events) == MAX_RECIPIENT_BLOCKS == 100
    assert report.blocks_ignored == 20_000 - 100
    few = parse_report(with_recipient_blocks(raw, 3), bounce_address=BOUNCES, source="maildir")
    assert len(few.events) == 3 and few.blocks_ignored == 0
