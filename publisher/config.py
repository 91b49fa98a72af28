"""config.toml -> typed, validated settings.

Everything is validated at start-up so that a mistake is reported before any work is
done, with the key path, the bad value and what is allowed (the Datasette / listmonk
way). Unknown keys are refused (``extra="forbid"``): a typo must never be silently
ignored. Relative paths resolve against the folder of the config file so that the
same config works whatever the working directory. Secrets never live in the file:
only the *name* of an environment variable does.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from publisher.errors import ConfigError
from publisher.models import SENDING_JOBS, JobKind
from publisher.selectors import check_selector, split_selector
from publisher.text import is_language_tag

SLUG = r"^[a-z0-9][a-z0-9-]*$"
# Numbers are strict (no "50" for 50, no true for 1) and finite (no inf, no nan): a
# value that only works by accident is a mistake the admin should hear about.
Finite = Annotated[StrictFloat, Field(allow_inf_nan=False)]
MAX_DURATION = timedelta(days=36500)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_WEEKDAY_NAMES = "mon,tue,wed,thu,fri,sat,sun"


class Duration(timedelta):
    """A duration from config (``15m``, ``14d``), parsed once when the config is read.

    It is a timedelta for arithmetic and prints as the admin wrote it (``24h`` stays
    ``24h``), so messages and listings quote the config.
    """

    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{int(self.total_seconds())}s"

    def __reduce__(self) -> tuple[Any, ...]:
        # timedelta pickles (and copies) without instance attributes; keep the text.
        return (parse_duration, (self.text or f"{int(self.total_seconds())}s",))


def parse_duration(text: str) -> Duration:
    """Read ``15m``, ``24h``, ``14d`` or ``30s``; raise ValueError saying what is allowed."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit s, m, h or d, e.g. '15m' or '14d'"
        )
    amount, unit = int(match.group(1)), match.group(2)
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than 100 years ('36500d'); write a shorter duration")
    if amount == 0:
        raise ValueError(f"{text!r} must be longer than zero")
    duration = Duration(**{_UNITS[unit]: amount})
    duration.text = f"{amount}{unit}"
    return duration


def _duration(value: object) -> Duration:
    """Validator of :data:`DurationText`: only text such as '15m' (strict, like numbers)."""
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration: write it as text, e.g. '15m' or '14d'")
    return parse_duration(value)


DurationText = Annotated[Duration, PlainValidator(_duration), PlainSerializer(str, return_type=str)]


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _check_path(value: Path) -> Path:
    """Refuse what would crash when the path is resolved: a NUL byte, an unknown ``~user``."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("a path cannot contain a NUL character")
    try:
        value.expanduser()
    except RuntimeError as e:
        raise ValueError(f"{text!r}: '~user' names no user of this machine; write the full path") from e
    return value


def _check_location(value: str) -> str:
    """A source's ``url``: an http(s) URL, or a file path that can be resolved."""
    if not _is_url(value):
        _check_path(Path(value.removeprefix("file://")))
    return value


