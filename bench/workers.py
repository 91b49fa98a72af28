"""Sending with 1, 2 or 3 ``publisher worker --once`` processes into smtp-sink, on PostgreSQL.

Why: a list is sent faster by starting more workers (``publisher worker``, one per
core); this measures how much faster, with and without DKIM (whose RSA signature is
most of a signed message's CPU), and how much memory one sending process needs as the
list grows. Goal: two workers at least 1.6x one with DKIM on a 2-core machine.

Everything goes through the command line an operator uses, so the bench keeps
measuring the real thing whatever the ledger's insides become: the subscribers are
loaded by ``publisher subscribers import``, each run's issue is created by the
``Publisher`` facade with the send stopped before its first message (as ``digest send``
does, minus the sending), and then K ``publisher worker --once`` processes are
started together and timed until the last one exits (their start-up, about half a
second, counts: an operator waits for it too). Every run has an issue of its own on
the same store (20 new items each); runs are interleaved (1, 2, 3 workers, DKIM off
then on, ``--repeat`` times) so a busy spell hits every case alike.

Peak memory: for each of ``--memory-sizes`` a fresh store gets that many subscribers
and one worker sends the whole issue; the table gives that worker's maximum RSS
(the kernel's ``VmHWM`` of the process, see :func:`wait_all`), and the import's. 1M
takes several minutes.

Usage::

    .venv/bin/python bench/workers.py [--subscribers 100000] [--repeat 3] [--workers 1,2,3]
        [--memory-sizes 10000,100000,1000000] [--connections 4] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomlkit
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digests import CATEGORIES, LIST_SLUG, digest_items, smtp_sink, write_subscribers_csv  # noqa: E402
from memory import high_water_mb  # noqa: E402

from publisher.app import Publisher  # noqa: E402
from publisher.config import load_config  # noqa: E402
from publisher.store import Store  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(slots=True)
class Bench:
    """One store on PostgreSQL with N subscribers, a config per DKIM setting, and the sink."""

    base: Path
    url: str
    subscribers: int
    host: str
    port: int
    connections: int
    runs: int = 0

    def config(self, *, dkim: bool) -> Path:
        """The department's config.toml (written once per DKIM setting)."""
        path = self.base / ("config-dkim.toml" if dkim else "config.toml")
        if path.exists():
            return path
        data: dict[str, Any] = {
            "site": {
                "title": "Social Protection Department",
                "base_url": "https://www.example.org",
                "language": "en",
                "timezone": "Europe/Zurich",
                "postal_address": "Route des Morillons 4, 1211 Geneva 22, Switzerland",
            },
            "storage": {"url": self.url},
            "feeds": {"output_dir": str(self.base / "public")},
            "outbox": {"path": str(self.base / "outbox")},
            "smtp": {"host": self.host, "port": self.port, "connections": self.connections},
            "delivery": {"journal_dir": str(self.base / "journal")},
            "categories": CATEGORIES,
            "sources": [{"name": "bench", "type": "directory", "path": str(self.base / "content")}],
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
        if dkim:
            key = self.base / "dkim.pem"
            if not key.exists():
                command = ["openssl", "genrsa", "-out", str(key), "2048"]
                subprocess.run(command, check=True, capture_output=True)
            data["dkim"] = {"selector": "bench", "domain": "example.org", "key_path": str(key)}
        (self.base / "content").mkdir(exist_ok=True)
        path.write_text(tomlkit.dumps(data), encoding="utf-8")
        return path

    def cli(self, *args: str, dkim: bool = False) -> subprocess.Popen[bytes]:
        """``publisher --config ... ARGS`` from this checkout, output discarded (a sink is quiet)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "publisher.cli", "--config", str(self.config(dkim=dkim)), *args]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def import_subscribers(self) -> tuple[float, float]:
        """``subscribers import`` of N rows: (seconds, peak RSS MB of the importing process)."""
        csv_path = self.base / "subscribers.csv"
        write_subscribers_csv(csv_path, self.subscribers)
        started = time.perf_counter()
        (peak,) = wait_all([self.cli("subscribers", "import", LIST_SLUG, str(csv_path))])
        return time.perf_counter() - started, peak

    def new_issue(self, *, dkim: bool) -> tuple[int, float]:
        """This run's items and issue, created by the facade with the send stopped: (id, seconds)."""
        self.runs += 1
        publisher = Publisher(load_config(self.config(dkim=dkim)), Store(self.url))
        now = publisher.clock()
        items = [  # new ids and links: an issue never repeats an item or a story
            dataclasses.replace(
                item,
                id=f"urn:bench:{self.runs}:{n}",
                link=f"{item.link}?run={self.runs}",
                published=now - timedelta(minutes=n),
            )
            for n, item in enumerate(digest_items(now))
        ]
        publisher.store.items.save(items, [], now)
        publisher.request_stop()  # create the issue only; the workers deliver it
        started = time.perf_counter()
        report = asyncio.run(publisher.send_digest(LIST_SLUG, force=True))
        elapsed = time.perf_counter() - started
        publisher.close()
        if report.issue_id is None or report.sent:
            raise RuntimeError(f"no issue created: {report.note}")
        return report.issue_id, elapsed

    def sent(self, issue_id: int) -> int:
        engine = create_engine(self.url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM deliveries WHERE issue_id = :id AND status = 'sent'")
            count = conn.execute(query, {"id": issue_id}).scalar_one()
        engine.dispose()
        return int(count)

    def deliver(self, workers: int, *, dkim: bool) -> Run:
        """One issue delivered by ``workers`` processes started together."""
        issue_id, _ = self.new_issue(dkim=dkim)
        started = time.perf_counter()
        peaks = wait_all([self.cli("worker", "--once", dkim=dkim) for _ in range(workers)])
        elapsed = time.perf_counter() - started
        sent = self.sent(issue_id)
        if sent != self.subscribers:
            raise RuntimeError(f"{workers} worker(s) sent {sent} of {self.subscribers}")
        return Run(elapsed, max(peaks), os.getloadavg()[0])


def wait_all(processes: list[subprocess.Popen[bytes]]) -> list[float]:
    """Wait for each process and return its peak memory in MB; fail loudly.

    The peak is the kernel's high-water mark of the process's own memory (``VmHWM``),
    read every 50 ms until it exits, so growth in its last 50 ms would be missed (why not
    ``wait4``'s ``ru_maxrss``: :mod:`memory`).
    """
    peaks = [0.0] * len(processes)
    running = set(range(len(processes)))
    while running:
        for i in sorted(running):
            peaks[i] = max(peaks[i], high_water_mb(processes[i].pid))
            if processes[i].poll() is not None:
                running.discard(i)
        time.sleep(0.05)
    for proc in processes:
        if proc.returncode != 0:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}: {stderr[-2000:]}")
        if proc.stderr:
            proc.stderr.close()
    return peaks


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    peak_mb: float
    load: float


@dataclass(slots=True)
class Case:
    workers: int
    dkim: bool
    runs: list[Run] = field(default_factory=list)

    def rate(self, messages: int) -> float:
        return statistics.median(messages / r.seconds for r in self.runs)


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema on ``url``, dropped afterwards; its URL."""
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    schema = "bench_" + uuid.uuid4().hex[:10]
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def bench(size: int, args: argparse.Namespace, host: str, port: int) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory() as tmp, postgres_schema(args.postgres) as url:
        yield Bench(Path(tmp), url, size, host, port, args.connections)


def throughput(args: argparse.Namespace, host: str, port: int, console: Console) -> None:
    counts = [int(w) for w in args.workers.split(",")]
    cases = [Case(k, dkim) for dkim in (False, True) for k in counts]
    with bench(args.subscribers, args, host, port) as b:
        b.import_subscribers()
        for _ in range(args.repeat):
            for case in cases:
                case.runs.append(b.deliver(case.workers, dkim=case.dkim))
    table = Table(
        title=f"{args.subscribers:,} messages into smtp-sink, PostgreSQL, {args.connections} SMTP "
        f"connections per worker; median of {args.repeat} ({datetime.now(UTC):%Y-%m-%d})"
    )
    for column in ("DKIM", "workers", "messages/s", "vs 1 worker", "runs, msg/s", "peak RSS MB", "load"):
        table.add_column(column, justify="left" if column == "DKIM" else "right")
    for case in cases:
        one = next(c for c in cases if c.dkim == case.dkim and c.workers == counts[0])
        rate = case.rate(args.subscribers)
        table.add_row(
            "on" if case.dkim else "off",
            str(case.workers),
            f"{rate:,.0f}",
            f"{rate / one.rate(args.subscribers):.2f}x",
            " ".join(f"{args.subscribers / r.seconds:,.0f}" for r in case.runs),
            f"{statistics.median(r.peak_mb for r in case.runs):.0f}",
            " ".join(f"{r.load:.1f}" for r in case.runs),
        )
    console.print(table)


def memory(args: argparse.Namespace, host: str, port: int, console: Console) -> None:
    table = Table(title="One worker sends a whole issue (DKIM off): peak memory by list size")
    columns = ("subscribers", "import s", "import peak MB", "issue s", "send s", "messages/s")
    for column in (*columns, "worker peak MB"):
        table.add_column(column, justify="right")
    for size in (int(s) for s in args.memory_sizes.split(",") if s.strip()):
        with bench(size, args, host, port) as b:
            import_seconds, import_peak = b.import_subscribers()
            issue_id, issue_seconds = b.new_issue(dkim=False)
            started = time.perf_counter()
            (peak,) = wait_all([b.cli("worker", "--once")])
            elapsed = time.perf_counter() - started
            if b.sent(issue_id) != size:
                raise RuntimeError(f"sent {b.sent(issue_id)} of {size}")
        table.add_row(
            f"{size:,}",
            f"{import_seconds:.1f}",
            f"{import_peak:.0f}",
            f"{issue_seconds:.1f}",
            f"{elapsed:.1f}",
            f"{size / elapsed:,.0f}",
            f"{peak:.0f}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000, help="messages of each throughput run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="1,2,3", help="worker counts to compare (first is the baseline)")
    parser.add_argument("--connections", type=int, default=4, help="[smtp] connections of each worker")
    parser.add_argument("--memory-sizes", default="10000,100000", help="list sizes for peak RSS ('' skips)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--postgres", default=DEFAULT_PG)
    args = parser.parse_args()
    console = Console(width=150)
    load = os.getloadavg()
    console.print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    with smtp_sink() as (host, port):
        if not args.skip_throughput:
            throughput(args, host, port, console)
        if args.memory_sizes.strip():
            memory(args, host, port, console)
    load = os.getloadavg()
    console.print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
