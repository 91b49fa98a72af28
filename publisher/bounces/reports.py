"""Report messages -> findings: DSNs (RFC 3464), ARF complaints (RFC 5965), replies.

The parser reads; it never trusts. It returns what a report claims, with the VERP
token it was addressed to (or, for a complaint, the token or Message-ID of the
original it quotes), and :func:`publisher.bounces.apply.apply_feedback` decides whether
that names a delivery of ours. So the parser can be generous about formats: Postfix,
Exim, Microsoft 365 and Gmail all write ``multipart/report`` DSNs with a
``message/delivery-status`` part, whose per-recipient ``Action`` and ``Status`` say
what happened; older Exim and qmail write plain text, read here by the status code
or a few well-known phrases, and last by flufl.bounce's detectors (GNU Mailman's) of
the layouts other MTAs and providers made up.

What counts: ``Action: failed`` with a 5.x.x status is a permanent failure, with 4.x.x a
temporary one. X.2.2 (mailbox full) is temporary whatever its class, as mailbox
providers use it for a full mailbox that may be emptied. ``Action: delayed`` is a
warning that the relay is still trying: nothing to count (a failure, if it comes, sends
its own DSN). An ARF report of type ``abuse``, ``fraud``, ``virus`` or ``other`` is a
complaint; ``not-spam`` and ``auth-failure`` are not the recipient's complaint.
Auto-replies (RFC 3834 ``Auto-Submitted``, out-of-office subjects) are read and
ignored: they are not bounces. Anything else raises :class:`ReportError` and goes to
``unparsed`` for an admin.

The token is looked for where the receiving MTA writes the envelope recipient:
``Delivered-To`` (Postfix, Dovecot), ``X-Original-To`` (Postfix), ``Envelope-To``
(Exim), then ``To`` and ``Cc``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr

from publisher.bounces.verp import token_in
from publisher.errors import ReportError
from publisher.messages import clean_header_text
from publisher.models import FeedbackEvent, FeedbackKind

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"(?<![\d.])([45])\d\d(?=[ -])")
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_MAILER = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery failure|delivery has failed|"
    r"mail delivery failed|failure notice|returned mail|non-?delivery|could not be delivered",
    re.IGNORECASE,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|autoreply|auto:|abwesen|"
    r"r[ée]ponse automatique|absence|respuesta autom[áa]tica|fuera de la oficina|vacation|on leave)",
    re.IGNORECASE,
)
_SOFT_PHRASES = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|insufficient "
    r"(system )?storage|mailbox size limit",
    re.IGNORECASE,
)
_HARD_PHRASES = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|mailbox unavailable|"
    r"does not exist|doesn't exist|recipient address rejected|invalid recipient|mailbox not found|"
    r"unrouteable address|address rejected|account (has been )?disabled",
    re.IGNORECASE,
)
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_TEXT_LIMIT = 20_000  # characters of a plain bounce's first part that are searched
# Per-recipient blocks of one DSN that are read. A relay writes one per recipient of the
# message it could not deliver, and ours have one recipient each, so a real DSN has a
# handful; 20,000 blocks are someone's way to get 20,000 log lines and store writes.
MAX_RECIPIENT_BLOCKS = 100


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """What one message says: its kind, its findings, and why there is nothing to act on."""

    report_id: str
    kind: str  # "dsn" | "arf" | "bounce-text" | "auto-reply" | "receipt"
    events: tuple[FeedbackEvent, ...]
    note: str = ""  # set when events is empty: why
    blocks_ignored: int = 0  # a DSN's recipient blocks past MAX_RECIPIENT_BLOCKS, not read


def parse_report(raw: bytes, *, bounce_address: str | None, source: str) -> ParsedReport:
    """Read one message of the bounce mailbox; :class:`ReportError` when it is no report.

    Anyone can mail the bounce address, so the bytes are hostile: whatever the standard
    library's parser trips on becomes a ReportError too (the message goes to ``unparsed``)
    instead of stopping the run at the same message every time.
    """
    try:
        return _parse(raw, bounce_address, source)
    except ReportError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, LookupError, RecursionError) as e:
        cause = clean_header_text(str(e))[:300]  # the parser may quote the message's bytes
        raise ReportError(f"unreadable message ({type(e).__name__}: {cause})") from e


def _parse(raw: bytes, bounce_address: str | None, source: str) -> ParsedReport:
    if not raw.strip():
        raise ReportError("the message is empty")
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    if not msg.keys() or (msg.get("From") is None and msg.get("Content-Type") is None):
        raise ReportError("not a mail message: no From and no Content-Type header")
    report_id = _report_id(msg, raw)
    token = _envelope_token(msg, bounce_address)
    content_type = msg.get_content_type()
    if content_type == "multipart/report":
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if report_type == "delivery-status":
            return _dsn(msg, report_id, token, source)
        if report_type == "feedback-report":
            return _arf(msg, report_id, token, bounce_address, source)
        if report_type == "disposition-notification":
            return ParsedReport(report_id, "receipt", (), "a read receipt (RFC 8098), not a bounce")
        raise ReportError(f"a multipart/report of type {report_type or '(none)'!r}, not a DSN or ARF report")
    if _looks_like_bounce(msg):
        return _text_bounce(msg, report_id, token, source)
    if _is_auto_reply(msg):
        return ParsedReport(report_id, "auto-reply", (), "an auto-reply (out of office), not a bounce")
    text = _first_text(msg)
    if _SOFT_PHRASES.search(_header_text(msg.get("Subject")) + "\n" + text):
        return _text_bounce(msg, report_id, token, source)
    raise ReportError("neither a DSN, an ARF report, a bounce nor an auto-reply")


# -- delivery status notifications ------------------------------------------------------


def _dsn(msg: Message, report_id: str, token: str | None, source: str) -> ParsedReport:
    blocks = _status_blocks(msg)
    if len(blocks) < 2:
        raise ReportError("a delivery-status report without a per-recipient part")
    recipients = blocks[1 : 1 + MAX_RECIPIENT_BLOCKS]
    ignored = len(blocks) - 1 - len(recipients)
    events: list[FeedbackEvent] = []
    actions: list[str] = []
    for block in recipients:
        action = str(block.get("Action", "")).strip().lower()
        actions.append(action or "(none)")
        if action != "failed":
            continue
        diagnostic = _unfold(block.get("Diagnostic-Code", ""))
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
        status = _status_code(str(block.get("Status", ""))) or _status_code(diagnostic)
        kind = _failure_kind(status, diagnostic)
        recipient = _typed_address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        events.append(
            FeedbackEvent(
                kind=kind,
                report_id=report_id,
                source=source,
                address=recipient,
                delivery_token=token,
                status_code=status,
                diagnostic=diagnostic[:1000],
            )
        )
    if not events:
        return ParsedReport(
            report_id,
            "dsn",
            (),
            f"no failed recipient (action {', '.join(dict.fromkeys(actions))}): a delay warning or success",
            ignored,
        )
    events.sort(key=lambda e: e.kind is not FeedbackKind.HARD_BOUNCE)  # the gravest first
    return ParsedReport(report_id, "dsn", tuple(events), blocks_ignored=ignored)


def _failure_kind(status: str | None, diagnostic: str) -> FeedbackKind:
    """Permanent or temporary, by the status code; a full mailbox is temporary."""
    if status is not None:
        klass, subject, detail = status.split(".")
        if (subject, detail) == ("2", "2") or klass == "4":
            return FeedbackKind.SOFT_BOUNCE
        return FeedbackKind.HARD_BOUNCE
    if _SOFT_PHRASES.search(diagnostic):
        return FeedbackKind.SOFT_BOUNCE
    basic = _BASIC.search(diagnostic)
    if basic is not None and basic.group(1) == "4":
        return FeedbackKind.SOFT_BOUNCE
    return FeedbackKind.HARD_BOUNCE  # Action: failed is permanent (RFC 3464 2.3.3)


def _status_blocks(msg: Message) -> list[Message]:
    """The field blocks of the message/delivery-status part: per-message, then per-recipient."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
                return list(payload)
            return _blocks_of(str(payload))
    raise ReportError("a delivery-status report without its message/delivery-status part")