ConfigPath = Annotated[Path, AfterValidator(_check_path)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class SiteConfig(_Strict):
    title: str = "Social Protection Department"
    base_url: str = "http://127.0.0.1:8080"
    language: str = "en"
    timezone: str = "UTC"
    description: str = ""
    # The organisation's postal address, printed in every digest footer; required when
    # any list is public (Settings._cross_references): bulk-mail law asks for it.
    postal_address: str = ""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        if not _is_url(v):
            raise ValueError("must be an absolute http:// or https:// URL, e.g. 'https://news.example.org'")
        return v.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        return _check_language(v)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _check_language(v: str) -> str:
    """A language written into feeds and pages verbatim must be a BCP 47 tag."""
    if not is_language_tag(v) or len(v) > 20:
        raise ValueError(f"{v[:50]!r} is not a language tag: write one such as 'en' or 'fr-CH' (BCP 47)")
    return v


def _check_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # "Europe" is a folder: OSError
        raise ValueError(f"unknown time zone {v!r}: use an IANA name such as 'Europe/Zurich' or 'UTC'") from e
    return v


# -- names of environment variables, DNS names, mail addresses -----------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The error type of a bad *_env value: _format_error shows it without the value, which
# may be the secret itself pasted where its variable's name belongs.
ENV_NAME_ERROR = "env_name"


def _check_env_name(value: str, example: str) -> str:
    """A ``*_env`` key holds the *name* of an environment variable, never the secret."""
    if not _ENV_NAME.match(value):
        raise PydanticCustomError(
            ENV_NAME_ERROR,
            "must name the environment variable that holds the secret, not hold the secret itself: "
            "write a name of letters, digits and '_' that does not start with a digit, e.g. "
            "{example}, and set that variable to the secret (the value is not shown here in "
            "case it is one)",
            {"example": repr(example)},
        )
    return value


def _env_name(example: str) -> AfterValidator:
    """The validator of a ``*_env`` key; ``example`` is the name the README suggests."""
    return AfterValidator(lambda value: _check_env_name(value, example))


_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")


def _check_dns_name(value: str, example: str) -> str:
    """A name that goes into DNS (and DKIM's s= and d= tags): letter-digit-hyphen labels
    joined by dots; anything else makes every signature unverifiable."""
    if len(value) > 253 or not _DNS_NAME.match(value):
        raise ValueError(
            "must be a DNS name: labels of letters, digits and '-' (not first or last, at most "
            f"63 characters each) with a '.' between labels, no spaces or other signs, e.g. {example!r}"
        )
    return value


def _ascii_domain(value: str) -> str:
    """A domain in its ASCII form: a non-ASCII (internationalised) one becomes ``xn--...``.

    email-validator does the IDNA conversion, as it does for subscribers' addresses
    (publisher.subscriptions), so a domain reads the same wherever it is written.
    """
    if value.isascii():
        return value.lower()
    try:
        return str(validate_email("postmaster@" + value, check_deliverability=False).ascii_domain)
    except EmailNotValidError as e:
        raise ValueError(f"is not a domain name: {e}") from e


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_one_line(value: str, example: str) -> None:
    if _CONTROL.search(value):
        raise ValueError(
            f"contains a line break or another control character; write one line, e.g. {example!r}"
        )


def _ascii_address(written: str, example: str) -> str:
    """``written`` validated by email-validator (no DNS lookup), in its ASCII form."""
    if "@" not in written:
        raise ValueError(f"{written!r} is not an address: write one such as {example!r}")
    if not written.rpartition("@")[0].isascii():
        raise ValueError(
            f"the part before the '@' of {written!r} is not ASCII: mail from such an address needs "
            "SMTPUTF8, which many servers and readers do not support; use an ASCII address "
            "(a non-ASCII domain or display name is fine)"
        )
    try:
        found = validate_email(written, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise ValueError(f"{written!r} is not a valid address: {e}") from e
    return str(found.ascii_email)


def _check_mailbox(value: str, example: str) -> str:
    """One mail address, optionally with a display name: ``News <news@example.org>``.

    Returned with the address in its ASCII form (an internationalised domain becomes
    ``xn--...``), since headers and the SMTP envelope are built from it in ASCII; the
    display name may stay non-ASCII (it is RFC 2047-encoded in the header). A non-ASCII
    local part is refused: it needs SMTPUTF8, which relays and readers cannot be relied
    on for. Several addresses are refused rather than all but the first being dropped.
    """
    _check_one_line(value, example)
    mailboxes = [(name, address) for name, address in getaddresses([value]) if name or address]
    if len(mailboxes) != 1:
        raise ValueError(
            f"holds {len(mailboxes)} addresses; write exactly one, e.g. {example!r} "
            "(a name with a comma goes in double quotes: '\"Press, Media\" <press@example.org>')"
        )
    name, parsed = mailboxes[0]
    # parseaddr quietly drops what it cannot read ("<news@exa mple.org>" becomes
    # news@example.org): validate what the admin wrote between the brackets instead.
    text = value.strip()
    if text.endswith(">") and "<" in text:
        written = text[text.rfind("<") + 1 : -1].strip()
    elif parsed in text:
        written = parsed  # "news@example.org" or "news@example.org (News)"
    else:
        written = text  # email-validator says what is wrong with it
    address = _ascii_address(written, example)
    if not name:
        return address
    if re.search(r'[()<>\[\]:;@\\,."]', name) or name != name.strip():
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _check_bare_address(value: str, example: str) -> str:
    """One address alone (``mailto:`` in front is allowed), in its ASCII form."""
    _check_one_line(value, example)
    written = value.strip()
    written = written[len("mailto:") :] if written.lower().startswith("mailto:") else written
    if "?" in written:
        raise ValueError(
            f"write the address alone, without '?...' (the publisher adds the subject), e.g. {example!r}"
        )
    if any(c in written for c in "<>,") or any(c.isspace() for c in written):
        raise ValueError(f"must be one address alone, without a name, brackets or spaces, e.g. {example!r}")
    return _ascii_address(written, example)


class StorageConfig(_Strict):
    url: str = "sqlite:///var/publisher.db"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:/// or postgresql:// (e.g. 'postgresql://user@host/db')")
        if v.startswith("sqlite:///"):
            _check_path(Path(v.removeprefix("sqlite:///")))
        return v


class FeedsConfig(_Strict):
    output_dir: ConfigPath = Path("public")
    formats: list[Literal["rss", "atom", "json"]] = ["rss", "atom", "json"]
    max_items: StrictInt = Field(50, ge=1, le=10000)
    # RFC 5005 archive pages (publisher.feed_archives): items per page, oldest first.
    archive_page_size: StrictInt = Field(100, ge=10, le=10000)
    # WebSub hubs (publisher.websub): linked from every feed, pinged after a build.
    websub_hubs: list[str] = []
    # Per-language feeds at feeds/{lang}/{name}.*, besides the feeds of every language.
    languages: list[str] = []

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one of 'rss', 'atom', 'json'")
        return list(dict.fromkeys(v))

    @field_validator("websub_hubs")
    @classmethod
    def _hubs(cls, v: list[str]) -> list[str]:
        for hub in v:
            if not _is_url(hub) or any(c.isspace() for c in hub):
                raise ValueError(
                    f"{hub[:100]!r} is not a hub URL: write one such as 'https://pubsubhubbub.appspot.com/'"
                )
        return list(dict.fromkeys(v))

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: list[str]) -> list[str]:
        for lang in v:
            _check_language(lang)
            if lang.lower() != lang or lang == "archive":
                raise ValueError(f"{lang!r}: write a language folder in lower case, such as 'fr' or 'fr-ch'")
        return list(dict.fromkeys(v))


class CategoryConfig(_Strict):
    slug: str = Field(pattern=SLUG)
    title: str
    labels: list[str] = []
    titles: dict[str, str] = {}  # the title in other languages, for digests: {fr = "...", es = "..."}

    @field_validator("slug")
    @classmethod
    def _not_all(cls, v: str) -> str:
        if v == "all":
            raise ValueError("'all' is reserved for the all-items feed; choose another slug")
        return v


class _SourceBase(_Strict):
    name: str = Field(pattern=SLUG)
    category: str | None = None  # label used when an item carries none
    language: str | None = None
    # Limits of one fetch (see publisher.sources.http): an upstream is not trusted.
    timeout: Finite = Field(30.0, gt=0, le=3600)  # seconds for the whole response
    max_bytes: StrictInt = Field(10 * 1024 * 1024, ge=1024, le=1024**3)  # decoded body size cap
    follow_redirects_to: list[str] = []  # other origins a redirect may lead to
    max_items_per_run: StrictInt = Field(1000, ge=1, le=1_000_000)  # newest first; the rest wait

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return None if v is None else _check_language(v)

    @field_validator("follow_redirects_to")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for text in v:
            if not _is_origin(text):
                raise ValueError(
                    f"{text!r} is not an origin: write scheme://host[:port], e.g. 'https://cdn.example.org'"
                )
        return v


def _is_origin(text: str) -> bool:
    """``scheme://host[:port]`` and nothing else: what a redirect target is compared by."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - the property raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment)
    )


class DirectorySourceConfig(_SourceBase):
    type: Literal["directory"]
    path: ConfigPath


class FeedSourceConfig(_SourceBase):
    type: Literal["feed"]
    url: Annotated[str, AfterValidator(_check_location)]  # http(s) URL or file path


class HtmlSourceConfig(_SourceBase):
    type: Literal["html"]
    url: Annotated[str, AfterValidator(_check_location)]
    item: str
    title: str
    link: str
    date: str
    date_format: str | None = None
    summary: str | None = None
    image: str | None = None
    # ``category`` of _SourceBase is a CSS selector here (the item's type label);
    # ``default_category`` is the label used when the selector finds nothing.
    default_category: str | None = None
    base_url: str | None = None  # resolves relative links of a page read from a file
    # Selectors of elements removed from each item before anything is read from it
    # ("Read more" links, share buttons), so they never end up in a title or summary.
    exclude: list[str] = []

    @field_validator("item", "title", "link", "date", "summary", "image", "category")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is not None:
            check_selector(v)
        return v

    @field_validator("exclude")
    @classmethod
    def _excluded(cls, v: list[str]) -> list[str]:
        for spec in v:
            if not spec.strip():
                raise ValueError("an empty selector would remove the whole item: give e.g. 'a.more'")
            if split_selector(spec)[1] is not None:
                raise ValueError(f"{spec!r}: exclude takes elements, not attributes: write it without '@...'")
            check_selector(spec)
        return v

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is not None and not _is_url(v):
            raise ValueError("must be the absolute http(s) URL the page is published at")
        return v


SourceConfig = Annotated[
    DirectorySourceConfig | FeedSourceConfig | HtmlSourceConfig, Field(discriminator="type")
]


class SmtpConfig(_Strict):
    host: str = "127.0.0.1"
    port: StrictInt = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str = ""
    password_env: Annotated[str, _env_name("PUBLISHER_SMTP_PASSWORD")] = "PUBLISHER_SMTP_PASSWORD"
    connections: StrictInt = Field(4, ge=1, le=64)
    rate_per_second: Finite = Field(0, ge=0, le=100_000)
    timeout: Finite = Field(60.0, gt=0, le=3600)  # per message, whole SMTP transaction
    helo: str | None = None

    @property
    def password(self) -> str | None:
        """The secret, read from the environment at use (never stored in config)."""
        return os.environ.get(self.password_env) or None


class DeliveryConfig(_Strict):
    retry_min: DurationText = parse_duration("5m")
    retry_max: DurationText = parse_duration("4h")
    give_up: DurationText = parse_duration("3d")
    batch_size: StrictInt = Field(500, ge=1, le=100_000)
    journal_dir: ConfigPath = Path("var/journal")  # crash journals of sending workers
    # "daemon": `digest send` and scheduled digests send themselves; "workers": they only
    # queue the deliveries, and `publisher worker` processes (on any hosts) send them.
    mode: Literal["daemon", "workers"] = "daemon"
    # How long a sending process's claim on its deliveries holds without a renewal (it
    # renews every quarter of it); after that another process settles them (publisher.ledger).
    lease: DurationText = parse_duration("5m")

    @field_validator("retry_max")
    @classmethod
    def _retry_max_not_below_min(cls, value: Duration, info: ValidationInfo) -> Duration:
        # The backoff doubles from retry_min and stops growing at retry_max; a maximum
        # below the minimum is a swapped pair or a typo, not a schedule.
        low = info.data.get("retry_min")
        if low is not None and value < low:
            raise ValueError(
                f"{value} is shorter than retry_min ({low}): the retry delay grows from retry_min "
                f"up to retry_max; make retry_max at least {low}, e.g. '4h'"
            )
        return value

    @field_validator("lease")
    @classmethod
    def _lease_long_enough(cls, value: Duration) -> Duration:
        if value.total_seconds() < 3:
            raise ValueError(f"{value} is too short: it is renewed every quarter of it; write '3s' or more")
        return value


class WebConfig(_Strict):
    host: str = "127.0.0.1"
    port: StrictInt = Field(8080, ge=0, le=65535)
    # Slow or idle clients must not hold connections (see publisher.daemon).
    keep_alive_timeout: Finite = Field(5.0, gt=0, le=3600)  # idle seconds between requests
    header_timeout: Finite = Field(10.0, gt=0, le=3600)  # seconds to send a request's headers
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (a reverse proxy such
    # as nginx); the client address they name is what the sign-up and login limits count.
    # Anyone else's forwarded headers are ignored, so a client cannot pick its address.
    forwarded_allow_ips: list[str] = ["127.0.0.1", "::1"]

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: list[str]) -> list[str]:
        bad = []
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                bad.append(repr(entry))
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: not an IP address or network; list the reverse proxies that "
                'reach the publisher, e.g. ["127.0.0.1", "10.0.0.0/24"], or [] to trust none'
            )
        return value


class ItemsConfig(_Strict):
    """Length caps applied by ingest: longer text is cut at a word with an ellipsis."""

    max_title_length: StrictInt = Field(500, ge=20, le=100_000)
    max_summary_length: StrictInt = Field(10_000, ge=100, le=1_000_000)


class OutboxConfig(_Strict):
    path: ConfigPath = Path("var/outbox")


class DkimConfig(_Strict):
    """``[dkim]``: every message is signed with ``s=selector`` and ``d=domain``.

    Both become DNS names (``{selector}._domainkey.{domain}``) that receivers look up,
    so a space or a ';' in either makes every signature fail; refused when read.
    """

    selector: str
    domain: str
    key_path: ConfigPath

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        return _check_dns_name(v, "news2026")

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        domain = _check_dns_name(_ascii_domain(v), "example.org")
        if "." not in domain:
            raise ValueError("must be the domain the mail is signed for, with a '.', e.g. 'example.org'")
        return domain


class TemplatesConfig(_Strict):
    path: ConfigPath | None = None  # admin override folder, searched before templates/


class ListConfig(_Strict):
    slug: str = Field(pattern=SLUG)
    name: str
    categories: list[str] = ["*"]
    languages: list[str] = []  # empty: every language
    schedule: str | None = None
    sender: str
    reply_to: str | None = None
    subject: str = "{{ list.name }}: {{ t('new_items', count=items|length) }}"
    subscribers: ConfigPath | None = None
    max_age: DurationText = parse_duration("14d")
    send_empty: StrictBool = False
    unsubscribe_mailto: str | None = None
    html_template: str = "email/digest.html.j2"
    text_template: str = "email/digest.txt.j2"
    max_items: StrictInt = Field(100, ge=1, le=10000)  # per issue, newest first; the rest are counted
    public: StrictBool = True  # listed, archived and joinable from the web; False: none of these

    @field_validator("sender", "reply_to")
    @classmethod
    def _mailbox(cls, v: str | None) -> str | None:
        return None if v is None else _check_mailbox(v, "News <news@example.org>")

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        return None if v is None else _check_bare_address(v, "unsubscribe@example.org")

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2].lower()


class SubscriptionsConfig(_Strict):
    """The web sign-up: how long a confirmation link lives and the abuse limits."""

    confirm_within: DurationText = parse_duration("7d")  # unconfirmed sign-ups are deleted after
    resend_after: DurationText = parse_duration("10m")  # at most one confirmation mail per address
    per_ip_per_hour: StrictInt = Field(20, ge=1, le=100_000)  # sign-ups per client address


class ImapMailboxConfig(_Strict):
    """``[bounces] imap = { ... }``: a mailbox on an IMAP server where reports arrive.

    Processed messages are flagged seen and moved to ``processed_folder``; those that
    name nobody we sent to go to ``unmatched_folder``, unreadable ones to
    ``unparsed_folder`` (publisher.bounces.imap). The password only from the environment.
    """

    host: str
    port: StrictInt = Field(993, ge=1, le=65535)
    username: str
    password_env: Annotated[str, _env_name("PUBLISHER_IMAP_PASSWORD")]
    security: Literal["tls", "starttls", "none"] = "tls"
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    unmatched_folder: str = "Unmatched"
    unparsed_folder: str = "Unparsed"

    @property
    def password(self) -> str | None:
        """The secret, read from the environment at use (never stored in config)."""
        return os.environ.get(self.password_env) or None


_SNS_TOPIC_ARN = re.compile(r"^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


_VERP_BASE_RULES = (
    "must be a plain address without '+' and with a local part of at most 24 letters, "
    "digits, '.', '_' or '-', e.g. 'bounces@example.org' (the token is added after a '+')"
)


class BouncesConfig(_Strict):
    """``[bounces]``: the VERP return path, where reports arrive and what they do.

    ``address`` is the mailbox whose ``+`` sub-addresses receive bounces: the envelope
    sender of each message becomes ``local+TOKEN@domain`` (publisher.bounces.verp).
    ``maildir`` or ``imap`` (at most one) says where ``bounces process`` reads reports.
    """

    address: str | None = None
    maildir: ConfigPath | None = None
    imap: ImapMailboxConfig | None = None
    soft_limit: StrictInt = Field(3, ge=1, le=1000)  # temporary failures within soft_window ...
    soft_window: DurationText = parse_duration("30d")  # ... that make an address bounced
    # The environment variable holding the generic webhook's secret.
    webhook_secret_env: Annotated[str, _env_name("PUBLISHER_WEBHOOK_SECRET")] | None = None
    # The SNS topics whose notifications the `ses` webhook accepts (empty: it accepts none).
    # A valid SNS signature only proves that *some* topic sent the message, and anyone can
    # subscribe our URL to a topic of their own (publisher.bounces.webhooks).
    ses_topic_arns: list[str] = []

    @field_validator("ses_topic_arns")
    @classmethod
    def _topic_arns(cls, v: list[str]) -> list[str]:
        for arn in v:
            if not _SNS_TOPIC_ARN.match(arn):
                raise ValueError(
                    f"{arn!r} is not an SNS topic ARN; copy it from the SNS console, "
                    "e.g. 'arn:aws:sns:eu-west-1:123456789012:ses-bounces'"
                )
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        # The same address rules as a list's sender (one address, an IDN domain in its
        # xn-- form), then what a VERP base needs.
        try:
            v = _check_bare_address(v, "bounces@example.org")
        except ValueError as e:
            raise ValueError(f"{_VERP_BASE_RULES}; here: {e}") from e
        local, at, domain = v.partition("@")
        if (
            not at
            or not local
            or not domain
            or "+" in local
            or len(local) > 24
            or not re.fullmatch(r"[A-Za-z0-9._-]+", local)
            or not re.fullmatch(r"[A-Za-z0-9.-]+", domain)
            or "." not in domain
        ):
            raise ValueError(_VERP_BASE_RULES)
        return v.lower()

    @model_validator(mode="after")
    def _one_mailbox(self) -> BouncesConfig:
        if self.maildir is not None and self.imap is not None:
            raise ValueError("set at most one of 'maildir' and 'imap': reports are read from one place")
        return self

    @property
    def reads_reports(self) -> bool:
        return self.maildir is not None or self.imap is not None


ADMIN_USER = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class AdminConfig(_Strict):
    """The admin console's users; each one's password hash comes from the environment.

    Why the environment: config.toml is often in version control or readable by more
    people than the console should be, and an argon2 hash is still a guessing target.
    """

    users: list[Annotated[str, Field(pattern=ADMIN_USER)]] = []

    @field_validator("users")
    @classmethod
    def _unique_users(cls, v: list[str]) -> list[str]:
        twice = sorted({u for u in v if v.count(u) > 1})
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} listed twice; list each user once")
        # 'a-b' and 'a_b' would read the same PUBLISHER_ADMIN_A_B_HASH: one password for two names.
        by_env: dict[str, list[str]] = {}
        for user in v:
            by_env.setdefault(AdminConfig.hash_env(user), []).append(user)
        for env, users in by_env.items():
            if len(users) > 1:
                raise ValueError(
                    f"{' and '.join(map(repr, users))} would share the hash in {env}; rename one of them"
                )
        return v

    @staticmethod
    def hash_env(user: str) -> str:
        """The environment variable holding ``user``'s hash: ``alice`` -> PUBLISHER_ADMIN_ALICE_HASH."""
        return f"PUBLISHER_ADMIN_{user.upper().replace('-', '_')}_HASH"

    def password_hash(self, user: str) -> str | None:
        """``user``'s argon2id hash, read from the environment at use; None when unset or not a user."""
        if user not in self.users:
            return None
        return os.environ.get(self.hash_env(user)) or None

    @property
    def enabled_users(self) -> list[str]:
        """The users who can sign in now: listed, with a hash in the environment."""
        return [u for u in self.users if self.password_hash(u)]


class ScheduleConfig(_Strict):
    every: DurationText | None = None
    cron: str | None = None
    timezone: str | None = None  # default: the site's
    job: JobKind
    catch_up: DurationText = parse_duration("24h")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_timezone(v)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        fields = v.split()
        if len(fields) != 5:
            raise ValueError(
                f"{v!r} has {len(fields)} fields; write five: "
                "minute hour day month weekday, e.g. '0 9 * * mon'"
            )
        weekday = fields[4]
        if re.search(r"\d", weekday):
            raise ValueError(
                f"numeric weekday {weekday!r}: crontab counts 0 as Sunday but the scheduler counts 0 "
                f"as Monday, so numbers are ambiguous; write day names ({_WEEKDAY_NAMES}), "
                "e.g. 'mon' or 'mon-fri'"
            )
        try:  # the scheduler's own parser: what `check` accepts, `run` can schedule
            CronTrigger.from_crontab(v)
        except ValueError as e:
            raise ValueError(f"{v!r}: {e}; e.g. '0 9 * * mon' is Mondays at 09:00") from e
        if cron_never_fires(v):
            on = "" if weekday == "*" else f" that falls on {weekday}"
            raise ValueError(
                f"{v!r} never fires: no calendar date is day {fields[2]} of month {fields[3]}{on}, "
                "so the schedule would never run; write a day that exists in those months "
                "(February has 28 days, 29 in leap years; April, June, September and November 30), "
                "e.g. '0 9 28 2 *'"
            )
        return v

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleConfig:
        if (self.every is None) == (self.cron is None):
            raise ValueError("set exactly one of 'every' (e.g. '15m') or 'cron' (e.g. '0 9 * * mon')")
        return self


#: The Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks).
_CALENDAR_CYCLE_YEARS = 400


def cron_never_fires(cron: str) -> bool:
    """Whether a five-field cron (already parsed once) names no moment at all, e.g. 31 February.

    APScheduler's ``get_next_fire_time`` returns None for it, but only after walking every
    year up to 9999 (0.2 to 0.8 s). Days, months and weekdays repeat with the 400-year
    Gregorian cycle, so a cron that fires at all fires within 400 years of now: searching
    only those years answers the same in about 10 ms. A cron that is merely rare is
    accepted ('0 9 29 2 mon' next fires in 2044).

    Computed in UTC: the zone cannot change the answer. Every date exists in every zone,
    and a local time that a DST change skips still fires (APScheduler 3 fires it at the
    shifted offset), so '30 2 31 3 sun' in Europe/Zurich fires too.
    """
    minute, hour, day, month, weekday = cron.split()
    now = datetime.now(UTC)
    bounded = CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday,
        year=f"{now.year}-{now.year + _CALENDAR_CYCLE_YEARS}",
        timezone=UTC,
    )
    return bounded.get_next_fire_time(None, now) is None


