"""Benchmark of digest delivery; prints one table.

Why: the bar is what aiosmtplib can push over 4 connections into Postfix's smtp-sink
(docs/architecture.md, "Why render once"); measure, never guess. The rows:

- ``raw aiosmtplib``: C clients each calling ``sendmail`` in a loop over its share of
  the pre-built messages, nothing else; the ceiling for this machine.
- ``SmtpTransport``: the same bytes through :class:`publisher.mailer.SmtpTransport`
  (queue, stage tracking, results), with C connections. Its ratio to the raw blast is
  the cost of the transport layer.

- ``raw aiosmtplib, digest bytes``: the raw blast again, cycling through real digest
  messages (rendered and personalised once per language before the clock starts), so
  the end-to-end rows are compared with a blast of the very bytes they send.
- ``import CSV``: ``import_csv`` of an N-row file into a fresh SQLite store (rows/s).
- ``digest send (end to end)``: ``send_digest`` on a fresh SQLite store holding N
  confirmed subscribers (en/fr/es) and 20 items: issue creation, every delivery and
  the ledger writes. ``2 processes`` creates the issue, then two resident worker
  processes (already started, as ``publisher worker`` daemons would be) run a
  :class:`publisher.ledger.Sender` each over the same SMTP connection count split
  between them.
- ``DKIM`` rows: the same with ``[dkim]`` on (``publisher/signing.py``; ``bench/dkim_signing.py``
  measures the signer alone), at ``--dkim-size`` messages, with their own raw baseline.

Each run is a fresh process, so "peak RSS" is that run's own high-water mark (for the
2-process rows, the largest of the processes; the untimed store setup runs in a
process of its own and counts in neither RSS nor CPU). Messages are personalised from one
template as they are consumed (never all held at once), as the digest code does. Add
a row by writing one ``measure_*`` function returning seconds and listing it in
:data:`MEASUREMENTS`.

Usage: ``python bench/digests.py [--sizes 10000,100000] [--connections 4] [--repeat 3]
[--dkim-size 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import aiosmtplib
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.app import Publisher  # noqa: E402
from publisher.config import Settings, SmtpConfig, settings_from_dict  # noqa: E402
from publisher.ledger import Sender  # noqa: E402
from publisher.mailer import OutgoingMessage, SendResult, SmtpTransport  # noqa: E402
from publisher.messages import render_issue  # noqa: E402
from publisher.models import DeliveryStatus, Item, Subscriber, SubscriptionStatus  # noqa: E402
from publisher.store import Store  # noqa: E402
from publisher.subscriptions import import_csv  # noqa: E402

SENDER = "bounces@example.org"
MESSAGE_BYTES = 5_000


@dataclass(frozen=True, slots=True)
class Setup:
    """What one run needs: where the sink listens and how much to send."""

    host: str
    port: int
    messages: int
    connections: int


# -- messages ------------------------------------------------------------------------------


def _template(size: int) -> bytes:
    head = (
        b"From: Social Protection <news@example.org>\r\n"
        b"To: <reader{KEY}@example.net>\r\n"
        b"Subject: Social protection this week: 12 new items\r\n"
        b"Message-ID: <issue-7.{KEY}@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    line = b"Item: pensions reform adopted; read more at https://www.example.org/news/{KEY}\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[: size - 2] + b"\r\n"


def messages(count: int, size: int = MESSAGE_BYTES) -> Iterator[OutgoingMessage]:
    """``count`` same-size messages, personalised by byte substitution as they are taken."""
    template = _template(size)
    width = len(str(count))
    for key in range(count):
        tag = str(key).zfill(width)
        data = template.replace(b"{KEY}", tag.encode())
        yield OutgoingMessage(key, SENDER, f"reader{tag}@example.net", data)


# -- measurements (each runs in its own process) -------------------------------------------


def measure_raw_blast(setup: Setup) -> float:
    """C plain aiosmtplib clients, ``sendmail`` in a loop over their share."""

    async def client(share: Iterator[OutgoingMessage]) -> int:
        sent = 0
        async with aiosmtplib.SMTP(hostname=setup.host, port=setup.port, start_tls=False) as smtp:
            for message in share:
                await smtp.sendmail(message.sender, [message.recipient], message.data)
                sent += 1
        return sent

    async def run() -> int:
        # One shared generator: each client takes the next message when it is free, so
        # the shares balance themselves as they would with a queue, at no cost.
        stream = messages(setup.messages)
        return sum(await asyncio.gather(*(client(stream) for _ in range(setup.connections))))

    started = time.perf_counter()
    sent = asyncio.run(run())
    elapsed = time.perf_counter() - started
    if sent != setup.messages:
        raise RuntimeError(f"raw blast sent {sent} of {setup.messages}")
    return elapsed


def measure_smtp_transport(setup: Setup) -> float:
    """The same bytes through SmtpTransport with C connections."""
    outcomes: Counter[DeliveryStatus] = Counter()

    def count(result: SendResult) -> None:
        outcomes[result.status] += 1

    async def run() -> None:
        cfg = SmtpConfig.model_validate(
            {"host": setup.host, "port": setup.port, "connections": setup.connections}
        )
        transport = SmtpTransport(cfg)
        await transport.send(messages(setup.messages), count)
        await transport.close()

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    if outcomes != Counter({DeliveryStatus.SENT: setup.messages}):
        raise RuntimeError(f"SmtpTransport outcomes: {dict(outcomes)}")
    return elapsed


# -- end-to-end: a real list, a real store, real digests -----------------------------------

LIST_SLUG = "weekly"
LANGUAGES = ("en", "fr", "es")
NAMES = ("Amina Diallo", "Zoë Müller-Ñúñez", "José Pérez", "Jean Dupont", "Grace O'Neil", "")
ITEM_COUNT = 20
CATEGORIES = [
    {"slug": "press-releases", "title": "Press releases", "labels": ["Press release"]},
    {"slug": "news", "title": "News", "labels": ["News"]},
    {"slug": "comments", "title": "Comments", "labels": ["Comment"]},
    {"slug": "events", "title": "Events", "labels": ["Event"]},
    {"slug": "publications", "title": "Publications", "labels": ["Publication"]},
]
SUMMARY = (
    "<p>The department published its annual review of social protection coverage, with "
    "figures on pensions, unemployment benefits and child allowances in 40 countries, "
    "and recommendations for closing the gaps that remain for informal workers.</p>"
)


def write_subscribers_csv(path: Path, rows: int) -> None:
    """``rows`` distinct subscribers: en/fr/es, some names not ASCII, some missing."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "language"])
        for i in range(rows):
            name = NAMES[i % len(NAMES)]
            writer.writerow(
                [f"reader.{i}@example{i % 89}.org", f"{name} {i}" if name else "", LANGUAGES[i % 3]]
            )


