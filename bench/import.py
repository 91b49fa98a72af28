"""Subscriber import throughput: generated CSV rows per second into a fresh store.

The goal is at least 20,000 rows/s on SQLite. Each case runs three times on a fresh
store and reports the median; "re-import" loads the same file again into the filled
store (every row unchanged), which is what a list's ``subscribers`` file costs before
each send. Usage::

    .venv/bin/python bench/import.py [--rows 100000] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from publisher.config import Settings, settings_from_dict
from publisher.store import Store
from publisher.subscriptions import import_csv, read_subscriber_csv

LANGUAGES = ["en", "fr-CH", "es", "es-MX", ""]  # offered ones only: others are rejected


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
            "storage": {"url": url},
            "lists": [{"slug": "weekly", "name": "Weekly", "sender": "News <news@example.org>"}],
        },
        base / "config.toml",
    )


def timed(run: Callable[..., object], *args: object) -> tuple[float, float]:
    """Wall-clock and CPU seconds of this process (CPU shows what a busy machine hides)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


Result = tuple[str, str, list[tuple[float, float]]]


def bench_backend(
    label: str, make_url: Callable[[], tuple[str, Callable[[], None]]], csv_path: Path, rows: int, base: Path
) -> list[Result]:
    """A first import and a re-import, each on three fresh stores."""
    first: list[tuple[float, float]] = []
    again: list[tuple[float, float]] = []
    for _ in range(3):
        url, cleanup = make_url()
        store = Store(url)
        settings = settings_for(url, base)
        run = partial(import_csv, store, settings, "weekly", csv_path, now=datetime.now(UTC))
        first.append(timed(run))
        again.append(timed(run))
        assert store.subscribers.counts_by_status("weekly")["confirmed"] == rows
        store.close()
        cleanup()
    return [(label, "first import", first), (label, "re-import (unchanged)", again)]


def sqlite_urls(base: Path) -> Callable[[], tuple[str, Callable[[], None]]]:
    def make() -> tuple[str, Callable[[], None]]:
        db = base / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{db}", lambda: None

    return make


def postgres_urls(url: str) -> Callable[[], tuple[str, Callable[[], None]]]:
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))

    def make() -> tuple[str, Callable[[], None]]:
        schema = "bench_" + uuid.uuid4().hex[:10]
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

        return f"{url}?options=-csearch_path%3D{schema}", drop

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", default="", help="also measure this PostgreSQL URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        csv_path = base / "subscribers.csv"
        write_rows(csv_path, args.rows)
        parse = [timed(read_subscriber_csv, csv_path) for _ in range(3)]
        results: list[Result] = [("-", "parse + validate only", parse)]
        results += bench_backend("sqlite", sqlite_urls(base), csv_path, args.rows, base)
        if args.postgres:
            results += bench_backend("postgresql", postgres_urls(args.postgres), csv_path, args.rows, base)
    load = os.getloadavg()[0]
    table = Table(title=f"Subscriber import, {args.rows:,} rows, median of 3 runs (load average {load:.1f})")
    for column in ("store", "case", "wall s", "rows/s", "CPU s", "rows/CPU s"):
        table.add_column(column, justify="left" if column in ("store", "case") else "right")
    for store, case, runs in results:
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        table.add_row(
            store, case, f"{wall:.2f}", f"{args.rows / wall:,.0f}", f"{cpu:.2f}", f"{args.rows / cpu:,.0f}"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