def _blocks_of(text: str) -> list[Message]:
    parser = HeaderParser(policy=policy.compat32)
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [parser.parsestr(chunk + "\n") for chunk in chunks if chunk.strip()]


# -- abuse feedback reports -------------------------------------------------------------


def _arf(
    msg: Message, report_id: str, envelope: str | None, bounce_address: str | None, source: str
) -> ParsedReport:
    fields: Message | None = None
    original: Message | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report" and fields is None:
            fields = _single_block(part)
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _single_block(part)
    if fields is None:
        raise ReportError("a feedback report without its message/feedback-report part")
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type not in _COMPLAINT_TYPES:
        return ParsedReport(
            report_id, "arf", (), f"feedback type {feedback_type or '(none)'!r} is no complaint"
        )
    token = None
    if bounce_address:
        candidates = [fields.get("Original-Mail-From"), original.get("Return-Path") if original else None]
        for value in candidates:
            token = token_in(str(value or ""), bounce_address)
            if token:
                break
    token = token or envelope
    message_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    event = FeedbackEvent(
        kind=FeedbackKind.COMPLAINT,
        report_id=report_id,
        source=source,
        address=_typed_address(fields.get("Original-Rcpt-To")),
        delivery_token=token,
        diagnostic=f"feedback type {feedback_type}"
        + (f" from {_unfold(fields.get('Reported-Domain', ''))}" if fields.get("Reported-Domain") else ""),
        original_message_id=message_id or None,
    )
    return ParsedReport(report_id, "arf", (event,))


