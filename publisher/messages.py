"""Digest emails built once per issue and personalised per recipient by byte substitution.

Why (docs/architecture.md, "Why render once"): building an ``EmailMessage`` and
rendering Jinja2 per recipient costs about a millisecond each and caps sending at a
sixteenth of what the SMTP pool can push. So :func:`render_issue` renders the subject,
HTML and text of one issue in one language once, inlines the CSS once, and encodes the
whole MIME message once, leaving opaque placeholders where the recipient's name,
address and signed links go. :meth:`RenderedIssue.personalise` then only joins pre-encoded byte
pieces with the few per-recipient values (a few microseconds).

Why the placeholders survive: they are made of ASCII letters and digits only, so
Jinja2's escaping, css-inline's serialiser and quoted-printable encoding leave them
alone; each carries a random per-issue nonce, so item content cannot contain one.
The bodies are quoted-printable; every placeholder sits on a line of its own between
soft line breaks (``=`` CRLF), so the value put there, itself quoted-printable
encoded, keeps every line within RFC 2045's 76 characters and decodes to exactly the
value. Values are HTML-escaped for the HTML part and left raw for the text part.

Header injection is impossible by construction: every header value that comes from
data (names, subject, list name) has its control characters replaced by spaces and
its bidi controls removed before it is encoded, and addresses with control
characters, spaces or angle brackets are refused. Subjects and display names are cut
at a word to 200 characters (:func:`publisher.text.cut_at_word`), so item titles
in a subject template cannot grow a header without bound.

An issue shows at most its list's ``max_items`` items; ``more_items`` counts the rest,
which the templates mention ("and 20 more on the website") with a link to the site.
"""

from __future__ import annotations

import base64
import email.policy
import email.quoprimime
import functools
import html
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, parseaddr
from typing import Any

import css_inline
import jinja2

from publisher.config import ListConfig, Settings
from publisher.errors import IssueError, SubscriberError, TemplateError
from publisher.i18n import normalise_language, plural, translate
from publisher.models import Item, Subscriber
from publisher.personal import personal_logic
from publisher.signing import HEAD_END, DkimSigner, canonical_body, crlf_only, relaxed_spaces
from publisher.templating import make_environment, render_string, render_template, translator
from publisher.text import CONTROL, NAME_MAX_LENGTH, cut_at_word, strip_bidi
from publisher.tokens import make_token

log = logging.getLogger(__name__)

GMAIL_CLIP_BYTES = 102 * 1024
# The largest message an issue may make. Relays refuse bigger ones for good (Postfix's
# message_size_limit defaults to 10,240,000 bytes; the answer is 552), so a template that
# grows a message past this is refused before the issue exists (README, "Security notes").
MAX_MESSAGE_BYTES = 10_000_000
CRLF = b"\r\n"
_QP_LINE = 75  # leaves room for the "=" of the soft break that follows each piece
SUBJECT_MAX_LENGTH = 200  # characters of a Subject; longer ones are cut at a word
_PERSONAL = ("NAME", "EMAIL", "GREETING", "UNSUB", "PREFS")
_BAD_ADDRESS = re.compile(r"[\x00-\x20\x7f<>()\[\]\\,;:\"]")
_QP_SAFE = re.compile(r"[\x20-\x3c\x3e-\x7e]*")  # printable ASCII but "=": literal in QP
_FEEDBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # ":" separates Feedback-ID's fields
FEEDBACK_PRODUCT = "publisher"  # the third field of Feedback-ID: the kind of mail stream


@dataclass(frozen=True, slots=True)
class SiteView:
    """What templates see of the site."""

    title: str
    base_url: str
    language: str


@dataclass(frozen=True, slots=True)
class ListView:
    """What templates see of a mailing list."""

    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class CategoryGroup:
    """One category heading of a digest with its items, newest first."""

    slug: str
    title: str
    items: list[Item]


@dataclass(frozen=True, slots=True)
class LanguageLink:
    """One language of a web page, for its switcher and ``<link rel="alternate" hreflang>``."""

    code: str  # the catalogue language, e.g. "fr"
    name: str  # the language named in itself, e.g. "Français"
    url: str  # the page in that language (an explicit file, so the choice sticks)
    current: bool  # the page being rendered is in this language


