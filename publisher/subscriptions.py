"""Subscriptions as the CLI, the web app and the digest sender ask for them.

Validation of everything a person typed or a CSV file holds happens here, before the
store sees it: addresses go through email-validator, and names and addresses with
control characters are refused because they would end up in mail headers (a CR/LF
in a name is a header injection); bidi controls are removed from names and names are
cut at a word to 200 characters. The store (:mod:`publisher.store.subscribers`)
then enforces the rules that must hold whatever front asks: suppressions are sticky,
every status change is recorded, forgotten addresses survive only as a hash.

Suppressed (unsubscribed, bounced, complained) or forgotten addresses come back
only by an explicit act: ``add(..., force=True)`` by an admin who holds fresh
consent, or the subscriber's own request (preferences page, confirmation link).
An import never lifts a suppression.

Every function that stamps a time takes ``now`` from its caller (the fronts pass
``Publisher.clock()``): one clock for the whole program, so tests and catch-up runs
see the times they set.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gc
import io
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

from publisher.config import Settings
from publisher.errors import SubscriberError
from publisher.i18n import LANGUAGES, normalise_language
from publisher.models import (
    ADMIN_ONLY,
    SUPPRESSED,
    Consent,
    Subscriber,
    SubscriptionStatus,
    Unsubscribe,
    suppression_replaces,
)
from publisher.store import Store
from publisher.store.subscriber_import import ImportRow
from publisher.store.subscribers import ListStatus, SubscriberRecord, SubscriptionEvent
from publisher.text import CONTROL, NAME_MAX_LENGTH, cut_at_word, is_language_tag, strip_bidi

__all__ = [
    "ImportReport",
    "ListStatus",
    "SubscriberRecord",
    "SubscriptionEvent",
    "add",
    "check_language",
    "export_csv",
    "forget",
    "import_csv",
    "join_blocked",
    "leave_all",
    "normalise_address",
    "personal_data",
    "preferences",
    "remove",
    "set_language",
    "set_status",
    "show",
    "subscriber_secret",
    "unserved_languages",
    "unsubscribe_by_id",
    "update_preferences",
    "web_choices",
]

BATCH_SIZE = 1000
#: How far back a subscriber's data export lists deliveries.
EXPORT_DELIVERIES_DAYS = 365
EXPORT_COLUMNS = (
    "email",
    "name",
    "language",
    "status",
    "consent_at",
    "consent_method",
    "consent_source",
)
# Columns an export writes that an import reads as state, not as attributes.
_STATE_COLUMNS = frozenset({"status", "consent_at", "consent_method", "consent_source"})
# C0, DEL, C1 and the Unicode line/paragraph separators: all can break a header line.
# RFC 5322 dot-atom of ASCII atext: the local parts email-validator accepts unchanged.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LOCAL_MAX_LENGTH = 64

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class ImportReport:
    """What an import did; ``rejected`` holds one error per bad row, "file:line: reason".

    ``warnings`` are rows that were imported but not as written, in the same form:
    "weekly.csv:7: duplicate of line 3 (ana@example.org); merged".
    """

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed_kept: int = 0
    duplicates: int = 0  # later rows of an address already seen in the file, merged into it
    rejected: list[SubscriberError] = field(default_factory=list)
    warnings: list[SubscriberError] = field(default_factory=list)  # imported, but say so: duplicates


# -- validation ---------------------------------------------------------------------


def _control_char_reason(what: str, value: str) -> str | None:
    found = CONTROL.search(value)
    if found is None:
        return None
    return (
        f"{what} {value!r} contains the control character U+{ord(found.group()):04X}; "
        "line breaks and other control characters are not allowed (they could inject mail headers)"
    )


def normalise_address(raw: str, *, where: str = "") -> str:
    """Trim and validate an address; the domain comes back lower-cased, the local part as typed.

    Raises SubscriberError naming what is wrong: control characters (CR, LF, NUL...),
    an empty value or invalid syntax.
    """
    reason = _control_char_reason("address", raw)
    if reason:
        raise SubscriberError(where, reason)
    address = raw.strip()
    if not address:
        raise SubscriberError(where, "the address is empty")
    plain = _plain_address(address)
    if plain is not None:
        return plain
    try:
        return str(validate_email(address, check_deliverability=False).normalized)
    except EmailNotValidError as e:
        raise SubscriberError(where, f"invalid address {address!r}: {e}") from e


@functools.lru_cache(maxsize=8192)
def _domain_verdict(domain: str) -> tuple[str, int] | None:
    """email-validator's verdict on a domain: (normalised domain, longest byte form) or None."""
    try:
        probe = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None
    forms = (domain, probe.domain, probe.ascii_domain)
    return str(probe.domain), max(len(f.encode("utf-8")) for f in forms)


