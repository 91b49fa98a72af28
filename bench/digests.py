"""Benchmark of digest delivery; prints one table.

Why: DESIGN.md ("Fast delivery") sets the bar at what aiosmtplib can push over 4
connections into Postfix's smtp-sink, and says to measure, never guess. The rows:

- ``raw aiosmtplib``: C clients each calling ``sendmail`` in a loop over its share of
  the pre-built messages, nothing else; the ceiling for this machine.
- ``SmtpTransport``: the same bytes through :class:`publisher.mailer.SmtpTransport`
  (queue, stage tracking, results), with C connections. Its ratio to the raw blast is
  the cost of the transport layer.

Each run is a fresh process, so "peak RSS" is that run's own high-water mark. Messages
are personalised from one template as they are consumed (never all held at once), as
the digest code does. Add a row by writing one ``measure_*`` function returning
seconds and listing it in :data:`MEASUREMENTS`.

Usage: ``python bench/digests.py [--sizes 10000,100000] [--connections 4] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import aiosmtplib
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.config import SmtpConfig  # noqa: E402
from publisher.mailer import OutgoingMessage, SendResult, SmtpTransport  # noqa: E402
from publisher.models import DeliveryStatus  # noqa: E402

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


Measurement = Callable[[Setup], float]
MEASUREMENTS: list[tuple[str, Measurement]] = [
    ("raw aiosmtplib sendmail", measure_raw_blast),
    ("SmtpTransport", measure_smtp_transport),
]


@dataclass(frozen=True, slots=True)
class Sample:
    """One run: wall seconds, this process's CPU seconds, its peak RSS in MB."""

    seconds: float
    cpu: float
    peak_mb: float


def _in_child(measure: Measurement, setup: Setup) -> Sample:
    cpu = time.process_time()
    seconds = measure(setup)
    cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return Sample(seconds, cpu, peak_mb)


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
    name: str
    setup: Setup
    samples: list[Sample]

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
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    rows: list[Row] = []
    with smtp_sink() as (host, port):
        for size in sizes:
            setup = Setup(host, port, size, args.connections)
            batch = [Row(name, setup, []) for name, _ in MEASUREMENTS]
            for _ in range(args.repeat):  # interleaved, so a busy spell hits every row alike
                for row, (_, measure) in zip(batch, MEASUREMENTS, strict=True):
                    row.samples.append(run_isolated(measure, setup))
            rows.extend(batch)
    print_table(rows)


def print_table(rows: list[Row]) -> None:
    table = Table(title=f"Digest delivery into smtp-sink ({MESSAGE_BYTES} B messages, median of runs)")
    columns = (
        "measurement",
        "messages",
        "conns",
        "msg/s",
        "runs msg/s",
        "vs raw",
        "CPU µs/msg",
        "peak RSS MB",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "measurement" else "right", no_wrap=True)
    raw = {r.setup: r.rate for r in rows if r.name.startswith("raw")}
    for row in rows:
        base = raw.get(row.setup)
        table.add_row(
            row.name,
            f"{row.setup.messages:,}",
            str(row.setup.connections),
            f"{row.rate:,.0f}",
            " ".join(f"{r:,.0f}" for r in row.rates),
            f"{row.rate / base:.2f}" if base else "",
            f"{row.cpu_us:.0f}",
            f"{row.peak_mb:.0f}",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
