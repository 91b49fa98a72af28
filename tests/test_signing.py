"""Our DKIM signer against dkimpy: the same bytes at the same second, and verifiable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from publisher.config import DkimConfig
from publisher.errors import ConfigError, MailError
from publisher.messages import RenderedIssue
from publisher.signing import DKIM_HEADERS, DkimSigner, canonical_body, fold, relaxed_spaces
from tests.conftest import DKIM_DOMAIN, DKIM_SELECTOR, DkimKey
from tests.test_messages import LIST, MakeSettings, make_subscriber, render


def _signer(path: Path) -> DkimSigner:
    return DkimSigner(DkimConfig(selector=DKIM_SELECTOR, domain=DKIM_DOMAIN, key_path=path))


def _dkimpy(message: bytes, path: Path, now: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(dkim.time, "time", lambda: float(now))
    header = dkim.sign(
        message,
        DKIM_SELECTOR.encode(),
        DKIM_DOMAIN.encode(),
        path.read_bytes(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(DKIM_HEADERS),
    )
    monkeypatch.undo()
    return bytes(header) + message


def test_real_digests_are_signed_byte_for_byte_as_dkimpy_signs_them(
    make_settings: MakeSettings, dkim_key: DkimKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dkim_key.path
    signer = _signer(path)
    rendered = render(make_settings(lists=[LIST]))
    names = ["", "Ana María", "李小龙", "O'Brien,   Jr.", "x" * 150]
    for n, name in enumerate(names):
        _mid, unsigned = rendered.personalise(make_subscriber(id=n + 1, name=name), delivery_id=n + 1)
        ours = signer.sign(unsigned, now=1_764_489_600 + n)
        assert ours == _dkimpy(unsigned, path, 1_764_489_600 + n, monkeypatch), name
        assert dkim.verify(ours, dnsfunc=dkim_key.dns)


def test_digests_signed_from_pieces_canonicalised_once_are_dkimpys_bytes(
    make_settings: MakeSettings, dkim_key: DkimKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signing path of a send: the body's shared parts canonicalised once per issue.

    Each message ``personalise`` signs must carry the very signature dkimpy makes for
    its bytes at the same second, and verify; names with runs of spaces and tabs put
    white space the canonicalisation changes into the personal values too.
    """
    path = dkim_key.path
    rendered = render(make_settings(lists=[LIST]), signer=_signer(path))
    assert rendered.canonical_body_pieces is not None  # the once-per-issue path is taken
    names = ["", "Ana María", "O'Brien,   Jr.", "tab\there  and   there", "李小龙", "x  " * 60]
    for n, name in enumerate(names):
        monkeypatch.setattr("publisher.signing.time.time", lambda n=n: 1_764_489_600.0 + n)
        _mid, signed = rendered.personalise(make_subscriber(id=n + 1, name=name), delivery_id=n + 1)
        monkeypatch.undo()
        unsigned = signed[signed.index(b"\r\nFrom: ") + 2 :]
        assert signed == _dkimpy(unsigned, path, 1_764_489_600 + n, monkeypatch), name
        assert dkim.verify(signed, dnsfunc=dkim_key.dns)


