"""``bounces process``: read every new report of the mailbox once, apply, then move it."""

from __future__ import annotations

from dataclasses import dataclass

from publisher.bounces.imap import ImapMailbox
from publisher.bounces.mailboxes import Mailbox, MaildirMailbox
from publisher.config import BouncesConfig, Settings
from publisher.errors import ConfigError
from publisher.models import Clock, StopFlag
from publisher.store import Store


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
        return True


def open_mailbox(config: BouncesConfig) -> Mailbox:
    """The mailbox ``[bounces]`` names; :class:`ConfigError` when it names none."""
    if config.maildir is not None:
        return MaildirMailbox(config.maildir)
    if config.imap is not None:
        return ImapMailbox(config.imap)
    raise ConfigError(
        'bounces: no mailbox to read; set [bounces] maildir = "var/bounces" or imap = { host = ..., ... }'
    )


def process_bounces(
    settings: Settings, store: Store, clock: Clock, mailbox: Mailbox, should_stop: StopFlag
) -> BounceRunReport:
    """Read, apply and settle every new report (body completed in the following commits)."""
    return BounceRunReport()
