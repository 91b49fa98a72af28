"""Subscriber import and issue creation at list scale, on SQLite and PostgreSQL.

Why: the subscriber file of a list is imported before each of its sends, and an issue
creates one delivery row per subscriber; both must stay short at a million. Goals:
import at least 50,000 rows/s on PostgreSQL (COPY, :mod:`publisher.store.subscriber_copy`),
20,000 on SQLite; an issue for 1M subscribers in under 30 s on PostgreSQL (one
``INSERT ... SELECT``, :func:`publisher.store.issues._insert_confirmed`).

Each case runs ``--repeat`` times on a fresh store (a fresh schema on PostgreSQL) and
the table shows the median: "first import" loads the file into an empty store,
"re-import" loads it again into the filled one (every row unchanged: what each send
costs), "store only" is the same first import without the parse (``import_rows`` of
the parsed rows), and "issue" creates one issue with its deliveries on the filled
store. "parse" is reading and validating the file alone (no store). CPU is this
process's; on PostgreSQL the server's share is the difference to wall time. A second
table gives the peak memory (RSS) of a fresh process reading the file and of one doing
a first import, beside Python with the publisher imported and nothing done.

On PostgreSQL one more row is the baseline: ``COPY`` of the same parsed rows into a
table with no index, key or constraint, the way the import's first step copies them
into its temporary table. "store only" divided by it (the "× COPY" column) says what
the import's plan, keys and checks add to getting the bytes into the server, a figure
that carries from one machine to another better than rows/s.

Usage::

    .venv/bin/python bench/import.py [--rows 1000000] [--repeat 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets as secrets_module
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import high_water_mb  # noqa: E402

from publisher.config import Settings, settings_from_dict  # noqa: E402
from publisher.models import Consent  # noqa: E402
from publisher.store import Store  # noqa: E402
from publisher.store.subscriber_import import ImportRow  # noqa: E402
from publisher.subscriptions import import_csv, read_subscriber_csv  # noqa: E402

LANGUAGES = ["en", "fr-CH", "es", "es-MX", ""]  # offered ones only: others are rejected
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
T = TypeVar("T")
Fresh = Callable[[Path], AbstractContextManager[str]]  # a fresh, empty store's URL while open


def write_rows(path: Path, rows: int) -> None:
    """A realistic file: mixed-case domains, accented names, languages, one attribute."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "language", "organisation"])
        for i in range(rows):
            writer.writerow(
                [
                    f"Person.{i}@Example{i % 97}.ORG",
                    f"Zoë Müller-Ñúñez {i}",
                    LANGUAGES[i % len(LANGUAGES)],
                    f"Ministry {i % 13}",
                ]
            )


def settings_for(url: str, base: Path) -> Settings:
    return settings_from_dict(
        {
            "site": {"postal_address": "Route des Morillons 4, 1211 Geneva 22, Switzerland"},
            "storage": {"url": url},
            "lists": [{"slug": "weekly", "name": "Weekly", "sender": "News <news@example.org>"}],
        },
        base / "config.toml",
    )


@dataclass(slots=True)
class Case:
    """One row of the table: wall and CPU seconds of each run."""

    store: str
    name: str
    count: int
    runs: list[tuple[float, float]] = field(default_factory=list)
    baseline: Case | None = None  # the "× COPY" column: this case's median over the baseline's

    @property
    def wall(self) -> float:
        return statistics.median(w for w, _ in self.runs)

    def timed(self, run: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        self.runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        return result


@contextmanager
def sqlite_store(base: Path) -> Iterator[str]:
    db = base / f"{uuid.uuid4().hex}.db"
    try:
        yield f"sqlite:///{db}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def postgres_store(url: str) -> Fresh:
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))

    @contextmanager
    def make(_base: Path) -> Iterator[str]:
        schema = "bench_" + uuid.uuid4().hex[:10]
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{url}?options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    return make


_BARE_TABLE = (
    "CREATE TABLE bare_file (ord integer, email_hash text, email text, name text, language text,"
    " attributes json, status text, secret text)"
)


def copy_bare(url: str, parsed: list[ImportRow], secrets: list[str]) -> None:
    """The baseline: the import's first step alone, into a table with nothing to check or index."""
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(_BARE_TABLE)
        columns = "ord, email_hash, email, name, language, attributes, status, secret"
        with cursor.copy(f"COPY bare_file ({columns}) FROM STDIN") as copy:
            for n, (row, secret) in enumerate(zip(parsed, secrets, strict=True), start=1):
                attributes = json.dumps(row.attributes, ensure_ascii=False)
                copy.write_row(
                    (n, row.hash, row.email, row.name, row.language, attributes, row.status.value, secret)
                )