MIN_TAKEOVER = timedelta(seconds=5)
MAX_TAKEOVER = timedelta(minutes=10)


class SchedulerConfig(_Strict):
    """How daemons sharing one store hand the scheduler over (publisher.daemon).

    ``takeover`` bounds how long a store goes without a scheduler when the one that
    schedules dies or loses its database connection; every other interval (lock
    retries, the holder's checks, fire-time claims, TCP keepalives) is derived from
    it. Below 5 s a busy database or a slow check could pass for a dead scheduler.
    """

    takeover: DurationText = parse_duration("30s")

    @field_validator("takeover")
    @classmethod
    def _takeover(cls, v: Duration) -> Duration:
        if not MIN_TAKEOVER <= v <= MAX_TAKEOVER:
            raise ValueError(f"{str(v)!r} is outside 5s..10m; e.g. '30s'")
        return v


class Settings(_Strict):
    """The whole validated configuration; ``path`` is the file it came from."""

    site: SiteConfig = SiteConfig()
    storage: StorageConfig = StorageConfig()
    feeds: FeedsConfig = FeedsConfig()
    categories: list[CategoryConfig] = []
    sources: list[SourceConfig] = []
    smtp: SmtpConfig | None = None
    delivery: DeliveryConfig = DeliveryConfig()
    web: WebConfig = WebConfig()
    items: ItemsConfig = ItemsConfig()
    outbox: OutboxConfig = OutboxConfig()
    dkim: DkimConfig | None = None
    templates: TemplatesConfig = TemplatesConfig()
    lists: list[ListConfig] = []
    schedules: dict[str, ScheduleConfig] = {}
    scheduler: SchedulerConfig = SchedulerConfig()
    subscriptions: SubscriptionsConfig = SubscriptionsConfig()
    bounces: BouncesConfig | None = None
    admin: AdminConfig = AdminConfig()

    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems = _cross_reference_problems(_References.of(self))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # -- derived values ---------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def source_names(self) -> tuple[str, ...]:
        """The configured sources' names in config order: whose items readers see, and
        which copy of a story read from several sources wins (the first)."""
        return tuple(src.name for src in self.sources)

    def category_for_label(self, label: str | None) -> str | None:
        """The slug of the category whose labels contain ``label`` (case-insensitive)."""
        if not label:
            return None
        key = " ".join(label.split()).casefold()
        for cat in self.categories:
            if any(" ".join(lbl.split()).casefold() == key for lbl in cat.labels):
                return cat.slug
        return None

    def list_config(self, slug: str) -> ListConfig:
        for lst in self.lists:
            if lst.slug == slug:
                return lst
        raise ConfigError(f"unknown list {slug!r}; configured lists: {[lst.slug for lst in self.lists]}")

    def schedule_timezone(self, name: str) -> ZoneInfo:
        return ZoneInfo(self.schedules[name].timezone or self.site.timezone)

    def _resolve_paths(self) -> None:
        base = self.base_dir

        def r(p: Path) -> Path:
            p = p.expanduser()
            return p if p.is_absolute() else (base / p).resolve()

        self.feeds.output_dir = r(self.feeds.output_dir)
        self.outbox.path = r(self.outbox.path)
        self.delivery.journal_dir = r(self.delivery.journal_dir)
        if self.templates.path is not None:
            self.templates.path = r(self.templates.path)
        if self.dkim is not None:
            self.dkim.key_path = r(self.dkim.key_path)
        if self.bounces is not None and self.bounces.maildir is not None:
            self.bounces.maildir = r(self.bounces.maildir)
        for src in self.sources:
            if isinstance(src, DirectorySourceConfig):
                src.path = r(src.path)
            elif not _is_url(src.url):
                src.url = str(r(Path(src.url.removeprefix("file://"))))
        for lst in self.lists:
            if lst.subscribers is not None:
                lst.subscribers = r(lst.subscribers)
        url = self.storage.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            self.storage.url = "sqlite:///" + str(r(Path(url.removeprefix("sqlite:///"))))