@dataclass(frozen=True, slots=True)
class PersonView:
    """The recipient as templates see it: placeholders until personalised."""

    name: str
    email: str


@dataclass(slots=True)
class RenderedIssue:
    """One issue in one language, encoded once; :meth:`personalise` makes each message.

    ``html`` and ``text`` hold the rendered parts with placeholders (for inspection
    and previews); ``warnings`` lists what an admin should know (size, missing link).
    """

    issue_id: int
    list_slug: str
    language: str
    subject: str
    html: str
    text: str
    base_url: str
    sender_domain: str
    unsubscribe_mailto: str | None
    pieces: list[bytes | str]
    warnings: list[str] = field(default_factory=list)
    signer: DkimSigner | None = None
    # Set when a template uses a personal value in logic (publisher.personal): the
    # message's pieces for one recipient's values, rendered anew for each (``pieces``
    # then holds none, and the signer canonicalises each whole body).
    render_personal: Callable[[Mapping[str, str]], list[bytes | str]] | None = None
    body_slots: tuple[str, ...] = field(init=False)
    # The body's pieces with the white-space rules of DKIM's body canonicalisation
    # applied once (:func:`publisher.signing.relaxed_spaces`), None when unsigned; how
    # many of ``pieces`` come before the one holding the blank line, and where it is in it.
    canonical_body_pieces: list[bytes | str] | None = field(init=False, default=None)
    head_pieces: int = field(init=False, default=0)
    head_end: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        """Note which personal values the templates use, to compute only those per message.

        With a signer, also canonicalise what every recipient shares once: a signed
        message then costs one pass over its few personal values instead of a body's.
        """
        self.body_slots = tuple(dict.fromkeys(p for p in self.pieces if isinstance(p, str) and p.isupper()))
        if self.signer is not None:
            self._prepare_signing()

    def _prepare_signing(self) -> None:
        """Split the pieces at the blank line after the head; canonicalise the body's."""
        for index, piece in enumerate(self.pieces):
            at = piece.find(HEAD_END) if isinstance(piece, bytes) else -1
            if at == -1:
                continue
            body = [piece[at + len(HEAD_END) :], *self.pieces[index + 1 :]]
            if all(crlf_only(p) for p in body if isinstance(p, bytes)):
                self.canonical_body_pieces = [relaxed_spaces(p) if isinstance(p, bytes) else p for p in body]
                self.head_pieces, self.head_end = index, at
            return

    def personalise(self, subscriber: Subscriber, *, delivery_id: int) -> tuple[str, bytes]:
        """The Message-ID and the finished (signed, when configured) message for one recipient."""
        if subscriber.list_slug != self.list_slug:
            raise IssueError(
                f"subscriber {subscriber.id} is on list {subscriber.list_slug!r}, not {self.list_slug!r}"
            )
        message_id = f"<issue-{self.issue_id}.{delivery_id}.{secrets.token_hex(6)}@{self.sender_domain}>"
        values = self._values(subscriber, message_id)
        if self.render_personal is not None:
            pieces = self.render_personal(self._personal_values(subscriber))
            data = b"".join([values[p] if isinstance(p, str) else p for p in pieces])
            if self.signer is not None:
                data = self.signer.sign(data)
            return message_id, data
        data = b"".join([values[p] if isinstance(p, str) else p for p in self.pieces])
        if self.signer is not None:
            data = self.signer.sign(data, canonical=self._canonical_body(values, data))
        return message_id, data

    @property
    def per_recipient(self) -> bool:
        """Each message is rendered on its own (a template reasons about personal values)."""
        return self.render_personal is not None

    def _personal_values(self, subscriber: Subscriber) -> dict[str, str]:
        """The recipient's values as templates see them, for a render of their own."""
        name = display_name(subscriber.name)
        unsub_token = make_token(subscriber.id, self.list_slug, "unsubscribe", subscriber.secret)
        return {
            "NAME": name,
            "EMAIL": check_address(subscriber.email),
            "GREETING": _greeting(name, self.language),
            "UNSUB": f"{self.base_url}/unsubscribe/{unsub_token}",
            "PREFS": self._derived("PREFS", subscriber, name),
        }

    def _canonical_body(self, values: dict[str, bytes], data: bytes) -> bytes | None:
        """The signed body's canonical form from the pieces canonicalised once, or None.

        None (the signer then canonicalises the whole body) when the issue's pieces did
        not allow it, when a personal value in the head moved the blank line that ends
        it, or when a personal value has a bare line feed; none of these happens with
        the values built here, but the signature must cover the bytes that are sent.
        """
        body = self.canonical_body_pieces
        if body is None:
            return None
        head = self.pieces[: self.head_pieces]
        if data.find(HEAD_END) != self.head_end + sum(
            len(values[p] if isinstance(p, str) else p) for p in head
        ):
            return None
        parts: list[bytes] = []
        for piece in body:
            if isinstance(piece, bytes):
                parts.append(piece)
                continue
            value = values[piece]
            if not crlf_only(value):
                return None
            parts.append(relaxed_spaces(value))
        return canonical_body(b"".join(parts))

    def _values(self, subscriber: Subscriber, message_id: str) -> dict[str, bytes]:
        name = display_name(subscriber.name)
        address = check_address(subscriber.email)
        unsub_token = make_token(subscriber.id, self.list_slug, "unsubscribe", subscriber.secret)
        unsub_url = f"{self.base_url}/unsubscribe/{unsub_token}"
        values = {
            "to": (f"{encode_phrase(name)} <{address}>" if name else address).encode("utf-8"),
            "msgid": message_id.encode("ascii"),
            "listunsub": self._list_unsubscribe(unsub_url, unsub_token),
        }
        raw: dict[str, str] = {"NAME": name, "EMAIL": address, "UNSUB": unsub_url}
        for key in self.body_slots:
            field_name = key[1:]
            if field_name not in raw:
                raw[field_name] = self._derived(field_name, subscriber, name)
            value = raw[field_name]
            values[key] = _qp(html.escape(value) if key[0] == "H" else value)
        return values

    def _derived(self, field_name: str, subscriber: Subscriber, name: str) -> str:
        if field_name == "GREETING":
            return _greeting(name, self.language)
        token = make_token(subscriber.id, self.list_slug, "preferences", subscriber.secret)
        return f"{self.base_url}/preferences/{token}"

    def _list_unsubscribe(self, url: str, token: str) -> bytes:
        value = f"<{url}>"
        if self.unsubscribe_mailto:
            value += f",\r\n <mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20{token}>"
        return value.encode("ascii")


