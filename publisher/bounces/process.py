"""``bounces process``: read every new report of the mailbox once, apply, then move it.

The order is what makes a crash harmless: parse, apply (each finding commits in the
store), then ask the mailbox to move the message. If the process dies before the move,
the message is still new; the next run applies it again and the store answers
"duplicate" for each finding, so nothing is counted twice and nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from publisher.bounces.apply import apply_feedback
from publisher.bounces.mailboxes import MAX_REPORT_BYTES, Mailbox, MaildirMailbox
from publisher.bounces.reports import MAX_RECIPIENT_BLOCKS, ParsedReport, parse_report
from publisher.config import BouncesConfig, Settings
from publisher.errors import ConfigError, ReportError
from publisher.models import Clock, FeedbackOutcome, ReportOutcome, StopFlag
from publisher.store import Store

log = logging.getLogger("publisher.bounces")


@dataclass
class BounceRunReport:
    """Counts of one run: reports by where they went, findings by what they did."""

    processed: int = 0  # reports read and settled (moved to cur/ or processed_folder)
    unmatched: int = 0  # reports naming nobody we sent to, or with a forged token
    unparsed: int = 0  # messages that are not reports this reader understands
    applied: int = 0  # findings that changed a delivery or an address
    duplicate: int = 0  # findings of reports applied before
    ignored: int = 0  # auto-replies, delay warnings: read, nothing to do

    @property
    def ok(self) -> bool:
        """Unmatched and unparsed reports are an admin's to look at, not a failed run."""
        return True


def open_mailbox(config: BouncesConfig) -> Mailbox:
    """The mailbox ``[bounces]`` names; :class:`ConfigError` when it names none."""
    if config.maildir is not None:
        return MaildirMailbox(config.maildir)
    if config.imap is not None:
        # Imported here: imapclient is needed only by a site that reads IMAP, not by
        # every command's start-up.
        from publisher.bounces.imap import ImapMailbox

        return ImapMailbox(config.imap)
    raise ConfigError(
        'bounces: no mailbox to read; set [bounces] maildir = "var/bounces" or imap = { host = ..., ... }'
    )


def process_bounces(
    settings: Settings, store: Store, clock: Clock, mailbox: Mailbox, should_stop: StopFlag
) -> BounceRunReport:
    """Read, apply and settle every new report; stop between reports when asked."""
    config = settings.bounces or BouncesConfig()
    source = "imap" if config.imap is not None else "maildir"
    report = BounceRunReport()
    for message in mailbox.fetch_new():
        if should_stop():
            break
        try:
            if len(message.raw) > MAX_REPORT_BYTES:
                raise ReportError(f"larger than {MAX_REPORT_BYTES // (1024 * 1024)} MB")
            parsed = parse_report(message.raw, bounce_address=config.address, source=source)
        except ReportError as e:
            log.warning(
                "bounces: %s is not a report this reader understands (%s); moved to unparsed", message.key, e
            )
            mailbox.settle(message.key, ReportOutcome.UNPARSED)
            report.unparsed += 1
            continue
        outcome = _apply(settings, store, clock, parsed, report)
        mailbox.settle(message.key, outcome)
        if outcome is ReportOutcome.UNMATCHED:
            log.warning(
                "bounces: %s (%s) names nobody we sent to; moved to unmatched", message.key, parsed.report_id
            )
            report.unmatched += 1
        else:
            report.processed += 1
    return report


def _apply(
    settings: Settings, store: Store, clock: Clock, parsed: ParsedReport, report: BounceRunReport
) -> ReportOutcome:
    if parsed.blocks_ignored:
        log.warning(
            "bounces: %s has more recipient blocks than a delivery report has; read the first %d, "
            "ignored the other %d",
            parsed.report_id, MAX_RECIPIENT_BLOCKS, parsed.blocks_ignored,
        )  # fmt: skip
    if not parsed.events:
        log.info("bounces: %s: nothing to act on: %s", parsed.report_id, parsed.note)
        report.ignored += 1
        return ReportOutcome.PROCESSED
    outcomes = [apply_feedback(settings, store, clock, event) for event in parsed.events]
    report.applied += outcomes.count(FeedbackOutcome.APPLIED)
    report.duplicate += outcomes.count(FeedbackOutcome.DUPLICATE)
    report.ignored += outcomes.count(FeedbackOutcome.IGNORED)
    if all(o is FeedbackOutcome.UNMATCHED for o in outcomes):
        return ReportOutcome.UNMATCHED
    return ReportOutcome.PROCESSED