@dataclass
class _References:
    """What the cross-reference checks read: the tables that validated, and the names written.

    Built from the settings when every key is valid, or from the raw file when some are
    not (:meth:`of_data`), so the checks that do not depend on a broken key still run
    and one run of ``check`` reports every problem. A list or category that failed its
    own validation is left out of the checks that read its values (its own errors are
    reported); the names the admin wrote still count as defined, so a list naming a
    schedule whose cron is broken is not also told that the schedule does not exist.
    ``None`` means the table itself is unreadable: the checks that need it are skipped.
    """

    categories: list[CategoryConfig] = field(default_factory=list)  # the valid ones
    category_slugs: list[str] | None = field(default_factory=list)  # every slug written
    source_names: list[str] = field(default_factory=list)
    lists: list[tuple[int, ListConfig]] = field(default_factory=list)  # position from 1, valid ones
    list_slugs: list[str] = field(default_factory=list)
    public_lists: list[str] = field(default_factory=list)  # slugs of the lists that are public
    postal_address: str | None = ""
    schedules: dict[str, ScheduleConfig] = field(default_factory=dict)  # the valid ones
    schedule_names: list[str] | None = field(default_factory=list)  # every name written
    reads_reports: bool | None = False  # [bounces] names a mailbox

    @classmethod
    def of(cls, settings: Settings) -> _References:
        return cls(
            categories=list(settings.categories),
            category_slugs=[c.slug for c in settings.categories],
            source_names=[s.name for s in settings.sources],
            lists=list(enumerate(settings.lists, 1)),
            list_slugs=[lst.slug for lst in settings.lists],
            public_lists=[lst.slug for lst in settings.lists if lst.public],
            postal_address=settings.site.postal_address,
            schedules=dict(settings.schedules),
            schedule_names=list(settings.schedules),
            reads_reports=settings.bounces is not None and settings.bounces.reads_reports,
        )

    @classmethod
    def of_data(cls, data: dict[str, Any]) -> _References:
        """From a file that failed validation: each table entry validated on its own."""
        refs = cls()
        categories = data.get("categories", [])
        entries = categories if isinstance(categories, list) else []
        refs.categories = [c for c in (_valid(CategoryConfig, e) for e in entries) if c is not None]
        slugs = [e.get("slug") if isinstance(e, dict) else None for e in entries]
        refs.category_slugs = (
            [s for s in slugs if isinstance(s, str)]
            if isinstance(categories, list) and all(isinstance(s, str) for s in slugs)
            else None  # an entry without a readable slug may be the one a list names
        )
        sources = data.get("sources", [])
        refs.source_names = _written(sources, "name")
        lists = data.get("lists", [])
        for position, entry in enumerate(lists if isinstance(lists, list) else [], 1):
            valid = _valid(ListConfig, entry)
            if valid is not None:
                refs.lists.append((position, valid))
            # A list's own mistakes (a bad sender) do not make it private.
            if (
                isinstance(entry, dict)
                and entry.get("public", True) is True
                and isinstance(entry.get("slug"), str)
            ):
                refs.public_lists.append(entry["slug"])
        refs.list_slugs = _written(lists, "slug")
        site = data.get("site", {})
        address = site.get("postal_address", "") if isinstance(site, dict) else None
        refs.postal_address = address if isinstance(address, str) else None
        schedules = data.get("schedules", {})
        if isinstance(schedules, dict):
            refs.schedule_names = [str(name) for name in schedules]
            for name, entry in schedules.items():
                schedule = _valid(ScheduleConfig, entry)
                if schedule is not None:
                    refs.schedules[str(name)] = schedule
        else:
            refs.schedule_names = None
        bounces = data.get("bounces")
        if bounces is None:
            refs.reads_reports = False
        else:
            valid_bounces = _valid(BouncesConfig, bounces)
            refs.reads_reports = None if valid_bounces is None else valid_bounces.reads_reports
        return refs