def _plain_address(address: str) -> str | None:
    """The common case without the per-address cost of email-validator, same verdict.

    A plain ASCII local part that email-validator leaves as it is, on a domain it
    accepted (cached: lists repeat domains), within its length limits. Anything else
    returns None and takes the full validation.
    """
    local, at, domain = address.rpartition("@")
    if not at or len(local) > _LOCAL_MAX_LENGTH or not _PLAIN_LOCAL.fullmatch(local):
        return None
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        return None  # email-validator lower-cases these (Postmaster@ -> postmaster@)
    verdict = _domain_verdict(domain)
    if verdict is None or len(local) + 1 + verdict[1] > EMAIL_MAX_LENGTH:
        return None
    return f"{local}@{verdict[0]}"


def check_language(raw: str | None, default: str, *, where: str = "") -> str:
    """Reduce a language tag to its primary subtag (``fr-CH`` -> ``fr``); empty -> ``default``.

    The tag must be well-formed BCP 47 (``fr_CH`` is read as ``fr-CH``) and its language
    one the digests are written in (:data:`publisher.i18n.LANGUAGES`): a subscriber
    stored as ``de`` would get another language's mail without anyone choosing it.
    A regional variant of an offered language is that language (``es-MX`` -> ``es``).
    """
    value = (raw or "").strip()
    if not value:
        return default
    language, reason = _language_verdict(value)
    if reason:
        raise SubscriberError(where, reason)
    return language


@functools.lru_cache(maxsize=1024)
def _language_verdict(value: str) -> tuple[str, str]:
    """(primary language, "") or ("", why it is refused); cached: a list repeats a few tags."""
    primary = value.replace("_", "-").split("-")[0]
    shown = value if len(value) <= 50 else value[:50] + "…"
    if not is_language_tag(value.replace("_", "-")) or not 2 <= len(primary) <= 3 or not primary.isalpha():
        return "", f"language {shown!r} is not a language tag such as 'en' or 'fr-CH'"
    if primary.lower() not in LANGUAGES:
        return "", f"language {shown!r} is not offered; use one of {', '.join(sorted(LANGUAGES))}"
    return primary.lower(), ""


def check_name(raw: str, *, where: str = "") -> str:
    """A display name safe to put in a ``To:`` header.

    Trimmed, refused with control characters (header injection), without bidi
    controls (they would reorder the header as shown), cut at a word to 200 characters.
    """
    reason = _control_char_reason("name", raw)
    if reason:
        raise SubscriberError(where, reason)
    return cut_at_word(strip_bidi(raw).strip(), NAME_MAX_LENGTH)


def _site_language(settings: Settings) -> str:
    """The language of a subscriber who gave none: the site's, or English if it is not offered."""
    return normalise_language(settings.site.language)


# -- CSV import -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Columns:
    """Where each known column sits in the header row."""

    email: int
    name: int | None
    language: int | None
    status: int | None
    attributes: tuple[tuple[str, int], ...]
    width: int

    @classmethod
    def from_header(cls, header: list[str], where: str) -> _Columns:
        if any("\x00" in h for h in header):
            raise SubscriberError(where, "a column name contains a NUL character; remove it from the header")
        names = [h.strip().lower() for h in header]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SubscriberError(where, f"duplicate column(s) {', '.join(duplicated)} in the header")
        if "email" not in names:
            found = ", ".join(repr(h) for h in header) or "none"
            raise SubscriberError(where, f"no 'email' column in the header; columns found: {found}")
        index = {n: i for i, n in enumerate(names)}
        known = {"email", "name", "language"} | _STATE_COLUMNS
        return cls(
            email=index["email"],
            name=index.get("name"),
            language=index.get("language"),
            status=index.get("status"),
            attributes=tuple((header[i].strip(), i) for i, n in enumerate(names) if n not in known and n),
            width=len(names),
        )


