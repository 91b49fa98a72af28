"""Where reports arrive: one small interface, a Maildir here, IMAP in ``imap.py``.

A mailbox hands out each new message once per run (:meth:`Mailbox.fetch_new`) and
moves it only when told how it was settled (:meth:`Mailbox.settle`), which the caller
does after the store committed its effects: a crash in between leaves the message
new, and processing it again is a no-op (the store is idempotent by report id), so
no report is ever lost.

The Maildir layout: the MTA delivers into ``new/`` (through ``tmp/``, so a file in
``new/`` is complete); a processed report moves to ``cur/`` flagged seen (``:2,S``),
one that names nobody to ``unmatched/`` and an unreadable one to ``unparsed/``, both
beside ``new/`` for an admin to look at.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from publisher.errors import ReportError
from publisher.models import ReportOutcome

log = logging.getLogger("publisher.bounces")

#: A report larger than this is not read (DSNs and ARF reports are a few KB; a returned
#: message with attachments can be large): it goes to ``unparsed`` for an admin.
MAX_REPORT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MailboxMessage:
    """One message of a mailbox: its key there and its bytes (at most MAX_REPORT_BYTES + 1)."""

    key: str
    raw: bytes


class Mailbox(Protocol):
    """What ``bounces process`` reads: the Maildir below, or an IMAP folder."""

    def fetch_new(self) -> Iterator[MailboxMessage]:
        """Every message not yet settled, oldest first."""
        ...

    def settle(self, key: str, outcome: ReportOutcome) -> None:
        """Move a message where ``outcome`` says; called only after the store commit."""
        ...

    def close(self) -> None: ...


class MaildirMailbox:
    """A Maildir on this machine (the MTA's delivery of ``bounces+*``)."""

    FOLDERS: ClassVar[dict[ReportOutcome, str]] = {
        ReportOutcome.UNMATCHED: "unmatched",
        ReportOutcome.UNPARSED: "unparsed",
    }

    def __init__(self, root: Path) -> None:
        self.root = root
        self.new = root / "new"
        if not self.new.is_dir():
            raise ReportError(
                f"bounces.maildir: {root} is not a Maildir (no new/ folder in it); point it at "
                "the Maildir your MTA delivers bounces+* to, or create new/, cur/ and tmp/ there"
            )
        for name in ("cur", "tmp", *self.FOLDERS.values()):
            (root / name).mkdir(exist_ok=True)

    def fetch_new(self) -> Iterator[MailboxMessage]:
        try:
            entries = sorted(
                (e for e in os.scandir(self.new) if e.is_file() and not e.name.startswith(".")),
                key=lambda e: (e.stat().st_mtime_ns, e.name),
            )
        except OSError as e:
            raise ReportError(f"bounces.maildir: cannot list {self.new}: {e.strerror}") from e
        for entry in entries:
            try:
                with open(entry.path, "rb") as f:
                    raw = f.read(MAX_REPORT_BYTES + 1)
            except FileNotFoundError:
                continue  # another run settled it meanwhile
            except OSError as e:
                log.warning("bounces: cannot read %s: %s; left in new/", entry.path, e.strerror)
                continue
            yield MailboxMessage(entry.name, raw)

    def settle(self, key: str, outcome: ReportOutcome) -> None:
        if "/" in key or key.startswith("."):
            raise ReportError(f"bounces.maildir: {key!r} is not a message of this Maildir")
        source = self.new / key
        if outcome is ReportOutcome.PROCESSED:
            name = key if ":2," in key else f"{key}:2,S"
            target = self.root / "cur" / name
        else:
            target = self.root / self.FOLDERS[outcome] / key
        try:
            os.replace(source, target)
        except FileNotFoundError:
            pass  # settled by a concurrent run: its effects are the same (idempotent)
        except OSError as e:
            raise ReportError(f"bounces.maildir: cannot move {source} to {target}: {e.strerror}") from e

    def close(self) -> None:
        pass
