"""Signed unsubscribe/preferences tokens: only the untouched token with the right secret passes."""

from __future__ import annotations

import base64

import pytest

from publisher.errors import TokenError
from publisher.tokens import (
    MAC_BYTES,
    MAX_SUBSCRIBER_ID,
    make_confirm_token,
    make_form_token,
    make_token,
    read_confirm_token,
    read_token,
    verify_confirm_token,
    verify_form_token,
    verify_token,
)

SECRET = "per-address-secret-1"


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_reads_fields_and_verifies() -> None:
    token = make_token(12345, "weekly", "unsubscribe", SECRET)
    assert read_token(token) == (12345, "weekly", "unsubscribe")
    verify_token(token, SECRET)  # does not raise


def test_token_is_url_safe_compact_and_carries_128_bit_mac() -> None:
    token = make_token(987654321, "weekly-digest", "preferences", SECRET)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(token) < 80
    assert MAC_BYTES >= 16
    assert _raw(token)[:-MAC_BYTES] == b"987654321.weekly-digest.preferences"


def test_tokens_differ_by_purpose_list_subscriber_and_secret() -> None:
    tokens = {
        make_token(1, "weekly", "unsubscribe", SECRET),
        make_token(1, "weekly", "preferences", SECRET),
        make_token(1, "daily", "unsubscribe", SECRET),
        make_token(2, "weekly", "unsubscribe", SECRET),
        make_token(1, "weekly", "unsubscribe", "another-secret"),
    }
    assert len(tokens) == 5


def test_wrong_secret_is_rejected() -> None:
    token = make_token(7, "weekly", "unsubscribe", SECRET)
    with pytest.raises(TokenError, match="not valid"):
        verify_token(token, "someone-elses-secret")
    with pytest.raises(TokenError):
        verify_token(token, "")


@pytest.mark.parametrize(
    "forged_payload",
    [b"8.weekly.unsubscribe", b"7.daily.unsubscribe", b"7.weekly.preferences", b"70.weekly.unsubscribe"],
    ids=["other-id", "other-list", "other-purpose", "longer-id"],
)
def test_altered_fields_with_the_original_mac_are_rejected(forged_payload: bytes) -> None:
    token = make_token(7, "weekly", "unsubscribe", SECRET)
    mac = _raw(token)[-MAC_BYTES:]
    forged = _encode(forged_payload + mac)
    assert read_token(forged)  # parses: only the MAC can tell
    with pytest.raises(TokenError):
        verify_token(forged, SECRET)


@pytest.mark.parametrize("position", [0, 10, -1, -5])
def test_any_flipped_character_is_rejected(position: int) -> None:
    token = make_token(7, "weekly", "unsubscribe", SECRET)
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(TokenError):
        verify_token("".join(chars), SECRET)


def test_altered_mac_is_rejected() -> None:
    token = make_token(7, "weekly", "unsubscribe", SECRET)
    raw = bytearray(_raw(token))
    raw[-1] ^= 0x01
    with pytest.raises(TokenError, match="signature"):
        verify_token(_encode(bytes(raw)), SECRET)


def test_non_canonical_spelling_of_a_valid_token_is_rejected() -> None:
    # The last base64 character of an unpadded token has unused low bits; a variant
    # differing only there decodes to the same bytes and must still be refused.
    token = make_token(17, "weekly", "unsubscribe", SECRET)  # 37 bytes: 4 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [token[:-1] + c for c in alphabet if c != token[-1]]
    same_bytes = [v for v in variants if _raw(v) == _raw(token)]
    assert same_bytes, "the token length leaves unused bits"
    for variant in same_bytes:
        with pytest.raises(TokenError, match="malformed"):
            verify_token(variant, SECRET)


@pytest.mark.parametrize("cut", [1, 4, 22, MAC_BYTES])
def test_truncated_token_is_rejected(cut: int) -> None:
    token = make_token(7, "weekly", "unsubscribe", SECRET)
    with pytest.raises(TokenError):
        verify_token(token[:-cut], SECRET)


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "!!!!", "not a token", "é" * 30, "a" * 1000, _encode(b"short"), _encode(b"\xff" * 40)],
    ids=["empty", "one-char", "punctuation", "spaces", "non-ascii", "huge", "too-short", "binary"],
)
def test_garbage_is_rejected_by_read_and_verify(garbage: str) -> None:
    with pytest.raises(TokenError):
        read_token(garbage)
    with pytest.raises(TokenError):
        verify_token(garbage, SECRET)


def test_payload_without_three_fields_is_rejected() -> None:
    with pytest.raises(TokenError):
        read_token(_encode(b"7.weekly" + b"\x00" * MAC_BYTES))
    with pytest.raises(TokenError):
        read_token(_encode(b"x.weekly.unsubscribe" + b"\x00" * MAC_BYTES))


@pytest.mark.parametrize(
    ("ident", "slug", "purpose", "secret"),
    [(-1, "weekly", "unsubscribe", SECRET), (MAX_SUBSCRIBER_ID + 1, "weekly", "unsubscribe", SECRET),
     (1, "Weekly", "unsubscribe", SECRET), (1, "a.b", "x", SECRET),
     (1, "weekly", "un subscribe", SECRET), (1, "weekly", "unsubscribe", "")],
)  # fmt: skip
def test_make_token_refuses_fields_it_could_not_read_back(
    ident: int, slug: str, purpose: str, secret: str
) -> None:
    with pytest.raises(ValueError):
        make_token(ident, slug, purpose, secret)


@pytest.mark.parametrize("ident", [MAX_SUBSCRIBER_ID + 1, 10**30, 10**250])
def test_ids_no_database_column_can_hold_are_malformed(ident: int) -> None:
    token = _encode(f"{ident}.weekly.unsubscribe".encode() + b"\0" * MAC_BYTES)
    with pytest.raises(TokenError, match="out of range"):
        read_token(token)
    with pytest.raises(TokenError, match="out of range"):
        verify_token(token, SECRET)
    assert read_token(make_token(MAX_SUBSCRIBER_ID, "weekly", "unsubscribe", SECRET))[0] == MAX_SUBSCRIBER_ID


# -- sign-up confirmation and form tokens (issue 9) -----------------------------------------


def test_confirm_token_is_bound_to_address_lists_and_secret() -> None:
    token = make_confirm_token(7, ["weekly", "press"], 1_800_000_000, "Ana@example.org", "s3cret")
    assert read_confirm_token(token) == (7, 1_800_000_000, ["weekly", "press"])
    verify_confirm_token(token, "ana@example.org", "s3cret")  # the address case-insensitively
    for address, secret in (("bob@example.org", "s3cret"), ("ana@example.org", "other")):
        with pytest.raises(TokenError):
            verify_confirm_token(token, address, secret)
    other_lists = make_confirm_token(7, ["weekly"], 1_800_000_000, "ana@example.org", "x")
    with pytest.raises(TokenError):  # a digest link's token is not a confirmation token
        read_confirm_token(make_token(7, "weekly", "preferences", "s3cret"))
    assert other_lists != token


def test_form_token_is_bound_to_form_and_age() -> None:
    token = make_form_token("subscribe", 1000, "key")
    verify_form_token(token, "subscribe", "key", now=1000 + 3600, max_age=86400)
    with pytest.raises(TokenError):
        verify_form_token(token, "confirm:abc", "key", now=1000, max_age=86400)
    with pytest.raises(TokenError):
        verify_form_token(token, "subscribe", "other-key", now=1000, max_age=86400)
    with pytest.raises(TokenError):
        verify_form_token(token, "subscribe", "key", now=1000 + 86401, max_age=86400)
