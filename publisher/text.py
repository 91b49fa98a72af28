"""Text rules every stage shares, defined once: unsafe characters, length cuts, language
tags, HTML as plain text.

Ingest strips what XML cannot carry before items are stored and hashed; feeds strip
the same from configuration text; messages and subscriptions refuse or neutralise
control characters in anything that becomes a header (injection). Bidi controls are
removed from titles, names and headers: an upstream or a subscriber must not be able
to reorder what a reader or an admin sees (U+202E turns "txt.exe" into "exe.txt").
Over-long text is cut at a word with an ellipsis, so a 200,000-character title
cannot become a 600 KB mail or a 250 KB header. Language tags are checked against
RFC 5646's well-formed syntax because they are written into feeds and pages verbatim.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from bs4 import BeautifulSoup

# XML 1.0 cannot carry C0 controls (but tab, LF, CR), surrogates or U+FFFE/U+FFFF;
# C1 controls and U+FFFD are legal but flagged by feed validators and never meant.
XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ufffe\uffff\ud800-\udfff]")

# Anything that can end or fold a header line, or hide in one.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# Bidi embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")

ELLIPSIS = "…"
NAME_MAX_LENGTH = 200  # characters of a subscriber's or sender's name

# RFC 5646 section 2.1, "well-formed" (ABNF turned into a regular expression;
# case-insensitive). Only the syntax is checked, not the IANA registry.
_LANGTAG = (
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})"  # language (+ extlang)
    r"(?:-[a-z]{4})?"  # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"  # variants
    r"(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*"  # extensions
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"  # private use
)
_GRANDFATHERED = (
    r"en-gb-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo|i-navajo|i-pwn|"
    r"i-tao|i-tay|i-tsu|sgn-be-fr|sgn-be-nl|sgn-ch-de|"
    r"art-lojban|cel-gaulish|no-bok|no-nyn|zh-guoyu|zh-hakka|zh-min|zh-min-nan|zh-xiang"
)
_LANGUAGE_TAG = re.compile(
    rf"(?:{_LANGTAG}|x(?:-[a-z0-9]{{1,8}})+|{_GRANDFATHERED})", re.IGNORECASE | re.ASCII
)


def xml_safe(text: str | None) -> str:
    """``text`` without the characters XML cannot carry or validators flag."""
    return XML_UNSAFE.sub("", text or "")


def storable(text: str) -> str:
    """``text`` with NUL and undecodable bytes shown as escapes (``\\x00``, ``\\xff``).

    Why: text from a peer (an SMTP reply) may hold NUL, or bytes that are not UTF-8,
    which aiosmtplib keeps as lone surrogates. PostgreSQL refuses NUL in text and no
    store takes lone surrogates, so one such reply could not be recorded at all.
    """
    if "\x00" not in text and (text.isascii() or not _SURROGATE.search(text)):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes the peer sent
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


_SURROGATE = re.compile("[\ud800-\udfff]")


def strip_bidi(text: str) -> str:
    """``text`` without bidi embedding, override and isolate characters."""
    return BIDI_CONTROL.sub("", text)


def cut_at_word(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else cut at a word and ended with "…".

    The result, ellipsis included, has at most ``limit`` characters. The cut falls on the
    last space before the limit unless that would drop more than half of what fits (one
    very long "word", such as a URL), in which case the word itself is cut.
    """
    if len(text) <= limit:
        return text
    room = max(limit - len(ELLIPSIS), 0)
    head = text[:room]
    if not text[room].isspace():
        word_start = head.rfind(" ")
        if word_start > room // 2:
            head = head[:word_start]
    return head.rstrip() + ELLIPSIS


# Characters that are not text to look at: controls (C0, C1, DEL; ESC starts a terminal
# escape sequence), format characters (bidi overrides, zero-width ones), lone surrogates,
# private use, unassigned, and the Unicode line and paragraph separators.
_NOT_VISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible_line(text: str, limit: int) -> str:
    """``text`` as one inert line of at most ``limit`` characters, for a terminal or a page.

    For text from a peer that may be hostile (an SMTP server's reply): line breaks and
    tabs become spaces, so a multi-line reply reads as one line; every other character
    that is not text to look at is shown as an escape (``\\x1b``, ``\\u202e``), so an ANSI
    sequence cannot recolour, move or clear a terminal and a bidi override cannot
    reorder what the admin reads; the result is cut at a word (:func:`cut_at_word`).
    Console markup (``[bold]``) needs nothing here: the CLI's consoles never read markup.
    """
    words = " ".join(text.split())  # every run of whitespace (CR, LF, tab ...) is one space
    shown = "".join(_escape(c) if unicodedata.category(c) in _NOT_VISIBLE else c for c in words)
    return cut_at_word(shown, limit)


_NOT_ASCII_TEXT = re.compile(r"[^\n\x20-\x7e]")


def inert_json(document: str) -> str:
    """``document`` (JSON text) with every character that is not text to look at escaped.

    ``json.dumps`` escapes C0 controls but writes DEL, C1 controls (``\\x9b`` is a
    one-byte CSI on many terminals), bidi overrides and line separators as they are, so
    a listing printed with ``--json`` to a terminal could recolour it or reorder what
    the admin reads. Outside strings JSON text is ASCII, so each such character can only
    be inside a string, where ``\\uXXXX`` (a surrogate pair above U+FFFF) is the same
    value: a script parsing the output reads exactly what it read before.
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if unicodedata.category(char) not in _NOT_VISIBLE:
            return char
        code = ord(char)
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"

    return _NOT_ASCII_TEXT.sub(escape, document)


def error_line(error: BaseException) -> str:
    """An exception as one line for a log: its message's first line, else its type's name.

    ``str(TimeoutError())`` is empty: a log line built with ``str(e).splitlines()[0]``
    raised IndexError instead, which took down the lease heartbeat and its send.
    """
    return first_line(str(error)) or type(error).__name__


def first_line(text: str) -> str:
    """The first line of ``text`` that is not blank, stripped ('' when there is none)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def is_language_tag(value: str) -> bool:
    """True when ``value`` is a well-formed BCP 47 (RFC 5646) language tag, e.g. ``fr-CH``."""
    return _LANGUAGE_TAG.fullmatch(value) is not None


_BLOCKS = ["p", "div", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "blockquote", "pre"]
_NOT_TEXT = ["script", "style", "template"]


def html_to_text(fragment: str) -> str:
    """The readable text of an HTML fragment: tags dropped, entities decoded, one line.

    For plain-text emails (from sanitised HTML) and for feed titles an upstream marks
    as HTML: a reader must see "It’s Q&A time", not "It&#8217;s Q&amp;A time", and
    never a ``<b>``. Block elements are separated by a space; inline ones are not, so
    "the <a>report</a>." stays "the report.". Script and style contents are not text.
    """
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    soup = BeautifulSoup(fragment, "lxml")
    for hidden in soup.find_all(_NOT_TEXT):
        hidden.decompose()
    for tag in soup.find_all(_BLOCKS):
        tag.insert_after(" ")
    return " ".join(soup.get_text().split())


def canonical_link(link: str) -> str:
    """The link with scheme and host in lower case and no fragment.

    An item's id when its source gives none, and what makes two sources' items one
    story (the store keeps its sha256 as ``link_key``).
    """
    parts = urlsplit(link)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))