_Model = typing.TypeVar("_Model", bound=BaseModel)


def _valid(model: type[_Model], entry: object) -> _Model | None:
    """``entry`` validated as ``model``, or None when it is not valid (its errors are reported)."""
    try:
        return model.model_validate(entry)
    except ValidationError:
        return None


def _written(table: object, key: str) -> list[str]:
    """The ``key`` values written in an array of tables, valid or not."""
    entries = table if isinstance(table, list) else []
    return [e[key] for e in entries if isinstance(e, dict) and isinstance(e.get(key), str)]


def _cross_reference_problems(refs: _References) -> list[str]:
    """What no single key shows: names used twice, and names that point at nothing."""
    problems: list[str] = []
    _unique(problems, "categories", refs.category_slugs or [], "slug")
    _unique(problems, "sources", refs.source_names, "name")
    _unique(problems, "lists", refs.list_slugs, "slug")
    seen_labels: dict[str, str] = {}
    for cat in refs.categories:
        for label in cat.labels:
            key = label.strip().casefold()
            if key in seen_labels and seen_labels[key] != cat.slug:
                problems.append(
                    f"categories: label {label!r} is in both {seen_labels[key]!r} and {cat.slug!r}; "
                    "a label may map to one category only"
                )
            seen_labels[key] = cat.slug
    for i, lst in refs.lists:
        if refs.category_slugs is not None:
            slugs = set(refs.category_slugs)
            for wanted in lst.categories:
                if wanted != "*" and wanted not in slugs:
                    problems.append(
                        f"lists[{i}] {lst.slug!r}.categories: unknown category {wanted!r}; "
                        f"use '*' or one of {sorted(slugs)}"
                    )
        if lst.schedule is None or refs.schedule_names is None:
            continue
        if lst.schedule not in refs.schedule_names:
            problems.append(
                f"lists[{i}] {lst.slug!r}.schedule: no [schedules.{lst.schedule}] table; "
                f"define it or use one of {sorted(refs.schedule_names)}"
            )
        elif lst.schedule in refs.schedules and refs.schedules[lst.schedule].job not in SENDING_JOBS:
            sending = sorted(n for n, s in refs.schedules.items() if s.job in SENDING_JOBS)
            job = refs.schedules[lst.schedule].job.value
            problems.append(
                f"lists[{i}] {lst.slug!r}.schedule: [schedules.{lst.schedule}] runs job "
                f"{job!r}, which never sends the list; name a schedule "
                f'with job = "digest" or "publish"' + (f" (e.g. one of {sending})" if sending else "")
            )
    public = refs.public_lists
    if public and refs.postal_address is not None and not refs.postal_address.strip():
        which = f"list {public[0]!r} is" if len(public) == 1 else f"lists {', '.join(map(repr, public))} are"
        problems.append(
            f"site.postal_address: required because {which} public: bulk-mail law in many "
            "countries asks every digest to carry the sender's postal address (it goes in the "
            "footer); set it, e.g. "
            'postal_address = "Route des Morillons 4, 1211 Geneva 22, Switzerland", '
            "or mark the lists public = false"
        )
    for name, sched in refs.schedules.items():
        if sched.job is JobKind.BOUNCES and refs.reads_reports is False:
            problems.append(
                f"schedules.{name}: job 'bounces' reads reports, but [bounces] names no mailbox; "
                'set [bounces] maildir = "var/bounces" (or imap = { ... })'
            )
    for name in refs.schedule_names or []:
        if not re.match(r"^[A-Za-z0-9_-]+$", name):
            problems.append(f"schedules.{name}: names may use letters, digits, '-' and '_' only")
    return problems


