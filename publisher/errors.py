"""The one exception tree of the publisher.

Every error the library raises on purpose derives from :class:`PublisherError`, so a
front (CLI, scheduler, web) can catch one type, print one clear line and choose an
exit code. Third-party errors are wrapped with ``raise ... from e`` so the cause stays
in the traceback while the message says what to do.

::

    PublisherError
    ├── ConfigError          config.toml unreadable or invalid (exit 2)
    ├── StoreError           database unreachable, migration failed
    ├── SourceError          a whole source failed (down, timeout, malformed)
    ├── ItemError            one item rejected (missing title/date/link, bad date)
    ├── SubscriberError      one address or CSV row rejected
    ├── TemplateError        a template failed to load or render
    ├── TokenError           an unsubscribe/preferences token is forged or unknown
    ├── MailError            the transport failed as a whole (cannot connect, auth)
    ├── LeaseError           a sending worker lost its lease; it stopped taking work
    ├── IssueError           a digest issue cannot be built or sent
    ├── SchedulerError       bad trigger, unknown schedule, lock trouble
    │   └── FireTimeTaken    a fire time is served already or being served elsewhere
    ├── ReportError          a bounce or complaint report cannot be read, or its mailbox
    ├── OutputError          a file or folder asked for (``--out``) cannot be written
    └── ToolError            a program run for a check (SpamAssassin) is missing (exit 2) or failed
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime


class PublisherError(Exception):
    """Base of every error the publisher raises on purpose."""

    exit_code = 1


class ConfigError(PublisherError):
    """The configuration cannot be used; ``problems`` lists every finding."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if len(self.problems) == 1 and self.problems[0] == head:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class StoreError(PublisherError):
    """The store could not be opened, migrated or written."""


class SourceError(PublisherError):
    """A whole source failed; carries the source name so reports can say which."""

    def __init__(self, source: str, cause: str) -> None:
        self.source = source
        self.cause = cause
        super().__init__(f"source {source!r}: {cause}")


class ItemError(PublisherError):
    """One item was rejected; ``where`` is its file or URL, ``reason`` the fix."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class SubscriberError(PublisherError):
    """One address or CSV row was rejected; ``where`` names the file and line."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}" if where else reason)


class TemplateError(PublisherError):
    """A template could not be found, parsed or rendered."""


class TokenError(PublisherError):
    """A signed token is malformed, forged, altered or names nobody we know."""


class MailError(PublisherError):
    """The mail transport failed as a whole (connection refused, auth rejected)."""


class LeaseError(PublisherError):
    """A sending worker's lease on its deliveries is gone: it must start no new message.

    Either another process found the lease lapsed and settled the worker's deliveries
    (they may be with another worker by now), or the store could not be reached to renew
    it for half the lease. See publisher.ledger.
    """


class IssueError(PublisherError):
    """A digest issue could not be built or sent."""


class SchedulerError(PublisherError):
    """A schedule is unknown or invalid, or the scheduler lock misbehaved."""


class FireTimeTaken(SchedulerError):
    """A run was refused its fire time: served already (``handled``), or another process's
    live claim covers it (``holder``, host:pid, serving ``holder_fire``; the claim lapses
    in ``lapses_in`` seconds unless renewed). Several daemons on one store never serve a
    fire time twice.
    """

    def __init__(
        self,
        message: str,
        *,
        handled: bool,
        holder: str | None = None,
        holder_fire: datetime | None = None,
        lapses_in: float | None = None,
    ) -> None:
        super().__init__(message)
        self.handled = handled
        self.holder = holder
        self.holder_fire = holder_fire
        self.lapses_in = lapses_in


class ReportError(PublisherError):
    """A bounce or complaint report cannot be parsed, or the mailbox holding reports failed."""


class OutputError(PublisherError):
    """A file or folder the user asked for (``--out``) cannot be written; names it and why."""

    def __init__(self, path: object, error: OSError) -> None:
        self.path = str(error.filename) if error.filename else str(path)
        self.reason = error.strerror or str(error)
        parent = Path(self.path).parent
        if isinstance(error, NotADirectoryError):
            self.reason += " (a part of the path is a file, not a folder)"
        elif isinstance(error, FileNotFoundError) and not parent.exists():
            self.reason += f" (the folder {parent} does not exist; create it first)"
        asked = f" (asked for {path})" if str(path) != self.path else ""
        super().__init__(f"cannot write {self.path}{asked}: {self.reason}")


class ToolError(PublisherError):
    """A program the publisher runs for a check (SpamAssassin) is missing or failed.

    A missing program is a set-up problem, like a configuration error, and exits 2 with
    the package to install; a program that ran and failed (timeout, crash) exits 1.
    """

    def __init__(self, message: str, *, missing: bool = False) -> None:
        self.missing = missing
        self.exit_code = 2 if missing else 1
        super().__init__(message)