def digest_settings(
    setup: Setup, base: Path, *, dkim: bool = False, connections: int | None = None, verp: bool = False
) -> Settings:
    """A department's settings: SQLite under ``base``, smtp-sink as the relay."""
    data: dict[str, Any] = {
        "site": {
            "title": "Social Protection Department",
            "base_url": "https://www.example.org",
            "language": "en",
            "timezone": "Europe/Zurich",
            "postal_address": "Route des Morillons 4, 1211 Geneva 22, Switzerland",
        },
        "categories": CATEGORIES,
        # Only items of configured sources reach an issue; the bench's items say "bench".
        "sources": [{"name": "bench", "type": "directory", "path": "content"}],
        "storage": {"url": f"sqlite:///{base / 'publisher.db'}"},
        "feeds": {"output_dir": str(base / "public")},
        "outbox": {"path": str(base / "outbox")},
        "smtp": {"host": setup.host, "port": setup.port, "connections": connections or setup.connections},
        "delivery": {"journal_dir": str(base / "journal")},
        "lists": [
            {
                "slug": LIST_SLUG,
                "name": "Weekly digest",
                "categories": ["*"],
                "sender": "Social Protection <news@example.org>",
                "unsubscribe_mailto": "unsubscribe@example.org",
            }
        ],
    }
    if verp:  # each message's envelope sender is bounces+TOKEN@example.org
        data["bounces"] = {"address": "bounces@example.org"}
    if dkim:
        key = base / "dkim.pem"
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        data["dkim"] = {"selector": "bench", "domain": "example.org", "key_path": str(key)}
    return settings_from_dict(data, base / "config.toml")