def _cell(values: list[str], index: int | None) -> str:
    if index is None or index >= len(values):
        return ""
    return values[index]


def _row_status(raw: str, where: str) -> SubscriptionStatus:
    value = raw.strip().lower()
    if value in ("", SubscriptionStatus.CONFIRMED):
        return SubscriptionStatus.CONFIRMED
    if value in SUPPRESSED:
        return SubscriptionStatus(value)
    raise SubscriberError(
        where,
        f"status {value!r}: an import takes confirmed rows (or empty status) and keeps "
        "unsubscribed, bounced and complained rows as suppressions",
    )


def _parse_row(values: list[str], columns: _Columns, where: str) -> ImportRow:
    if len(values) > columns.width:
        raise SubscriberError(where, f"{len(values)} fields but the header has {columns.width}")
    nul = next((v for v in values if "\x00" in v), None)
    if nul is not None:
        raise SubscriberError(where, f"field {nul!r} contains a NUL character")
    attributes = {key: value for key, i in columns.attributes if (value := _cell(values, i).strip())}
    return ImportRow(
        email=normalise_address(_cell(values, columns.email), where=where),
        name=check_name(_cell(values, columns.name), where=where) or None,
        language=check_language(_cell(values, columns.language), "", where=where) or None,
        attributes=attributes,
        status=_row_status(_cell(values, columns.status), where),
    )


def _merge(first: ImportRow, later: ImportRow) -> None:
    """Fold a repeated address into its first row: later values fill in, suppressions win."""
    first.name = later.name or first.name
    first.language = later.language or first.language
    first.attributes.update(later.attributes)
    if later.status in SUPPRESSED and first.status not in SUPPRESSED:
        first.status = later.status


def _records(
    reader: Iterator[list[str]], line_num: Callable[[], int], *, protected: bool = True
) -> Iterator[tuple[int, list[str] | str]]:
    """Each non-blank record with the line it starts on (a quoted field may span lines).

    A record the csv module cannot read (a field over its 131,072-character limit) comes
    out as the reason instead of its values: the reader recovers and the rest of the file
    is imported, where letting the error escape would refuse the whole file.
    ``protected`` False (no cell of the file starts with a :func:`protect_cell` mark)
    skips :func:`unprotect_cell`.
    """
    start = line_num() + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, f"cannot read this record: {e}; shorten the field or remove the row"
        else:
            if values and any(v.strip() for v in values):
                yield start, [unprotect_cell(v) for v in values] if protected else values
        start = line_num() + 1


