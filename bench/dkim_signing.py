"""Benchmark of DKIM signing alone; prints one table.

Why: signing was the one slow step of a signed send (issue 12 asks for signed sending at
half the unsigned rate in one process). The rows sign the same real digest messages
(the sample department's weekly digest in en, fr and es, personalised for different
readers) with an RSA-2048 key:

- ``dkimpy``: ``dkim.sign`` as the library ships it, the baseline;
- ``dkimpy, RSA on OpenSSL``: the same with only the RSA step handed to ``cryptography``
  (what the publisher did before ``publisher/signing.py``);
- ``publisher.signing``: our signer (key loaded once, body canonicalised with
  ``bytes.replace``, OpenSSL);
- ``RSA-2048 alone``: one ``cryptography`` PKCS#1 v1.5 signature of a SHA-256 digest,
  the floor no signer can go under;
- ``personalise, then sign``: what a send did before signed issues canonicalised their
  shared body parts once: build the reader's message, then sign it whole;
- ``personalise signed``: what a send does: the issue rendered with the signer, which
  canonicalises the body parts every reader shares once, and per message only the
  personal values (:meth:`publisher.messages.RenderedIssue.personalise`).

Every row runs ``--repeat`` times over ``--count`` messages in this process; the table
gives the median time per message and the speed-up over the baseline.

Usage: ``python bench/dkim_signing.py [--count 500] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.config import DkimConfig, load_config  # noqa: E402
from publisher.messages import RenderedIssue, render_issue  # noqa: E402
from publisher.models import Item, Subscriber, SubscriptionStatus  # noqa: E402
from publisher.signing import DKIM_HEADERS, DkimSigner  # noqa: E402


def sample_issues(signer: DkimSigner | None = None) -> list[RenderedIssue]:
    """The sample config's weekly digest rendered in en, fr and es."""
    settings = load_config(ROOT / "config.toml")
    list_cfg = next(lst for lst in settings.lists if lst.slug == "weekly")
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    items = [
        Item(
            id=f"bench-{n}",
            source="sample",
            category=settings.categories[n % len(settings.categories)].slug,
            language="en",
            title=f"Social protection floors: item {n} on pensions, health care and child benefits",
            summary="<p>"
            + "Universal social protection reaches people where they live and work. " * 4
            + "</p>",
            content="",
            link=f"https://www.example.org/news/{n}",
            published=now,
            updated=now,
            content_hash=f"{n:064x}",
        )
        for n in range(12)
    ]
    return [
        render_issue(
            settings,
            list_cfg,
            items,
            issue_id=1,
            period_label="Week 48",
            language=lang,
            now=now,
            signer=signer,
        )
        for lang in ("en", "fr", "es")
    ]


def reader(n: int) -> Subscriber:
    return Subscriber(
        id=n + 1,
        email=f"reader{n}@example.net",
        name=f"Reader Número {n}",
        language="en",
        secret=f"secret-{n}",
        list_slug="weekly",
        status=SubscriptionStatus.CONFIRMED,
    )


def personalised(rendered: list[RenderedIssue], n: int) -> bytes:
    """Reader ``n``'s message (the languages in turn)."""
    return rendered[n % 3].personalise(reader(n), delivery_id=n + 1)[1]


def make_key(folder: Path) -> Path:
    path = folder / "bench-dkim.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def dkimpy_signer(key: Path) -> Callable[[bytes], Any]:
    pem = key.read_bytes()
    headers = list(DKIM_HEADERS)

    def sign(message: bytes) -> bytes:
        return bytes(
            dkim.sign(
                message,
                b"bench",
                b"example.org",
                pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=headers,
            )
        )

    return sign


def dkimpy_openssl_signer(key: Path) -> Callable[[bytes], Any]:
    """dkimpy with its RSA step replaced, as ``publisher.messages`` did until this signer."""
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    shipped = dkim.RSASSA_PKCS1_v1_5_sign

    def openssl(hash_obj: Any, _key: Any) -> bytes:
        return private.sign(hash_obj.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))

    plain = dkimpy_signer(key)

    def sign(message: bytes) -> bytes:
        dkim.RSASSA_PKCS1_v1_5_sign = openssl
        try:
            return bytes(plain(message))
        finally:
            dkim.RSASSA_PKCS1_v1_5_sign = shipped

    return sign


def rsa_alone(key: Path) -> Callable[[bytes], Any]:
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)

    def sign(message: bytes) -> bytes:
        return private.sign(
            hashlib.sha256(message[:64]).digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256())
        )

    return sign


def per_message(sign: Callable[[int], Any], count: int) -> float:
    start = time.perf_counter()
    for n in range(count):
        sign(n)
    return (time.perf_counter() - start) / count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    unsigned = sample_issues()
    messages = [personalised(unsigned, n) for n in range(args.count)]
    with tempfile.TemporaryDirectory() as tmp:
        key = make_key(Path(tmp))
        ours = DkimSigner(DkimConfig(selector="bench", domain="example.org", key_path=key))
        signed = sample_issues(ours)
        on_messages = [
            ("dkimpy", dkimpy_signer(key)),
            ("dkimpy, RSA on OpenSSL", dkimpy_openssl_signer(key)),
            ("publisher.signing", ours.sign),
            ("RSA-2048 alone", rsa_alone(key)),
        ]
        rows: list[tuple[str, Callable[[int], Any]]] = [
            *((name, lambda n, sign=sign: sign(messages[n])) for name, sign in on_messages),
            ("personalise, then sign", lambda n: ours.sign(personalised(unsigned, n))),
            ("personalise signed", lambda n: personalised(signed, n)),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _ in rows}
        for _ in range(args.repeat):  # interleaved, so a busy spell hits every row alike
            for name, sign in rows:
                samples[name].append(per_message(sign, args.count))
    size = statistics.mean(len(m) for m in messages)
    table = Table(
        title=f"DKIM signing of {args.count} digests of {size / 1024:.1f} KiB (median of {args.repeat})"
    )
    for column in ("signer", "ms a message", "messages/s", "vs dkimpy", "runs (ms)"):
        table.add_column(column, justify="left" if column == "signer" else "right")
    base = statistics.median(samples["dkimpy"])
    for name, _ in rows:
        median = statistics.median(samples[name])
        runs = " ".join(f"{s * 1000:.2f}" for s in samples[name])
        table.add_row(name, f"{median * 1000:.3f}", f"{1 / median:,.0f}", f"{base / median:.1f}x", runs)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