def render_issue(
    settings: Settings,
    list_cfg: ListConfig,
    items: list[Item],
    *,
    issue_id: int,
    period_label: str,
    language: str,
    now: datetime,
    signer: DkimSigner | None = None,
    more_items: int = 0,
    subject_prefix: str = "",
    archive_url: str = "",
) -> RenderedIssue:
    """Render, inline and encode one issue for the readers of one language.

    ``now`` is the issue's send time (the ``Date`` header) and must be timezone-aware.
    ``signer`` defaults to one built from ``settings.dkim`` when that is set; pass one
    in to load the key once for many issues. ``more_items`` counts the issue's items
    left out by the list's ``max_items`` (the mail says how many and links the site).
    ``archive_url`` is the issue's page in the web archive (the "view in browser"
    link); empty for a private list, which has no archive.
    """
    if now.tzinfo is None:
        raise IssueError("the send time of an issue must be timezone-aware")
    language = normalise_language(language, settings.site.language)
    nonce = secrets.token_hex(8)
    groups = group_items(settings, items, language)
    context = _base_context(settings, list_cfg, groups, period_label, language, now, more_items)
    context["archive_url"] = archive_url
    env = make_environment(settings)
    subject = subject_prefix + _subject(env, list_cfg, context)
    context["subject"] = subject
    text = render_template(env, list_cfg.text_template, {**context, **_personal_context(nonce, "T")})
    raw_html = render_template(env, list_cfg.html_template, {**context, **_personal_context(nonce, "H")})
    inlined = _inline_css(raw_html, list_cfg.html_template)
    warnings = _check_html(inlined, nonce, list_cfg)
    if signer is None and settings.dkim is not None:
        signer = DkimSigner(settings.dkim)
    feedback = feedback_id(settings, list_cfg, issue_id)
    logic = personal_logic(env, [list_cfg.text_template, list_cfg.html_template])
    render_personal = None
    if logic is None:
        pieces = _message_pieces(list_cfg, subject, now, text, inlined, nonce, feedback)
        _check_message_size(pieces, list_cfg)
    else:
        log.info("%s: each message of list %r is rendered on its own (slower)", logic, list_cfg.slug)

        def render_personal(person: Mapping[str, str]) -> list[bytes | str]:
            values = {
                "subscriber": PersonView(name=person["NAME"], email=person["EMAIL"]),
                "greeting": person["GREETING"],
                "unsubscribe_url": person["UNSUB"],
                "preferences_url": person["PREFS"],
            }
            own_text = render_template(env, list_cfg.text_template, {**context, **values})
            own_html = _inline_css(
                render_template(env, list_cfg.html_template, {**context, **values}), list_cfg.html_template
            )
            own = _message_pieces(list_cfg, subject, now, own_text, own_html, nonce, feedback)
            _check_message_size(own, list_cfg)
            return own

        # The placeholders took the branches of a named reader: try a nameless one too,
        # so a template failing there fails now, before any issue exists.
        render_personal(_sample_person(settings.site.base_url, language))
        pieces = []
    return RenderedIssue(
        issue_id=issue_id,
        list_slug=list_cfg.slug,
        language=language,
        subject=subject,
        html=inlined,
        text=text,
        base_url=settings.site.base_url,
        sender_domain=list_cfg.sender_domain,
        unsubscribe_mailto=_mailto(list_cfg.unsubscribe_mailto),
        pieces=pieces,
        warnings=warnings,
        signer=signer,
        render_personal=render_personal,
    )


