"""The VERP return path: ``bounces+TOKEN@domain`` names and signs one delivery.

A bounce goes to the envelope sender (MAIL FROM, which the receiving server writes as
Return-Path), so when each message has its own envelope sender, the report says whose
message failed without our having to trust what the report claims. TOKEN names the
issue and the subscriber and carries an HMAC-SHA256 keyed with that subscriber's own
secret (as the unsubscribe links do, publisher.tokens), so nobody can make a token that
bounces another address.

Why this alphabet: some MTAs lower-case the local part of an address, and a few
upper-case it, so the token must survive any change of case: the ids are written in
base 36 (digits and letters) and the MAC in hexadecimal, both compared after
lower-casing. ``-`` separates the fields; no character needs quoting in an address or
a URL. A token is about 30 characters (``9ix-ejud-`` and an 80-bit MAC in 20), so the
local part stays under SMTP's 64 with a local part of up to 24 characters (config refuses longer).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from publisher.errors import TokenError
from publisher.tokens import MAX_SUBSCRIBER_ID

MAC_BYTES = 10
_DOMAIN = b"publisher-verp-v1\x00"  # keeps these MACs apart from any other use of the secret
_TOKEN = re.compile(r"^([0-9a-z]{1,7})-([0-9a-z]{1,7})-([0-9a-f]{20})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class VerpToken:
    """What a token names; trust it only after :func:`verify_verp_token`."""

    issue_id: int
    subscriber_id: int


def make_verp_token(issue_id: int, subscriber_id: int, secret: str) -> str:
    """The token of one delivery: ``{issue}-{subscriber}-{mac}``, lower case."""
    if not 0 < issue_id <= MAX_SUBSCRIBER_ID or not 0 < subscriber_id <= MAX_SUBSCRIBER_ID:
        raise ValueError("issue and subscriber ids must be positive 32-bit integers")
    if not secret:
        raise ValueError("the subscriber's secret is empty; every subscriber needs one")
    ids = f"{_base36(issue_id)}-{_base36(subscriber_id)}"
    return f"{ids}-{_mac(ids, secret)}"


def read_verp_token(token: str) -> VerpToken:
    """Parse a token (any case) without checking its MAC, to learn whose secret to load."""
    match = _TOKEN.match(token.lower()) if isinstance(token, str) and token.isascii() else None
    if match is None:
        raise TokenError("not a return-path token")
    issue_id, subscriber_id = int(match.group(1), 36), int(match.group(2), 36)
    if not 0 < issue_id <= MAX_SUBSCRIBER_ID or not 0 < subscriber_id <= MAX_SUBSCRIBER_ID:
        raise TokenError("return-path token names an id out of range")
    return VerpToken(issue_id, subscriber_id)


def verify_verp_token(token: str, secret: str) -> VerpToken:
    """The delivery a token names; :class:`TokenError` unless it was made with ``secret``."""
    named = read_verp_token(token)
    ids, _, mac = token.lower().rpartition("-")
    if not secret or not hmac.compare_digest(mac, _mac(ids, secret)):
        raise TokenError("return-path token signature does not match")
    return named


def token_in(address: str, bounce_address: str) -> str | None:
    """The token of ``local+TOKEN@domain`` when it is a sub-address of ``bounce_address``.

    Compared without regard to case (MTAs change it); the token is returned lower case.
    """
    local, _, domain = bounce_address.lower().rpartition("@")
    candidate = address.strip().strip("<>").lower()
    head, at, tail = candidate.rpartition("@")
    if not at or tail != domain or not head.startswith(local + "+"):
        return None
    token = head[len(local) + 1 :]
    return token if _TOKEN.match(token) else None


def _mac(ids: str, secret: str) -> str:
    return hmac.digest(secret.encode("utf-8"), _DOMAIN + ids.encode("ascii"), hashlib.sha256)[
        :MAC_BYTES
    ].hex()


def _base36(value: int) -> str:
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if value == 0:
            return out


class ReturnPath:
    """The envelope senders of one ``[bounces] address``, made per delivery on the hot path.

    Splits the address once; each message then costs one HMAC and a few string joins
    (a few microseconds, see bench/digests.py "digest send + VERP").
    """

    def __init__(self, address: str) -> None:
        self.local, _, self.domain = address.rpartition("@")

    def for_delivery(self, issue_id: int, subscriber_id: int, secret: str) -> str:
        return f"{self.local}+{make_verp_token(issue_id, subscriber_id, secret)}@{self.domain}"