def read_subscriber_csv(path: Path) -> tuple[list[ImportRow], list[SubscriberError], list[SubscriberError]]:
    """Parse, validate and de-duplicate a subscriber file: (rows, duplicates, rejected rows).

    ``duplicates`` holds one warning per later row of an address already in the file
    ("weekly.csv:7: duplicate of line 3 (ana@example.org); merged"): the rows are
    merged (:func:`_merge`), but the admin should know their file repeats itself.

    The file is decoded as UTF-8 with undecodable bytes kept as lone surrogates
    (``surrogateescape``) and each record checked for them after the CSV parse, so a
    spreadsheet's Latin-1 export rejects only its lines with such bytes, by line
    number, and the rest is imported. A file that cannot be read, or whose header
    has no ``email`` column (or is not UTF-8), raises SubscriberError.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SubscriberError(str(path), f"cannot read the subscriber file: {e}") from e
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    text_bytes = memoryview(data)[start:]  # after any BOM, a view and not a copy
    # The records are decoded as the csv module reads them, never as one string: the
    # whole text, and StringIO's copy of it at four bytes a character, were a third of
    # the peak memory of a million-row import.
    stream = io.BytesIO(data)  # shares ``data``'s bytes until written to, which it never is
    stream.seek(start)
    lines = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    with _without_cycle_collection():
        return _read_records(
            path,
            lines,
            # Both skip per-record work in most files. ``^`` of the pattern is the text's start.
            check_encoding=not (data.isascii() or _is_utf8(text_bytes)),
            protected=_PROTECTED_CELL.search(text_bytes) is not None,
        )


def _is_utf8(data: memoryview, chunk: int = 1 << 20) -> bool:
    """Whether ``data`` is all UTF-8, decoded a chunk at a time (no text of its size)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for at in range(0, len(data), chunk):
            decoder.decode(data[at : at + chunk])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while a file's rows are built.

    Why: a million new row objects trigger its full passes again and again (a fifth of
    the parse time at 1M rows), and rows hold no reference cycles for it to find.
    Reference counting still frees everything; the collector's state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_records(
    path: Path, lines: TextIO, *, check_encoding: bool, protected: bool
) -> tuple[list[ImportRow], list[SubscriberError], list[SubscriberError]]:
    """:func:`read_subscriber_csv` on the decoded ``lines`` of ``path``.

    ``check_encoding``: the file has bytes that are not UTF-8 (look for them record by
    record); ``protected``: some cell may carry a :func:`protect_cell` mark.
    """
    reader = csv.reader(lines)
    by_hash: dict[str, ImportRow] = {}
    first_line: dict[str, int] = {}
    duplicates: list[SubscriberError] = []
    rejected: list[SubscriberError] = []
    try:
        header = next(reader, [])
        if check_encoding and (reason := _encoding_reason(header)):
            raise SubscriberError(f"{path.name}:1", reason)
        columns = _Columns.from_header(header, f"{path.name}:1")
        for line, values in _records(reader, lambda: reader.line_num, protected=protected):
            where = f"{path.name}:{line}"
            try:
                if isinstance(values, str):
                    raise SubscriberError(where, values)
                if check_encoding and (reason := _encoding_reason(values)):
                    raise SubscriberError(where, reason)
                row = _parse_row(values, columns, where)
            except SubscriberError as e:
                rejected.append(e)
                continue
            key = row.hash
            if key in by_hash:
                duplicates.append(
                    SubscriberError(where, f"duplicate of line {first_line[key]} ({row.email}); merged")
                )
                _merge(by_hash[key], row)
            else:
                by_hash[key] = row
                first_line[key] = line
    except csv.Error as e:  # the header itself; records recover in _records
        raise SubscriberError(str(path), f"cannot read the subscriber file: {e}") from e
    return list(by_hash.values()), duplicates, rejected


# Where a cell :func:`protect_cell` marked can start: the file's start, after a comma, a
# line break or an opening quote. A match may be a false alarm (then every cell is checked).
_PROTECTED_CELL = re.compile(b"(?:^|[,\r\n\"])'[=+\\-@\t\r]")  # on the file's bytes
# Bytes that are not UTF-8, as ``surrogateescape`` decodes them (0x80-0xff -> U+DC80-U+DCFF).
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _encoding_reason(values: list[str]) -> str | None:
    """Why a record cannot be read as text: the first byte that is not UTF-8, and the fix."""
    for value in values:
        found = _NOT_UTF8.search(value)
        if found is not None:
            byte = ord(found.group()) - 0xDC00
            return f"not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    return None


def recipients_after_import(settings: Settings, store: Store, list_slug: str, *, now: datetime) -> int:
    """Who an issue of the list would reach once its ``subscribers`` file is imported.

    ``digest send`` imports the list's file first; a dry run must count the same people
    without writing anything. Without a file, the list's current recipients.
    """
    list_cfg = settings.list_config(list_slug)
    languages = list_cfg.languages or None
    if list_cfg.subscribers is None:
        return store.subscribers.count_confirmed(list_slug, languages)
    rows, _duplicates, _rejected = read_subscriber_csv(list_cfg.subscribers)
    consent = Consent(at=now, method="import", source=list_cfg.subscribers.name)
    return store.subscribers.count_confirmed_after_import(
        list_slug, languages, rows, consent, _site_language(settings)
    )