def _sample_person(base_url: str, language: str) -> dict[str, str]:
    """Made-up personal values of a reader without a name, for a trial render."""
    return {
        "NAME": "",
        "EMAIL": "subscriber@example.org",
        "GREETING": _greeting("", language),
        "UNSUB": f"{base_url}/unsubscribe/sample",
        "PREFS": f"{base_url}/preferences/sample",
    }


def _check_message_size(pieces: list[bytes | str], list_cfg: ListConfig) -> None:
    """Refuse a message over :data:`MAX_MESSAGE_BYTES`: no relay would take it."""
    size = sum(len(p) for p in pieces if isinstance(p, bytes))
    if size > MAX_MESSAGE_BYTES:
        raise TemplateError(
            f"{list_cfg.text_template}, {list_cfg.html_template}: a message of list {list_cfg.slug!r} would "
            f"be {size / 1_000_000:.1f} MB; at most {MAX_MESSAGE_BYTES / 1_000_000:g} MB is sent, as mail "
            "relays refuse bigger messages (make the templates print less)"
        )


def render_web_copy(
    settings: Settings,
    list_cfg: ListConfig,
    items: list[Item],
    *,
    subject: str,
    period_label: str,
    now: datetime,
    more_items: int = 0,
    language: str | None = None,
    page_languages: Sequence[LanguageLink] = (),
    page_default_url: str = "",
) -> str:
    """The HTML part of a sent issue as the archive shows it: nobody's copy.

    The same template as the mail, in ``language`` (default the site's), with
    ``in_archive`` true and no personal value at all: the anonymous greeting, an empty
    name and address, and no unsubscribe or preferences link (they would carry a
    subscriber's token). The built-in templates leave those links and the "view in
    browser" link out there, and show ``page_languages`` as a language switcher and
    ``<link rel="alternate" hreflang>`` (``page_default_url``: the negotiated folder URL,
    ``x-default``). ``subject`` is the one for this language (the archive renders it
    with :func:`render_subject` for a language other than the stored one's).
    """
    language = normalise_language(language or settings.site.language, settings.site.language)
    groups = group_items(settings, items, language)
    context = _base_context(settings, list_cfg, groups, period_label, language, now, more_items)
    context |= {
        "subject": subject,
        "in_archive": True,
        "subscriber": PersonView(name="", email=""),
        "greeting": _greeting("", language),
        "unsubscribe_url": "",
        "preferences_url": "",
        "page_languages": list(page_languages),
        "page_default_url": page_default_url,
    }
    env = make_environment(settings)
    return _inline_css(render_template(env, list_cfg.html_template, context), list_cfg.html_template)