def bench_backend(label: str, fresh: Fresh, csv_path: Path, rows: int, base: Path, repeat: int) -> list[Case]:
    first = Case(label, "first import (parse + store)", rows)
    again = Case(label, "re-import, unchanged", rows)
    store_only = Case(label, "first import, store only", rows)
    issue = Case(label, "issue: deliveries created", rows)
    bare = Case(label, "baseline: COPY into a bare table", rows)
    parsed, _, _ = read_subscriber_csv(csv_path)
    with_baseline = label == "postgresql"  # COPY is PostgreSQL's
    secrets = [secrets_module.token_hex(32) for _ in parsed] if with_baseline else []
    for _ in range(repeat):
        with fresh(base) as url:
            store = Store(url)
            now = datetime.now(UTC)
            run = partial(import_csv, settings_for(url, base), store, "weekly", csv_path, now=now)
            first.timed(run)
            again.timed(run)
            assert store.subscribers.count_confirmed("weekly") == rows
            created = issue.timed(partial(create_issue, store, now))
            assert created is not None and created[1] == rows, created
            store.close()
        with fresh(base) as url:
            store = Store(url)
            consent = Consent(at=datetime.now(UTC), method="import", source=csv_path.name)
            store_only.timed(partial(store.subscribers.import_rows, "weekly", parsed, consent, "en"))
            store.close()
        if with_baseline:
            with fresh(base) as url:
                bare.timed(partial(copy_bare, url, parsed, secrets))
    if not with_baseline:
        return [first, store_only, again, issue]
    store_only.baseline = bare
    return [first, store_only, again, issue, bare]


def create_issue(store: Store, now: datetime) -> tuple[int, int] | None:
    """What ``digest send`` does first: the issue, its items and one delivery per subscriber."""
    return store.issues.create(
        list_slug="weekly",
        period_key="2026-W48",
        period_start=now,
        schedule=None,
        subject="Weekly digest",
        item_ids=[f"urn:bench:{n}" for n in range(20)],
        now=now,
    )


def peak_child(what: str, csv_path: Path, url: str) -> None:
    """In a fresh process (``--peak``): do one thing and print the peak RSS in MB."""
    if what == "read":
        read_subscriber_csv(csv_path)
    elif what == "import":
        store = Store(url)
        import_csv(settings_for(url, csv_path.parent), store, "weekly", csv_path, now=datetime.now(UTC))
        store.close()
    print(round(high_water_mb()))


def peak_mb(what: str, csv_path: Path, url: str = "") -> int:
    """The peak memory of :func:`peak_child` doing ``what``, in its own process."""
    done = subprocess.run(
        [sys.executable, __file__, "--peak", what, str(csv_path), url],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.split()[-1])  # the last line: what the child printed


def memory_table(csv_path: Path, rows: int, base: Path, stores: list[tuple[str, Fresh]]) -> Table:
    """Peak memory (RSS) of one process: Python alone, reading the file, a first import."""
    table = Table(title=f"Peak memory of one process, {rows:,} rows (RSS, fresh process each)")
    for column in ("store", "case", "peak MB"):
        table.add_column(column, justify="right" if column == "peak MB" else "left")
    table.add_row("-", "Python with the publisher imported", str(peak_mb("nothing", csv_path)))
    table.add_row("-", "read and validate the file", str(peak_mb("read", csv_path)))
    for label, fresh in stores:
        with fresh(base) as url:
            table.add_row(label, "first import (read + store)", str(peak_mb("import", csv_path, url)))
    return table


def main() -> None:
    if sys.argv[1:2] == ["--peak"]:
        peak_child(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    args = parser.parse_args()
    load_before = os.getloadavg()
    cases: list[Case] = []
    stores: list[tuple[str, Fresh]] = []
    if not args.no_sqlite:
        stores.append(("sqlite", sqlite_store))
    if args.postgres:
        stores.append(("postgresql", postgres_store(args.postgres)))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        csv_path = base / "subscribers.csv"
        write_rows(csv_path, args.rows)
        parse = Case("-", "parse + validate only", args.rows)
        for _ in range(args.repeat):
            parse.timed(lambda: read_subscriber_csv(csv_path))
        cases.append(parse)
        for label, fresh in stores:
            cases += bench_backend(label, fresh, csv_path, args.rows, base, args.repeat)
        memory = memory_table(csv_path, args.rows, base, stores)
    load = os.getloadavg()
    title = (
        f"Subscriber import and issue creation, {args.rows:,} rows, median of {args.repeat} "
        f"(load average {load_before[0]:.1f} before, {load[0]:.1f} after)"
    )
    table = Table(title=title)
    for column in ("store", "case", "wall s", "rows/s", "client CPU s", "× COPY", "runs, s"):
        table.add_column(column, justify="left" if column in ("store", "case") else "right")
    for case in cases:
        wall = case.wall
        cpu = statistics.median(c for _, c in case.runs)
        table.add_row(
            case.store,
            case.name,
            f"{wall:.2f}",
            f"{case.count / wall:,.0f}",
            f"{cpu:.2f}",
            f"{wall / case.baseline.wall:.1f}" if case.baseline else "",
            " ".join(f"{w:.1f}" for w, _ in case.runs),
        )
    Console(width=140).print(table)
    Console(width=140).print(memory)


if __name__ == "__main__":
    main()