def import_csv(
    settings: Settings,
    store: Store,
    list_slug: str,
    path: Path,
    *,
    now: datetime,
    method: str = "import",
    progress: Progress | None = None,
) -> ImportReport:
    """Load a CSV of subscribers into a list as confirmed, idempotently.

    Bad rows are reported in ``rejected`` and the rest goes on; repeated addresses are
    merged and reported in ``warnings``. Addresses suppressed in
    the store (or forgotten) stay suppressed; a ``status`` column (as ``export_csv``
    writes it) carries unsubscribed/bounced/complained rows over as suppressions.
    ``progress(done, total)`` is called after each batch, counting distinct addresses.
    ``now`` (the caller's clock) stamps the consent and every change.
    """
    settings.list_config(list_slug)  # ConfigError naming the configured lists
    rows, duplicates, rejected = read_subscriber_csv(path)
    consent = Consent(at=now, method=method, source=path.name)
    default_language = _site_language(settings)
    outcome = store.subscribers.import_rows(
        list_slug, rows, consent, default_language, progress=progress, batch_size=BATCH_SIZE
    )
    return ImportReport(
        added=outcome.added,
        updated=outcome.updated,
        unchanged=outcome.unchanged,
        suppressed_kept=outcome.suppressed_kept,
        duplicates=len(duplicates),
        rejected=rejected,
        warnings=duplicates,
    )


@dataclass(slots=True)
class ImportCheck:
    """What importing a file would do, read before anything is written (the console's upload).

    ``rows`` counts the file's data rows: ``addresses`` distinct good ones, ``duplicates``
    later rows merged into an earlier one, ``rejected`` one error per bad row with its
    line and reason. A file whose header is unusable raises SubscriberError instead.
    """

    list_slug: str
    file_name: str
    rows: int
    addresses: int
    duplicates: list[SubscriberError] = field(default_factory=list)
    rejected: list[SubscriberError] = field(default_factory=list)


def check_import(settings: Settings, list_slug: str, path: Path) -> ImportCheck:
    """Read and validate a subscriber file exactly as :func:`import_csv` will; write nothing."""
    settings.list_config(list_slug)
    rows, duplicates, rejected = read_subscriber_csv(path)
    total = len(rows) + len(duplicates) + len(rejected)
    return ImportCheck(list_slug, path.name, total, len(rows), duplicates, rejected)


# -- who a list cannot serve -----------------------------------------------------------


def unserved_languages(settings: Settings, store: Store, list_slug: str) -> dict[str, int]:
    """Confirmed subscribers of a list that it skips because of their language, per language.

    A list with ``languages`` sends only to subscribers whose language is one of
    them; the others stay subscribed but get nothing (they are skipped, not sent the
    site language: the items of such a list are in its languages only). This is
    their count, for the digest report and ``status``, so the skip is never silent;
    ``sum(...values())`` is the number skipped. Empty for a list without ``languages``.
    """
    list_cfg = settings.list_config(list_slug)
    return store.subscribers.unserved_by_language(list_cfg.slug, list_cfg.languages)


# -- CSV export -----------------------------------------------------------------------


def export_csv(store: Store, list_slug: str, out: TextIO, *, statuses: Collection[str] | None = None) -> int:
    """Write a list's subscribers as CSV (every status unless ``statuses``); return the row count.

    The columns are those ``import_csv`` reads, then one column per attribute, so an
    export imported into another store gives the same subscribers and suppressions.
    """
    rows = list(store.subscribers.export_rows(list_slug, statuses))
    attribute_keys = sorted({k for r in rows for k in r.attributes} - set(EXPORT_COLUMNS))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([protect_cell(c) for c in (*EXPORT_COLUMNS, *attribute_keys)])
    for r in rows:
        cells = [
            r.email,
            r.name,
            r.language,
            r.status.value,
            r.consent_at.isoformat() if r.consent_at else "",
            r.consent_method or "",
            r.consent_source or "",
            *(str(r.attributes.get(k, "")) for k in attribute_keys),
        ]
        writer.writerow([protect_cell(c) for c in cells])
    return len(rows)


# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV
# injection"); a subscriber's name is theirs to choose, so it must not become one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def protect_cell(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would read as a formula (OWASP's rule)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def unprotect_cell(value: str) -> str:
    """Undo :func:`protect_cell` on import, so an export imported again is unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


# -- admin operations (CLI) -----------------------------------------------------------


def _subscriber(store: Store, subscriber_id: int, list_slug: str) -> Subscriber:
    found = store.subscribers.get(subscriber_id, list_slug)
    if found is None:  # only if someone deleted the row in between
        raise SubscriberError(f"subscriber {subscriber_id}", f"not on list {list_slug!r}")
    return found


def add(
    settings: Settings,
    store: Store,
    list_slug: str,
    email: str,
    name: str = "",
    language: str | None = None,
    *,
    now: datetime,
    method: str = "cli",
    source: str = "",
    force: bool = False,
) -> Subscriber:
    """Subscribe an address as confirmed, recording the consent the admin holds.

    A suppressed or forgotten address is refused unless ``force`` is true, which says
    the admin has fresh consent; the consent and the lifted suppression are recorded.
    """
    settings.list_config(list_slug)
    address = normalise_address(email)
    clean_name = check_name(name)
    lang = check_language(language, _site_language(settings)) if language else None
    consent = Consent(at=now, method=method, source=source)
    subscribers = store.subscribers
    subscriber_id = subscribers.find_id(address)
    if subscriber_id is None:
        subscriber_id = subscribers.create(
            address, clean_name, lang or _site_language(settings), {}, consent.at
        )
        subscribers.change_status(subscriber_id, list_slug, SubscriptionStatus.CONFIRMED, consent=consent)
        return _subscriber(store, subscriber_id, list_slug)
    forgotten = subscribers.is_forgotten(subscriber_id)
    status = subscribers.statuses(subscriber_id).get(list_slug)
    suppressed = forgotten or status in SUPPRESSED
    if suppressed and not force:
        state = "forgotten (erased)" if forgotten else f"{status} from list {list_slug!r}"
        raise SubscriberError(
            address,
            f"is {state}; re-subscribe only with the subscriber's fresh consent, using force (--force)",
        )
    subscribers.update_details(
        subscriber_id, email=address if forgotten else None, name=clean_name or None, language=lang
    )
    detail = f"{consent.detail} (suppression lifted by force)" if suppressed else None
    subscribers.change_status(
        subscriber_id,
        list_slug,
        SubscriptionStatus.CONFIRMED,
        consent=consent,
        detail=detail,
        lift_suppression=force,
    )
    return _subscriber(store, subscriber_id, list_slug)


def remove(store: Store, list_slug: str, email: str, *, now: datetime, reason: str = "cli") -> Unsubscribe:
    """Unsubscribe an address from a list (``subscribers remove``); idempotent.

    On a bounced or complained address the unsubscribe is recorded (``recorded``) so
    that lifting the suppression later leaves it unsubscribed; see
    :meth:`publisher.store.subscribers.SubscriberStore.unsubscribe`.
    """
    subscriber_id = store.subscribers.find_id(normalise_address(email))
    if subscriber_id is None:
        return Unsubscribe.NOT_ON_LIST
    return _unsubscribe(store, subscriber_id, list_slug, Consent(at=now, method=reason))


def show(store: Store, email: str) -> SubscriberRecord:
    """Everything known about an address: lists, consent, attributes, history."""
    address = normalise_address(email)
    subscriber_id = store.subscribers.find_id(address)
    record = None if subscriber_id is None else store.subscribers.record(subscriber_id)
    if record is None:
        raise SubscriberError(address, "no subscriber with this address")
    return record


def forget(store: Store, email: str, *, now: datetime) -> bool:
    """Erase an address's personal data, keeping its hash so no import brings it back.

    Returns False when the address is unknown or was forgotten already.
    """
    subscriber_id = store.subscribers.find_id(normalise_address(email))
    if subscriber_id is None:
        return False
    return store.subscribers.forget(subscriber_id, now)


# -- token-driven operations (web app, delivery ledger) -------------------------------


def _require(store: Store, subscriber_id: int) -> None:
    if store.subscribers.secret(subscriber_id) is None:
        raise SubscriberError(f"subscriber {subscriber_id}", "no such subscriber")


def _unsubscribe(store: Store, subscriber_id: int, list_slug: str, consent: Consent) -> Unsubscribe:
    return store.subscribers.unsubscribe(subscriber_id, list_slug, consent)


def unsubscribe_by_id(
    store: Store,
    subscriber_id: int,
    list_slug: str,
    *,
    now: datetime,
    method: str = "one-click",
    source: str = "",
) -> bool:
    """Unsubscribe from a token link; True the first time, False on repeats (idempotent).

    ``method`` is "one-click" (RFC 8058 POST) or "web"; ``source`` says from where
    (e.g. the client address) and goes into the event.
    """
    _require(store, subscriber_id)
    return _unsubscribe(
        store, subscriber_id, list_slug, Consent(at=now, method=method, source=source)
    ).changed


def set_status(
    store: Store,
    subscriber_id: int,
    list_slug: str | None,
    status: SubscriptionStatus,
    detail: str,
    *,
    now: datetime,
) -> bool:
    """Record a suppression reported by the delivery ledger (bounced, complained, unsubscribed).

    ``list_slug`` None applies it to every list of the subscriber (a hard bounce).
    The more severe suppression wins (:func:`publisher.models.suppression_replaces`):
    a bounce or complaint replaces an unsubscribe, so the list cannot be joined back
    from its mailed link; a complaint replaces anything, as complaints are what a sender
    must be able to prove it honoured. Only suppressions can be set here; subscribing
    takes consent (``add``, ``update_preferences``).
    """
    status = SubscriptionStatus(status)
    if status not in SUPPRESSED:
        raise SubscriberError(
            f"subscriber {subscriber_id}",
            f"set_status records suppressions only, not {status.value!r}; subscribing needs consent",
        )
    _require(store, subscriber_id)
    current = store.subscribers.statuses(subscriber_id)
    slugs = list(current) if list_slug is None else [list_slug]
    consent = Consent(at=now, method=status.value)
    changed = False
    for slug in slugs:
        old = current.get(slug)
        if old is None or not suppression_replaces(old, status):
            continue
        changed |= store.subscribers.change_status(
            subscriber_id, slug, status, consent=consent, detail=detail
        )
    return changed


def subscriber_secret(store: Store, subscriber_id: int) -> str | None:
    """The secret that signs this subscriber's tokens; None for an unknown id."""
    return store.subscribers.secret(subscriber_id)