def render_subject(
    settings: Settings,
    list_cfg: ListConfig,
    items: list[Item],
    *,
    language: str,
    now: datetime,
    period_label: str = "",
    more_items: int = 0,
) -> str:
    """The list's subject template rendered for these items (e.g. to store with the issue,
    or for an archive page in another language than the stored subject's)."""
    language = normalise_language(language, settings.site.language)
    groups = group_items(settings, items, language)
    context = _base_context(settings, list_cfg, groups, period_label, language, now, more_items)
    return _subject(make_environment(settings), list_cfg, context)


def _subject(env: jinja2.Environment, list_cfg: ListConfig, context: dict[str, Any]) -> str:
    label = f"lists {list_cfg.slug!r}.subject"
    subject = cut_at_word(
        clean_header_text(render_string(env, list_cfg.subject, context, label=label)), SUBJECT_MAX_LENGTH
    )
    if not subject:
        raise TemplateError(f"{label} renders to an empty subject")
    return subject


def group_items(settings: Settings, items: list[Item], language: str) -> list[CategoryGroup]:
    """Items under their category headings in config order, newest first; unknown ones last."""
    order = {c.slug: c for c in settings.categories}
    buckets: dict[str | None, list[Item]] = {}
    for item in items:
        key = item.category if item.category in order else None
        buckets.setdefault(key, []).append(item)
    groups = [
        CategoryGroup(slug, cat.titles.get(language, cat.title), _newest_first(buckets[slug]))
        for slug, cat in order.items()
        if slug in buckets
    ]
    if None in buckets:
        groups.append(CategoryGroup("", translate("other_items", language), _newest_first(buckets[None])))
    return groups


def clean_header_text(value: str) -> str:
    """One line of text fit for a header: control characters become spaces, runs collapse.

    Bidi controls are removed: in a Subject or a display name they would let a sender
    reorder what the reader sees.
    """
    return " ".join(CONTROL.sub(" ", strip_bidi(unicodedata.normalize("NFC", value))).split())


def display_name(name: str) -> str:
    """A recipient's or sender's name as put in a header: clean, at most 200 characters."""
    return cut_at_word(clean_header_text(name), NAME_MAX_LENGTH)


def check_address(address: str) -> str:
    """Refuse an address that could break out of its header (CR, LF, spaces, brackets)."""
    if address.count("@") != 1 or _BAD_ADDRESS.search(address) or len(address) > 254:
        raise SubscriberError("", f"{address!r} is not a usable email address")
    return address


def format_address(name: str, address: str) -> str:
    """``"Name" <addr>``, with the name as RFC 2047 encoded words when it is not ASCII."""
    name = display_name(name)
    if not name:
        return address
    return f"{encode_phrase(name)} <{address}>"


def encode_phrase(text: str) -> str:
    """A display name as a quoted string, or as folded base64 encoded words when not ASCII.

    Done by hand rather than with ``email.header.Header`` because it runs once per
    recipient (5x faster) and must keep each encoded word within 75 characters.
    """
    if text.isascii():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    words, chunk = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:  # 45 bytes -> 60 base64 characters per word
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def _newest_first(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: i.published, reverse=True)


def _greeting(name: str, language: str) -> str:
    return translate("greeting", language, name=name) if name else translate("greeting_anonymous", language)