def test_personal_values_the_shared_pieces_do_not_foresee_fall_back_to_the_whole_body(
    make_settings: MakeSettings, dkim_key: DkimKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values built today never move the head's blank line or hold a bare line feed,
    but if one did, the signature must still cover the bytes that are sent."""
    rendered = render(make_settings(lists=[LIST]), signer=_signer(dkim_key.path))
    built = RenderedIssue._values

    def head_with_a_blank_line(self: RenderedIssue, *args: object) -> dict[str, bytes]:
        values = built(self, *args)  # type: ignore[arg-type]
        values["to"] += b"\r\n\r\nmoved"  # the body now starts inside the head
        return values

    monkeypatch.setattr(RenderedIssue, "_values", head_with_a_blank_line)
    _mid, signed = rendered.personalise(make_subscriber(id=1, name="Ana"), delivery_id=1)
    assert dkim.verify(signed, dnsfunc=dkim_key.dns)

    def bare_line_feed(self: RenderedIssue, *args: object) -> dict[str, bytes]:
        values = built(self, *args)  # type: ignore[arg-type]
        return {key: value + b"\n" if key in self.body_slots else value for key, value in values.items()}

    monkeypatch.setattr(RenderedIssue, "_values", bare_line_feed)
    with pytest.raises(MailError, match="bare line feeds"):
        rendered.personalise(make_subscriber(id=2, name="Bo"), delivery_id=2)


@hypothesis_settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([b"a", b" ", b"  ", b"\t", b"\r\n", b"\r", b"=\r\n"]), max_size=8),
        max_size=8,
    )
)
def test_canonicalising_parts_first_gives_the_whole_bodys_form(parts: list[list[bytes]]) -> None:
    pieces = [b"".join(p) for p in parts]
    once = canonical_body(b"".join(relaxed_spaces(p) for p in pieces))
    assert once == canonical_body(b"".join(pieces)) == Relaxed.canonicalize_body(b"".join(pieces))


def test_signature_covers_one_click_headers_and_breaks_when_tampered(dkim_key: DkimKey) -> None:
    path = dkim_key.path
    message = (
        b"From: News <news@example.org>\r\nTo: a@example.net\r\nSubject: Hello\r\n"
        b"List-Unsubscribe: <https://example.org/unsubscribe/t>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nBody  text \r\n\r\n\r\n"
    )
    signed = _signer(path).sign(message)
    assert dkim.verify(signed, dnsfunc=dkim_key.dns)
    assert not dkim.verify(signed.replace(b"Body", b"Bodx"), dnsfunc=dkim_key.dns)
    assert not dkim.verify(signed.replace(b"One-Click", b"One-Clack"), dnsfunc=dkim_key.dns)
    # an extra List-Unsubscribe added on the way must break it: absence was signed too
    added = signed.replace(b"\r\n\r\nBody", b"\r\nList-Unsubscribe: <https://evil.example/>\r\n\r\nBody")
    assert not dkim.verify(added, dnsfunc=dkim_key.dns)
    # relaxed canonicalisation forgives what relays do: refolding, trailing spaces
    refolded = signed.replace(b"Subject: Hello", b"Subject:   Hello  ")
    assert dkim.verify(refolded, dnsfunc=dkim_key.dns)


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b", b" ", b"\t", b"\r\n", b"\r", b"=20"]), max_size=40))
def test_body_canonicalisation_is_dkimpys(parts: list[bytes]) -> None:
    body = b"".join(parts)
    assert canonical_body(body) == Relaxed.canonicalize_body(body)


@hypothesis_settings(max_examples=400, deadline=None)
@given(
    st.lists(st.text(alphabet="ab=+/; :", min_size=0, max_size=90), max_size=8),
    st.integers(min_value=0, max_value=20),
)
def test_folding_is_dkimpys(words: list[str], name_length: int) -> None:
    value = "; ".join(words).encode()
    assert fold(value, name_length) == dkim.fold(value, namelen=name_length)


def test_messages_it_would_sign_differently_are_refused(dkim_key: DkimKey) -> None:
    signer = _signer(dkim_key.path)
    with pytest.raises(MailError, match="bare line feeds"):
        signer.sign(b"From: a@example.org\r\nSubject: x\r\n\r\nline one\nline two\r\n")
    with pytest.raises(MailError, match="no blank line"):
        signer.sign(b"From: a@example.org\r\nSubject: x")
    with pytest.raises(MailError, match="not a header line"):
        signer.sign(b"From: a@example.org\r\nnot a header\r\n\r\nbody\r\n")


def test_keys_verifiers_refuse_are_config_errors(tmp_path: Path) -> None:
    ec = tmp_path / "ec.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(ec)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ConfigError, match="not a usable RSA private key: it is a"):
        _signer(ec)
    small = tmp_path / "small.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512", "-out", str(small)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ConfigError, match="512 bits"):
        _signer(small)
