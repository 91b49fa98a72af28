"""Signed per-recipient tokens for the unsubscribe and preferences links.

A link in a digest must let its recipient, and nobody else, act on one subscription
without logging in. The token names the subscription in clear (subscriber id, list,
purpose) and carries an HMAC-SHA256 over those fields keyed with the subscriber's own
secret, so a leaked token of one person says nothing about another's, and rotating one
secret revokes that person's links only. The web app first calls :func:`read_token` to
learn whose secret to load, then :func:`verify_token` with it.

Format: base64url, unpadded, of ``"{id}.{list}.{purpose}"`` followed by the first 16
bytes (128 bits) of the MAC. A typical token is about 50 characters: short enough for
a ``List-Unsubscribe`` header and a plain-text footer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from publisher.errors import TokenError

MAC_BYTES = 16
#: Ids are keys of ``subscribers.id``, an INTEGER column (32-bit signed on PostgreSQL):
#: a larger id names nobody, and the database would refuse it with an overflow error
#: (SQLite's driver too, past 64 bits), so such a token is malformed, not a query.
MAX_SUBSCRIBER_ID = 2**31 - 1
_FIELD = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DOMAIN = b"publisher-token-v1\x00"  # keeps these MACs apart from any other use of the secret


def make_token(subscriber_id: int, list_slug: str, purpose: str, secret: str) -> str:
    """Sign one subscriber's link for one list and one purpose."""
    if not 0 <= subscriber_id <= MAX_SUBSCRIBER_ID:
        raise ValueError(f"subscriber id must be between 0 and {MAX_SUBSCRIBER_ID}, got {subscriber_id}")
    for name, value in (("list_slug", list_slug), ("purpose", purpose)):
        if not _FIELD.match(value):
            raise ValueError(f"{name} {value!r} must be lower-case letters, digits and '-'")
    if not secret:
        raise ValueError("the subscriber's secret is empty; every subscriber needs one")
    payload = f"{subscriber_id}.{list_slug}.{purpose}".encode("ascii")
    return _b64encode(payload + _mac(payload, secret))


def read_token(token: str) -> tuple[int, str, str]:
    """Parse a token without checking its MAC, so the caller knows whose secret to load.

    Never act on the result before :func:`verify_token` accepted the token.
    """
    payload, _ = _split(token)
    return _parse_payload(payload)


def verify_token(token: str, secret: str) -> None:
    """Raise :class:`TokenError` unless ``token`` was made with ``secret`` and is unaltered."""
    payload, mac = _split(token)
    _parse_payload(payload)
    if not secret or not hmac.compare_digest(mac, _mac(payload, secret)):
        raise TokenError("this link is not valid: its signature does not match")