def _base_context(
    settings: Settings,
    list_cfg: ListConfig,
    groups: list[CategoryGroup],
    period_label: str,
    language: str,
    now: datetime,
    more_items: int = 0,
) -> dict[str, Any]:
    sender_name, sender_address = parseaddr(list_cfg.sender)
    return {
        "site": SiteView(settings.site.title, settings.site.base_url, settings.site.language),
        "list": ListView(list_cfg.slug, list_cfg.name),
        "categories": groups,
        "items": [item for group in groups for item in group.items],
        "period_label": period_label,
        "language": language,
        "now": now,
        "sender": sender_name or settings.site.title,
        "sender_address": sender_address,
        "t": translator(language),  # t("new_items", count=n): the reader's words, by their plural rules
        "plural": functools.partial(plural, language=settings.site.language),  # the admin's words
        "more_items": more_items,  # items of the issue beyond the list's max_items, not shown
        "more_url": f"{settings.site.base_url}/",  # where they are: the site's feeds index
        "postal_address": settings.site.postal_address,  # the footer's; bulk-mail law asks for it
        "archive_url": "",  # the issue's archive page ("view in browser"); empty: none
        "in_archive": False,  # True when rendered as the archive's web page, for nobody
        "page_languages": [],  # the archive page's languages (LanguageLink), for its switcher
        "page_default_url": "",  # the archive page's negotiated URL (hreflang x-default)
    }


def _marker(nonce: str, part: str, key: str) -> str:
    return f"PUBX{nonce}X{part}{key}X"


def _personal_context(nonce: str, part: str) -> dict[str, Any]:
    """Placeholders for one body part; ``part`` H or T chooses how values are escaped."""
    m = {key: _marker(nonce, part, key) for key in _PERSONAL}
    return {
        "subscriber": PersonView(name=m["NAME"], email=m["EMAIL"]),
        "greeting": m["GREETING"],
        "unsubscribe_url": m["UNSUB"],
        "preferences_url": m["PREFS"],
    }


def _inline_css(document: str, name: str) -> str:
    """Inline the CSS once per issue.

    A ``<style data-css-inline="keep">`` stays where it is: the layout keeps its @media
    rules (dark mode, phones) there, since inline styles cannot carry them.
    """
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False)
    try:
        return str(inliner.inline(document))
    except ValueError as e:  # css_inline raises InlineError, a ValueError
        raise TemplateError(f"{name}: CSS could not be inlined: {e}") from e