def _single_block(part: Message) -> Message:
    """The fields of a message/feedback-report or the headers of the returned original."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = str(payload)
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        decoded = part.get_payload(decode=True)
        text = decoded.decode("utf-8", "replace") if isinstance(decoded, bytes) else text
    return HeaderParser(policy=policy.compat32).parsestr(text.lstrip())


# -- plain-text bounces and replies -----------------------------------------------------


def _looks_like_bounce(msg: Message) -> bool:
    sender = parseaddr(str(msg.get("From", "")))[1]
    return bool(_MAILER.match(sender)) or bool(_BOUNCE_SUBJECT.search(_header_text(msg.get("Subject"))))


def _is_auto_reply(msg: Message) -> bool:
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() in ("auto_reply", "junk"):
        return True
    return bool(_AUTO_REPLY_SUBJECT.search(_header_text(msg.get("Subject"))))


def _text_bounce(msg: Message, report_id: str, token: str | None, source: str) -> ParsedReport:
    text = _first_text(msg)
    subject = _header_text(msg.get("Subject"))
    status = _status_code(text)
    line = _line_with(text, status) if status else ""
    kind: FeedbackKind | None = None
    if status is None:
        found = _SOFT_PHRASES.search(text) or _SOFT_PHRASES.search(subject) or _HARD_PHRASES.search(text)
        if found is not None:
            line = _line_with(text, found.group(0)) or found.group(0)
        else:
            kind, line = _known_layout(msg, text)
            if kind is None:
                if _is_auto_reply(msg):
                    return ParsedReport(
                        report_id, "auto-reply", (), "an auto-reply (out of office), not a bounce"
                    )
                raise ReportError("a bounce whose reason this reader does not recognise (no status code)")
    kind = kind or _failure_kind(status, line)
    event = FeedbackEvent(
        kind=kind,
        report_id=report_id,
        source=source,
        delivery_token=token,
        status_code=status,
        diagnostic=line[:1000],
    )
    return ParsedReport(report_id, "bounce-text", (event,))


def _known_layout(msg: Message, text: str) -> tuple[FeedbackKind | None, str]:
    """Ask flufl.bounce (GNU Mailman's detectors of many MTAs' own bounce layouts).

    It recognises layouts that carry neither a status code nor a phrase we know (Yahoo,
    qmail, GroupWise, old Exchange ...) and says whether the failure is permanent. It
    returns the failed addresses, which we do not need: the token says who it was.
    """
    # Imported here: it is needed only for these rare layouts, not at every start-up.
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(msg)
    if not temporary and not permanent:
        return None, ""
    failed = next(iter(permanent or temporary)).decode("ascii", "replace")
    line = _line_with(text, "said:") or _line_with(text, failed) or f"failed: {failed}"
    return (FeedbackKind.HARD_BOUNCE if permanent else FeedbackKind.SOFT_BOUNCE), line


def _first_text(msg: Message) -> str:
    """The first text/plain part (or the body), decoded, at most _TEXT_LIMIT characters."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    return data.decode(charset, "replace")[:_TEXT_LIMIT]
                except LookupError:
                    return data.decode("utf-8", "replace")[:_TEXT_LIMIT]
            return str(data)[:_TEXT_LIMIT]
    return ""


def _line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle.lower() in line.lower():
            return " ".join(line.split())
    return ""


# -- shared -------------------------------------------------------------------------------


def _report_id(msg: Message, raw: bytes) -> str:
    """The report's Message-ID, or a hash of its bytes when it has none (still idempotent)."""
    value = clean_header_text(str(msg.get("Message-ID", "")))
    return value[:255] if value else "sha256:" + hashlib.sha256(raw).hexdigest()


def _envelope_token(msg: Message, bounce_address: str | None) -> str | None:
    if not bounce_address:
        return None
    for name in _ENVELOPE_HEADERS:
        values = [str(v) for v in msg.get_all(name) or []]
        for _, address in getaddresses(values):
            token = token_in(address, bounce_address)
            if token:
                return token
    return None


def _status_code(text: str) -> str | None:
    match = _ENHANCED.search(text)
    if match is None or match.group(1) == "2":
        return None
    return match.group(0)


def _typed_address(value: object) -> str | None:
    """``rfc822; a@example.org`` -> ``a@example.org`` (RFC 3464 address-type; address)."""
    text = _unfold(value or "")
    address = text.split(";", 1)[1] if ";" in text else text
    address = address.strip().strip("<>").strip()
    return address if "@" in address and len(address) <= 320 else None


def _unfold(value: object) -> str:
    return " ".join(str(value).split())


def _header_text(value: object) -> str:
    """A header decoded from RFC 2047 words, for matching; raw when it cannot be decoded."""
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)