def digest_items(now: datetime) -> list[Item]:
    """20 items of the last days across the categories (one uncategorised)."""
    labels = [c["labels"][0] for c in CATEGORIES]
    out = []
    for n in range(ITEM_COUNT):
        published = now - timedelta(hours=6 * n + 1)
        category = str(CATEGORIES[n % len(CATEGORIES)]["slug"]) if n != 7 else None
        out.append(
            Item(
                id=f"urn:bench:{n}",
                source="bench",
                title=f"Social protection report {n}: coverage gaps and how to close them",
                link=f"https://www.example.org/news/2026/report-{n}",
                published=published,
                updated=published,
                language="en",
                summary=SUMMARY,
                label=labels[n % len(labels)] if category else "Unknown",
                category=category,
                content_hash=f"h{n}",
            )
        )
    return out


def prepared_publisher(
    setup: Setup, base: Path, *, dkim: bool = False, connections: int | None = None, verp: bool = False
) -> Publisher:
    """A store with N confirmed subscribers and this week's items (not timed).

    The store is filled in a process of its own: the import holds the whole file,
    and that must not count in the peak RSS of the send being measured.
    """
    cpu = _cpu_seconds()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        pool.submit(_fill_store, setup, base).result()
    SETUP_CPU.append(_cpu_seconds() - cpu)
    settings = digest_settings(setup, base, dkim=dkim, connections=connections, verp=verp)
    return Publisher(settings, Store(settings.storage.url))


def _fill_store(setup: Setup, base: Path) -> None:
    settings = digest_settings(setup, base)
    publisher = Publisher(settings, Store(settings.storage.url))
    csv_path = base / "subscribers.csv"
    write_subscribers_csv(csv_path, setup.messages)
    report = import_csv(settings, publisher.store, LIST_SLUG, csv_path, now=publisher.clock())
    if report.added != setup.messages:
        raise RuntimeError(f"import added {report.added} of {setup.messages}")
    now = publisher.clock()
    publisher.store.items.save(digest_items(now), [], now)
    publisher.close()


def _check_sent(what: str, sent: int, setup: Setup) -> None:
    if sent != setup.messages:
        raise RuntimeError(f"{what}: sent {sent} of {setup.messages}")


