"""Reports from an IMAP folder (built by the i10ext branch; this is its placeholder)."""

from __future__ import annotations

from collections.abc import Iterator

from publisher.bounces.mailboxes import MailboxMessage
from publisher.config import ImapMailboxConfig
from publisher.errors import ConfigError
from publisher.models import ReportOutcome


class ImapMailbox:
    """Placeholder until the IMAP reader is merged: refuses to open."""

    def __init__(self, config: ImapMailboxConfig) -> None:
        self.config = config
        raise ConfigError("bounces.imap: reading reports over IMAP is not available in this build")

    def fetch_new(self) -> Iterator[MailboxMessage]:
        return iter(())

    def settle(self, key: str, outcome: ReportOutcome) -> None:
        pass

    def close(self) -> None:
        pass