def preferences(store: Store, subscriber_id: int) -> dict[str, SubscriptionStatus]:
    """The subscriber's status per list it was ever on (lists never joined are absent)."""
    return store.subscribers.statuses(subscriber_id)


def update_preferences(
    store: Store,
    subscriber_id: int,
    choices: Mapping[str, bool],
    *,
    now: datetime,
    source: str = "",
    lists: Collection[str] | None = None,
) -> dict[str, SubscriptionStatus]:
    """Apply the preferences form: True subscribes, False unsubscribes; return the new statuses.

    Turning a list on is the subscriber's own fresh consent (method "preferences"), so
    it lifts their own unsubscribe. A bounce or a complaint stops every join, on any
    list, the never joined ones included (:func:`join_blocked`): the address failed or
    its owner reported us, and a link in a forwarded mail is no proof that this changed;
    only an admin lifts those (``subscribers unsuppress``, ``add(..., force=True)``).
    Leaving still works. ``lists``, when given, are the configured list slugs; any other
    slug is refused. A forgotten address cannot be subscribed again here.
    """
    _require(store, subscriber_id)
    unknown = sorted(set(choices) - set(lists)) if lists is not None else []
    if unknown:
        raise SubscriberError(f"subscriber {subscriber_id}", f"unknown list(s): {', '.join(unknown)}")
    if any(choices.values()) and store.subscribers.is_forgotten(subscriber_id):
        raise SubscriberError(f"subscriber {subscriber_id}", "this address was erased; subscribe it anew")
    consent = Consent(at=now, method="preferences", source=source)
    current = store.subscribers.statuses(subscriber_id)
    blocked = _blocked(current)
    for slug, wanted in choices.items():
        if wanted:
            if blocked:
                continue
            store.subscribers.change_status(
                subscriber_id, slug, SubscriptionStatus.CONFIRMED, consent=consent, lift_suppression=True
            )
        else:
            _unsubscribe(store, subscriber_id, slug, consent)
    return store.subscribers.statuses(subscriber_id)