def measure_import(setup: Setup) -> float:
    """``import_csv`` of an N-row file into a fresh SQLite store; the rate is rows/s."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        settings = digest_settings(setup, base)
        store = Store(settings.storage.url)
        csv_path = base / "subscribers.csv"
        write_subscribers_csv(csv_path, setup.messages)
        started = time.perf_counter()
        report = import_csv(settings, store, LIST_SLUG, csv_path, now=datetime.now(UTC))
        elapsed = time.perf_counter() - started
        store.close()
    if report.added != setup.messages:
        raise RuntimeError(f"import added {report.added} of {setup.messages}: {report.rejected[:3]}")
    return elapsed


def digest_bytes(setup: Setup, base: Path) -> list[OutgoingMessage]:
    """One real digest message per language, rendered and personalised as the sender does."""
    settings = digest_settings(setup, base)
    list_cfg = settings.list_config(LIST_SLUG)
    now = datetime.now(UTC)
    out = []
    for n, language in enumerate(LANGUAGES):
        rendered = render_issue(
            settings,
            list_cfg,
            digest_items(now),
            issue_id=1,
            period_label="23 November 2026",
            language=language,
            now=now,
        )
        email = f"reader.{n}@example{n}.org"
        subscriber = Subscriber(
            id=n + 1,
            email=email,
            name=NAMES[n],
            language=language,
            secret="s" * 32,
            list_slug=LIST_SLUG,
            status=SubscriptionStatus.CONFIRMED,
        )
        _mid, data = rendered.personalise(subscriber, delivery_id=n + 1)
        out.append(OutgoingMessage(n, list_cfg.sender_address, email, data))
    return out


def measure_raw_digest_blast(setup: Setup) -> float:
    """The raw blast of real digest bytes (the end-to-end rows' baseline)."""
    with tempfile.TemporaryDirectory() as tmp:
        prebuilt = digest_bytes(setup, Path(tmp))

    async def client(share: Iterator[OutgoingMessage]) -> int:
        sent = 0
        async with aiosmtplib.SMTP(hostname=setup.host, port=setup.port, start_tls=False) as smtp:
            for message in share:
                await smtp.sendmail(message.sender, [message.recipient], message.data)
                sent += 1
        return sent

    async def run() -> int:
        stream = itertools.islice(itertools.cycle(prebuilt), setup.messages)
        return sum(await asyncio.gather(*(client(stream) for _ in range(setup.connections))))

    started = time.perf_counter()
    sent = asyncio.run(run())
    elapsed = time.perf_counter() - started
    _check_sent("raw digest blast", sent, setup)
    return elapsed


def _send_in_process(setup: Setup, *, dkim: bool, verp: bool = False) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        publisher = prepared_publisher(setup, Path(tmp), dkim=dkim, verp=verp)
        started = time.perf_counter()
        report = asyncio.run(publisher.send_digest(LIST_SLUG))
        elapsed = time.perf_counter() - started
        publisher.close()
    _check_sent("digest send", report.sent, setup)
    return elapsed


def measure_digest_send(setup: Setup) -> float:
    """``Publisher.send_digest``: issue, N deliveries, ledger; one process."""
    return _send_in_process(setup, dkim=False)


def measure_digest_send_verp(setup: Setup) -> float:
    """``send_digest`` with ``[bounces] address``: a signed VERP envelope sender per message."""
    return _send_in_process(setup, dkim=False, verp=True)


def measure_digest_send_dkim(setup: Setup) -> float:
    """``send_digest`` with DKIM signing; one process."""
    return _send_in_process(setup, dkim=True)


def _resident_worker(
    setup: Setup, base: Path, dkim: bool, connections: int, ready: Any, go: Any, results: Any
) -> None:
    """A worker process that is up before the send starts, as a ``publisher worker`` is."""
    settings = digest_settings(setup, base, dkim=dkim, connections=connections)
    publisher = Publisher(settings, Store(settings.storage.url))
    ready.release()
    go.wait()
    tally = asyncio.run(Sender(settings, publisher.store, clock=publisher.clock).run(LIST_SLUG))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put((tally.sent, usage.ru_maxrss / 1024))


def _send_two_processes(setup: Setup, *, dkim: bool) -> float:
    """Create the issue here, then deliver it with two worker processes (half the connections each)."""
    ctx = get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        publisher = prepared_publisher(setup, base, dkim=dkim)
        ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        share = max(setup.connections // 2, 1)
        workers = [
            ctx.Process(target=_resident_worker, args=(setup, base, dkim, share, ready, go, results))
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        for _ in workers:
            ready.acquire()
        started = time.perf_counter()
        publisher.request_stop()  # create the issue only; the workers deliver it
        asyncio.run(publisher.send_digest(LIST_SLUG))
        go.set()
        outcomes = [results.get(timeout=3600) for _ in workers]
        elapsed = time.perf_counter() - started
        for w in workers:
            w.join()
        publisher.close()
    _check_sent("2 workers", sum(sent for sent, _ in outcomes), setup)
    CHILD_PEAK_MB.append(max(mb for _, mb in outcomes))
    return elapsed


def measure_digest_send_2proc(setup: Setup) -> float:
    """Issue created by one process, delivered by two resident workers."""
    return _send_two_processes(setup, dkim=False)


def measure_digest_send_dkim_2proc(setup: Setup) -> float:
    """The same with DKIM signing (the signing is what needs the second core)."""
    return _send_two_processes(setup, dkim=True)


# -- the rows ----------------------------------------------------------------------------------

Measurement = Callable[[Setup], float]
RAW = "raw aiosmtplib sendmail"
RAW_DIGEST = "raw aiosmtplib, digest bytes"


@dataclass(frozen=True, slots=True)
class Spec:
    """A row: its measurement, what it counts, the row its ratio divides by, its size."""

    name: str
    measure: Measurement
    unit: str = "msg"
    baseline: str | None = None
    dkim: bool = False  # runs at --dkim-size messages


MEASUREMENTS: list[Spec] = [
    Spec(RAW, measure_raw_blast, baseline=RAW),
    Spec("SmtpTransport", measure_smtp_transport, baseline=RAW),
    Spec("import CSV (SQLite)", measure_import, unit="rows"),
    Spec(RAW_DIGEST, measure_raw_digest_blast, baseline=RAW_DIGEST),
    Spec("digest send (end to end)", measure_digest_send, baseline=RAW_DIGEST),
    Spec("digest send + VERP", measure_digest_send_verp, baseline=RAW_DIGEST),
    Spec("digest send, 2 processes", measure_digest_send_2proc, baseline=RAW_DIGEST),
    Spec(RAW_DIGEST, measure_raw_digest_blast, baseline=RAW_DIGEST, dkim=True),
    Spec("digest send + DKIM", measure_digest_send_dkim, baseline=RAW_DIGEST, dkim=True),
    Spec("digest send + DKIM, 2 processes", measure_digest_send_dkim_2proc, baseline=RAW_DIGEST, dkim=True),
]

CHILD_PEAK_MB: list[float] = []  # peak RSS of the worker processes a measurement started
SETUP_CPU: list[float] = []  # CPU seconds of untimed setup processes, not the measurement's


@dataclass(frozen=True, slots=True)
class Sample:
    """One run: wall seconds, CPU seconds (its worker processes too), peak RSS in MB."""

    seconds: float
    cpu: float
    peak_mb: float


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _in_child(measure: Measurement, setup: Setup) -> Sample:
    cpu = _cpu_seconds()
    seconds = measure(setup)
    cpu = _cpu_seconds() - cpu - sum(SETUP_CPU)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return Sample(seconds, cpu, max([peak_mb, *CHILD_PEAK_MB]))


def run_isolated(measure: Measurement, setup: Setup) -> Sample:
    """Run one measurement in a fresh process, so its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_in_child, measure, setup).result()


# -- the SMTP sink ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[str, int]]:
    """Postfix's smtp-sink on a free loopback port (fetched by bench/smtp_sink.sh)."""
    lines = subprocess.run(
        ["bash", str(ROOT / "bench" / "smtp_sink.sh"), "--env"], check=True, capture_output=True, text=True
    ).stdout.split()
    binary, env_line = lines[0], lines[1]
    env = {**os.environ, env_line.split("=", 1)[0]: env_line.split("=", 1)[1]}
    port = _free_port()
    proc = subprocess.Popen([binary, "-u", "nobody", f"127.0.0.1:{port}", "256"], env=env)
    try:
        _wait_for_port(port)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"smtp-sink did not listen on 127.0.0.1:{port}")


# -- report -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    spec: Spec
    setup: Setup
    samples: list[Sample]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rates(self) -> list[float]:
        return [self.setup.messages / s.seconds for s in self.samples]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu_us(self) -> float:
        """Client CPU per message: steadier than msg/s when neighbours load the machine."""
        return statistics.median(s.cpu for s in self.samples) / self.setup.messages * 1e6

    @property
    def peak_mb(self) -> float:
        return statistics.median(s.peak_mb for s in self.samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000", help="comma-separated message counts, e.g. 10000,100000")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dkim-size", type=int, default=2000, help="messages of the DKIM rows (0: skip)")
    parser.add_argument(
        "--only", default="", help="run only rows whose name contains one of these (comma-separated)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    specs = [s for s in MEASUREMENTS if not wanted or any(w in s.name for w in wanted)]
    groups = [(size, [s for s in specs if not s.dkim]) for size in sizes]
    if args.dkim_size:
        groups.append((args.dkim_size, [s for s in specs if s.dkim]))

    rows: list[Row] = []
    with smtp_sink() as (host, port):
        for size, group in groups:
            setup = Setup(host, port, size, args.connections)
            batch = [Row(spec, setup, []) for spec in group]
            for _ in range(args.repeat):  # interleaved, so a busy spell hits every row alike
                for row in batch:
                    row.samples.append(run_isolated(row.spec.measure, setup))
            rows.extend(batch)
    print_table(rows, os.getloadavg())


def print_table(rows: list[Row], load: tuple[float, float, float]) -> None:
    title = f"Digest delivery into smtp-sink (median of runs; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    table = Table(title=title)
    columns = (
        "measurement",
        "count",
        "conns",
        "per s",
        "runs per s",
        "vs raw",
        "CPU µs/unit",
        "peak RSS MB",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "measurement" else "right", no_wrap=True)
    rates = {(r.name, r.setup): r.rate for r in rows}
    for row in rows:
        base = rates.get((row.spec.baseline, row.setup)) if row.spec.baseline else None
        table.add_row(
            row.name,
            f"{row.setup.messages:,} {row.spec.unit}",
            str(row.setup.connections) if row.spec.unit == "msg" else "",
            f"{row.rate:,.0f}",
            " ".join(f"{r:,.0f}" for r in row.rates),
            f"{row.rate / base:.2f}" if base else "",
            f"{row.cpu_us:.0f}",
            f"{row.peak_mb:.0f}",
        )
    Console(width=160).print(table)
    print(
        f"'{RAW}' sends {MESSAGE_BYTES} B synthetic messages; '{RAW_DIGEST}' cycles through real "
        "digest messages (one per language), the baseline of the digest rows. DKIM rows run at "
        "--dkim-size messages. '2 processes': the issue is created "
        "in one process, two resident workers deliver it with half the connections each."
    )


if __name__ == "__main__":
    main()