def _unique(problems: list[str], table: str, values: list[str], key: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            problems.append(f"{table}: {key} {v!r} appears twice; each {key} must be unique")
        seen.add(v)


def _format_loc(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """Turn pydantic's location into the key path an admin sees in config.toml.

    Array tables are counted from 1 and named when they have a name or slug, e.g.
    ``sources[2] "department-page".url``; discriminator tags (``html``) are dropped.
    """
    parts: list[str] = []
    node: Any = data
    for piece in loc:
        if isinstance(piece, int):
            label = ""
            if isinstance(node, list) and 0 <= piece < len(node) and isinstance(node[piece], dict):
                ident = node[piece].get("slug") or node[piece].get("name")
                label = f" {ident!r}" if ident else ""
                node = node[piece]
            else:
                node = None
            parts[-1] = f"{parts[-1]}[{piece + 1}]{label}" if parts else f"[{piece + 1}]"
            continue
        if isinstance(node, dict) and piece in node:
            node = node[piece]
            parts.append(str(piece))
        elif piece in ("directory", "feed", "html"):
            continue  # pydantic's discriminator tag, not a key the admin wrote
        else:
            node = None
            parts.append(str(piece))
    return ".".join(parts) or "(top level)"


_SOURCE_TYPES = '"directory", "feed" (RSS, Atom or JSON Feed) or "html"'


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model whose keys live at ``loc`` (for "did you mean"), or None."""
    sources: dict[str, type[BaseModel]] = {
        "directory": DirectorySourceConfig,
        "feed": FeedSourceConfig,
        "html": HtmlSourceConfig,
    }
    model: type[BaseModel] | None = Settings
    keyed = False  # the previous key was a table of named tables ([schedules.NAME])
    for piece in loc:
        if model is None:
            return None
        if isinstance(piece, int) or keyed:
            keyed = False
            continue
        if piece in sources:  # pydantic's discriminator tag
            model = sources[piece]
            continue
        field = model.model_fields.get(str(piece))
        if field is None:
            return None
        keyed = typing.get_origin(field.annotation) is dict
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``list[X]``, ``dict[str, X]``, ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(typing.get_args(annotation)):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    known = [name for name in model.model_fields if name != "path" or model is not Settings]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _format_error(err: Any, data: dict[str, Any]) -> str:
    where = _format_loc(tuple(err["loc"]), data)
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        last = str(err["loc"][-1])
        hint = _did_you_mean(tuple(err["loc"]))
        if last == "password":
            hint = "; secrets are read from the environment: set password_env to the variable's name"
        return f"{where}: unknown key{hint} (remove it or check its spelling against the README)"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "union_tag_not_found":
        return f"{where}.type: required key is missing; write type = {_SOURCE_TYPES}"
    if kind == "union_tag_invalid":
        return f"{where}.type: {err['ctx']['tag']!r} is not a source type; use {_SOURCE_TYPES}"
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == SLUG:
        return (
            f"{where}: {err.get('input')!r} is not a slug: use lower-case letters, digits and '-', "
            "starting with a letter or digit (e.g. 'press-releases')"
        )
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == ADMIN_USER:
        return (
            f"{where}: {err.get('input')!r} is not a user name: use up to 32 lower-case letters, "
            "digits, '-' and '_', starting with a letter or digit (e.g. 'alice')"
        )
    if kind == ENV_NAME_ERROR:
        return f"{where}: {msg}"  # never the value: it may be a secret pasted in by mistake
    shown = err.get("input")
    if kind in ("model_type", "dict_type", "list_type") or isinstance(shown, dict | list):
        return f"{where}: {msg}"
    return f"{where}: {msg} (got {shown!r}){_type_hint(kind, shown, str(err['loc'][-1]))}"


def _type_hint(kind: str, value: object, key: str) -> str:
    """How to write a number or a boolean that was written as something else (TOML types)."""
    if kind in ("int_type", "float_type"):
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
            return f"; write the number without quotes: {key} = {value.strip()}"
        if isinstance(value, bool):
            return "; write a number, not true or false"
        if kind == "int_type" and isinstance(value, float):
            return (
                f"; write a whole number, e.g. {key} = {int(value)}"
                if value.is_integer()
                else "; write a whole number"
            )
        return "; write a number"
    if kind == "bool_type":
        return f"; write true or false without quotes, e.g. {key} = true"
    return ""


def load_config(path: str | os.PathLike[str]) -> Settings:
    """Read and validate ``config.toml``; raise :class:`ConfigError` listing every problem."""
    cfg_path = Path(path)
    try:
        raw = cfg_path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{cfg_path}: no such file; pass --config PATH or create config.toml") from e
    except OSError as e:
        raise ConfigError(f"{cfg_path}: cannot read: {e.strerror}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{cfg_path}: not UTF-8 text (byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        # tomllib's message ends with "(at line L, column C)": keep it, name the file.
        raise ConfigError(f"{cfg_path}: TOML syntax error: {e}") from e
    except RecursionError as e:  # tomllib recurses once per nesting level
        raise ConfigError(f"{cfg_path}: arrays or tables nested too deeply to be a configuration") from e
    return settings_from_dict(data, cfg_path)


def settings_from_dict(data: dict[str, Any], path: Path | None = None) -> Settings:
    """Validate an already-parsed config mapping (used by tests and by load_config)."""
    try:
        settings = Settings.model_validate(data)
    except RecursionError as e:
        raise ConfigError(f"{path or 'config'}: values nested too deeply to be a configuration") from e
    except ValidationError as e:
        problems = []
        cross_checked = False  # the cross-reference checks ran (every key was valid)
        for err in e.errors():
            if err["type"] == "value_error" and not err["loc"]:
                problems.extend(str(err["msg"]).removeprefix("Value error, ").split("\n"))
                cross_checked = True
            else:
                problems.append(_format_error(err, data))
        if not cross_checked:
            # pydantic skips Settings' own checks once a key fails; run those that do not
            # depend on the broken keys, so one run reports every problem.
            # (Nested too deeply to be a config: the errors above say so.)
            with contextlib.suppress(RecursionError):
                problems.extend(_cross_reference_problems(_References.of_data(data)))
        where = str(path) if path else "config"
        raise ConfigError(f"{where}: {len(problems)} problem(s)", problems) from e
    settings.path = path.resolve() if path else None
    settings._resolve_paths()
    return settings