def _check_html(document: str, nonce: str, list_cfg: ListConfig) -> list[str]:
    warnings = []
    size = len(document.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        warnings.append(
            f"list {list_cfg.slug!r}: the HTML of this issue is {size // 1024} KB; Gmail clips messages "
            f"above {GMAIL_CLIP_BYTES // 1024} KB and hides the unsubscribe link (send fewer items)"
        )
    if _marker(nonce, "H", "UNSUB") not in document:
        warnings.append(
            f"{list_cfg.html_template}: the HTML has no unsubscribe link ({{{{ unsubscribe_url }}}})"
        )
    for warning in warnings:
        log.warning(warning)
    return warnings


def feedback_id(settings: Settings, list_cfg: ListConfig, issue_id: int) -> str:
    """The ``Feedback-ID`` of a digest: ``LIST:ISSUE:publisher:SENDERID``.

    Why: Gmail's feedback loop counts spam complaints per value of each field and shows
    the rates in Postmaster Tools, so an admin can tell which list (and which issue)
    draws complaints. The last field, the sender id, must stay the same across all mail
    of one sender: it is the DKIM domain (the one Gmail reports to), else the list's
    sender domain. ISSUE is the issue's number, ``preview`` for a preview or test copy
    (not an issue, so its complaints are kept apart). Gmail only trusts the header when
    DKIM covers it, so it is in :data:`DKIM_HEADERS`. Every field is reduced to
    letters, digits, ``.``, ``_`` and ``-``: a ``:`` would shift the fields, anything
    else has no place in a header. The header is the same for every recipient, so it is
    part of the bytes encoded once per issue.
    """
    sender = settings.dkim.domain if settings.dkim is not None else list_cfg.sender_domain
    fields = (list_cfg.slug, str(issue_id) if issue_id else "preview", FEEDBACK_PRODUCT, sender)
    return ":".join(_FEEDBACK_UNSAFE.sub("-", value).strip("-") or "-" for value in fields)


def _mailto(value: str | None) -> str | None:
    if not value:
        return None
    return check_address(value.strip().removeprefix("mailto:").split("?")[0])


def _message_pieces(
    list_cfg: ListConfig, subject: str, now: datetime, text: str, html_doc: str, nonce: str, feedback: str
) -> list[bytes | str]:
    """The whole message as literal byte runs and slot names, encoded once."""
    boundary = f"=_pub_{nonce}"  # "=_" never occurs in quoted-printable text
    headers: list[tuple[str, bytes | str]] = [
        ("From", _sender_header(list_cfg.sender).encode("ascii")),
        ("To", "to"),
        ("Subject", _encode_unstructured("Subject", subject)),
        ("Date", format_datetime(now).encode("ascii")),
        ("Message-ID", "msgid"),
    ]
    if list_cfg.reply_to:
        headers.append(("Reply-To", _sender_header(list_cfg.reply_to).encode("ascii")))
    list_id = f"{encode_phrase(clean_header_text(list_cfg.name))} <{list_cfg.slug}.{list_cfg.sender_domain}>"
    headers += [
        ("List-Id", list_id.encode("ascii")),
        ("List-Unsubscribe", "listunsub"),
        ("List-Unsubscribe-Post", b"List-Unsubscribe=One-Click"),
        ("Feedback-ID", feedback.encode("ascii")),
        ("Precedence", b"bulk"),
        ("Auto-Submitted", b"auto-generated"),
        ("MIME-Version", b"1.0"),
        ("Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"'.encode("ascii")),
    ]
    pieces: list[bytes | str] = []
    for name, value in headers:
        pieces += [name.encode("ascii") + b": ", value, CRLF]
    delimiter = f"--{boundary}".encode("ascii")
    pieces.append(CRLF + b"This is a multi-part message in MIME format." + CRLF + CRLF)
    for subtype, body in (("plain", text), ("html", html_doc)):
        pieces.append(
            delimiter
            + CRLF
            + f'Content-Type: text/{subtype}; charset="utf-8"'.encode("ascii")
            + CRLF
            + b"Content-Transfer-Encoding: quoted-printable"
            + CRLF
            + CRLF
        )
        pieces += _qp_body(body, nonce)
        pieces.append(CRLF)
    pieces.append(delimiter + b"--" + CRLF)
    return _merge_literals(pieces)


def _qp_body(body: str, nonce: str) -> list[bytes | str]:
    """Quoted-printable body with each placeholder alone on a line between soft breaks."""
    marker = re.compile(f"PUBX{nonce}X([HT][A-Z]+)X")
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    parts = marker.split(body)
    out: list[bytes | str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if nonce in part.lower():  # a marker mangled by |upper, |truncate ...
                raise TemplateError(
                    "a personal value (name, email, greeting, unsubscribe_url, preferences_url) was "
                    "changed by a filter in the template; print these values as they are"
                )
            out.append(_qp(part))
        elif part[1:] in _PERSONAL:
            out += [b"=\r\n", part, b"=\r\n"]
        else:
            raise TemplateError(f"unknown personal placeholder {part!r} in the template output")
    return out


def _qp(value: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends and lines short enough to take a soft break."""
    if _QP_SAFE.fullmatch(value):  # the common case (URLs, ASCII names): only cut the lines
        return "=\r\n".join([value[i : i + _QP_LINE] for i in range(0, len(value), _QP_LINE)]).encode("ascii")
    latin = value.encode("utf-8").decode("latin-1")
    return email.quoprimime.body_encode(latin, _QP_LINE, "\r\n").encode("latin-1")


def _merge_literals(pieces: list[bytes | str]) -> list[bytes | str]:
    merged: list[bytes | str] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        elif piece != b"":
            merged.append(piece)
    return merged


def _sender_header(value: str) -> str:
    name, address = parseaddr(value)
    return format_address(name, check_address(address))


def _encode_unstructured(name: str, value: str) -> bytes:
    """Fold a Subject; RFC 2047 encoded words only when it is not ASCII."""
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\r\n").encode("ascii")