def _blocked(statuses: Mapping[str, SubscriptionStatus]) -> bool:
    return any(status in ADMIN_ONLY for status in statuses.values())


def join_blocked(store: Store, subscriber_id: int) -> bool:
    """Whether the subscriber's own links may join no list: bounced or complained anywhere, or erased.

    A bounce or complaint is about the address, not one list (reports mark every list,
    and the sign-up form refuses such an address on every list too), so the web joins
    nothing until an admin lifts it.
    """
    if store.subscribers.is_forgotten(subscriber_id):
        return True
    return _blocked(store.subscribers.statuses(subscriber_id))


def web_choices(
    current: Mapping[str, SubscriptionStatus],
    chosen: Collection[str],
    *,
    public: Collection[str],
    configured: Collection[str],
) -> dict[str, bool]:
    """What the preferences form asks, as ``update_preferences`` choices.

    Every public list is on the form, so it is joined or left as ticked. A private
    list is on the form only while the subscriber is on it: it can be left, never
    joined, whatever a forged POST ticks. Slugs not configured are ignored.
    """
    choices = {slug: slug in chosen for slug in public if slug in configured}
    for slug, status in current.items():
        if slug in configured and slug not in choices and status is SubscriptionStatus.CONFIRMED:
            choices[slug] = slug in chosen
    return choices


def leave_all(store: Store, subscriber_id: int, *, now: datetime, source: str = "") -> int:
    """Unsubscribe from every list (the preferences page's "leave every list"); how many were left."""
    _require(store, subscriber_id)
    consent = Consent(at=now, method="preferences", source=source)
    return sum(
        _unsubscribe(store, subscriber_id, slug, consent).changed
        for slug in preferences(store, subscriber_id)
    )


def set_language(store: Store, subscriber_id: int, language: str) -> str:
    """Store the subscriber's language (one the digests are written in); return it normalised."""
    _require(store, subscriber_id)
    chosen = check_language(language, "", where="language")
    if not chosen:
        raise SubscriberError("language", f"choose one of {', '.join(sorted(LANGUAGES))}")
    store.subscribers.update_details(subscriber_id, language=chosen)
    return chosen


def personal_data(store: Store, subscriber_id: int, *, now: datetime) -> dict[str, object]:
    """The subscriber's own data as JSON-ready values: what a data-access request gets.

    Address, name, language, every subscription with its status, its whole consent
    record (a web sign-up's text and language, its confirmation) and its history of
    events (``subscription_events``: when, what, and the source or detail recorded),
    the other events (of no list, or of a subscription no longer stored), and the
    deliveries of the last year. Nothing of anyone else: every query is by id.
    """
    record = store.subscribers.record(subscriber_id)
    if record is None or record.email is None:
        raise SubscriberError(f"subscriber {subscriber_id}", "no such subscriber")
    since = now - timedelta(days=EXPORT_DELIVERIES_DAYS)

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    def history(lists: Collection[str | None]) -> list[dict[str, str | None]]:
        return [
            {"at": e.at.isoformat(), "list": e.list_slug, "event": e.event, "detail": e.detail}
            for e in record.events
            if e.list_slug in lists
        ]

    listed = {s.list_slug for s in record.lists}

    return {
        "email": record.email,
        "name": record.name,
        "language": record.language,
        "created": record.created.isoformat(),
        "attributes": dict(record.attributes),
        "subscriptions": [
            {
                "list": s.list_slug,
                "status": s.status.value,
                "updated": s.updated_at.isoformat(),
                "consent": {
                    "at": iso(s.consent_at),
                    "method": s.consent_method,
                    "source": s.consent_source,
                    "text": s.consent_text,
                    "language": s.consent_language,
                    "confirmed_at": iso(s.confirmed_at),
                    "confirmed_source": s.confirmed_source,
                },
                "events": history({s.list_slug}),
            }
            for s in record.lists
        ],
        "events": history({e.list_slug for e in record.events} - listed),
        "deliveries": [
            {
                "list": d.list_slug,
                "period": d.period_key,
                "subject": d.subject,
                "status": d.status,
                "at": d.updated_at.isoformat(),
            }
            for d in store.subscribers.deliveries_since(subscriber_id, since)
        ],
        "exported": now.isoformat(),
    }