def _mac(payload: bytes, secret: str) -> bytes:
    return hmac.digest(secret.encode("utf-8"), _DOMAIN + payload, hashlib.sha256)[:MAC_BYTES]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _split(token: str) -> tuple[bytes, bytes]:
    """Decode and cut off the MAC; only the canonical spelling of a token is accepted."""
    if not isinstance(token, str) or not token.isascii() or len(token) > 400:
        raise TokenError("this link is not valid: malformed token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as e:
        raise TokenError("this link is not valid: malformed token") from e
    # Unused low bits of the last character decode to the same bytes: refuse such
    # variants so that exactly one string is valid per subscription and purpose.
    if _b64encode(raw) != token or len(raw) <= MAC_BYTES:
        raise TokenError("this link is not valid: malformed or truncated token")
    return raw[:-MAC_BYTES], raw[-MAC_BYTES:]


def _parse_payload(payload: bytes) -> tuple[int, str, str]:
    try:
        ident, list_slug, purpose = payload.decode("ascii").split(".")
    except (UnicodeDecodeError, ValueError) as e:
        raise TokenError("this link is not valid: malformed token") from e
    if not ident.isdigit() or not _FIELD.match(list_slug) or not _FIELD.match(purpose):
        raise TokenError("this link is not valid: malformed token")
    subscriber_id = int(ident)
    if subscriber_id > MAX_SUBSCRIBER_ID:
        raise TokenError("this link is not valid: subscriber id out of range")
    return subscriber_id, list_slug, purpose


# -- confirmation links of web sign-ups -------------------------------------------------

_CONFIRM_DOMAIN = b"publisher-confirm-v1\x00"


def make_confirm_token(subscriber_id: int, lists: list[str], issued: int, address: str, secret: str) -> str:
    """Sign a sign-up's confirmation link: whose, which lists, when asked, for which address.

    The address is in the MAC but not in the token (no address in URLs and logs), so a
    link works only while the subscriber still has that address; ``issued`` (Unix
    seconds) lets the reader expire it and match it to the very sign-up it confirms.
    """
    if not 0 < subscriber_id <= MAX_SUBSCRIBER_ID or not lists or not secret:
        raise ValueError("a confirmation token needs a subscriber id, at least one list and a secret")
    for slug in lists:
        if not _FIELD.match(slug):
            raise ValueError(f"list_slug {slug!r} must be lower-case letters, digits and '-'")
    payload = f"c.{subscriber_id}.{issued}.{','.join(lists)}".encode("ascii")
    return _b64encode(payload + _confirm_mac(payload, address, secret))


def read_confirm_token(token: str) -> tuple[int, int, list[str]]:
    """(subscriber id, issued, lists) of a confirmation token, unverified: load the secret next."""
    payload, _ = _split(token)
    try:
        kind, ident, issued, joined = payload.decode("ascii").split(".")
    except (UnicodeDecodeError, ValueError) as e:
        raise TokenError("this link is not valid: malformed token") from e
    lists = joined.split(",")
    if kind != "c" or not ident.isdigit() or not issued.isdigit() or not all(_FIELD.match(s) for s in lists):
        raise TokenError("this link is not valid: malformed token")
    if not 0 < int(ident) <= MAX_SUBSCRIBER_ID:
        raise TokenError("this link is not valid: subscriber id out of range")
    return int(ident), int(issued), lists


def verify_confirm_token(token: str, address: str, secret: str) -> None:
    """Raise :class:`TokenError` unless ``token`` was made for ``address`` with ``secret``."""
    payload, mac = _split(token)
    read_confirm_token(token)
    if not secret or not hmac.compare_digest(mac, _confirm_mac(payload, address, secret)):
        raise TokenError("this link is not valid: its signature does not match")


def _confirm_mac(payload: bytes, address: str, secret: str) -> bytes:
    message = _CONFIRM_DOMAIN + payload + b"\x00" + address.lower().encode("utf-8")
    return hmac.digest(secret.encode("utf-8"), message, hashlib.sha256)[:MAC_BYTES]


# -- form tokens (CSRF) -------------------------------------------------------------------

_FORM_DOMAIN = b"publisher-form-v1\x00"


def make_form_token(form: str, issued: int, secret: str) -> str:
    """A token for one form (``subscribe``, ``confirm:<token>``), issued at Unix second ``issued``.

    Signed with the store's server secret; nothing is kept per visitor.
    """
    payload = str(issued).encode("ascii")
    return _b64encode(payload + _form_mac(form, payload, secret))


def verify_form_token(token: str, form: str, secret: str, *, now: int, max_age: int) -> None:
    """Raise :class:`TokenError` unless ``token`` was made for ``form`` within ``max_age`` s of ``now``."""
    payload, mac = _split(token)
    if not payload.isdigit() or not hmac.compare_digest(mac, _form_mac(form, payload, secret)):
        raise TokenError("the form's security token does not match; load the form again")
    issued = int(payload)
    if not now - max_age <= issued <= now + 60:
        raise TokenError("the form is too old; load it again")


def _form_mac(form: str, payload: bytes, secret: str) -> bytes:
    message = _FORM_DOMAIN + form.encode("utf-8") + b"\x00" + payload
    return hmac.digest(secret.encode("utf-8"), message, hashlib.sha256)[:MAC_BYTES]
