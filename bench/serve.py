"""The feed as readers fetch it: ``publisher run`` against nginx in front of the same files.

Why: feed readers poll ``feeds/all.atom.xml`` every few minutes, mostly with
``If-None-Match`` or ``If-Modified-Since`` (a 304), sometimes for the whole document (a
200). ``publisher run`` serves ``public/`` itself (:mod:`publisher.web.static`);
``deploy/nginx-publisher.conf`` lets nginx serve it instead. This measures both with
the same client, wrk, so the README can say what each carries.

The store holds ``--items`` items (the feed shows the newest 50, as ``[feeds]``
defaults say), built once by the ``Publisher`` facade. ``publisher run`` is started
through its command line on a free port; nginx (Debian's, ``make system-deps``) with a
throw-away config whose site is ``deploy/nginx-publisher.conf`` with only its listen
port, root and upstream rewritten (as ``tests/test_deploy.py`` does), one worker
process unless ``--nginx-workers``, access log off. Each case runs ``--duration``
seconds of wrk (``--threads`` threads, ``--connections`` connections), ``--repeat``
times interleaved, and the table shows the median requests/s and the median of the
runs' 99th-percentile latency. Every case's answer is checked first (status, length).

Usage: ``python bench/serve.py [--items 200] [--duration 10] [--repeat 3]
[--connections 32] [--threads 2] [--nginx-workers 1]`` (wrk: ``make bench-deps``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import tomlkit
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from publisher.app import Publisher  # noqa: E402
from publisher.config import load_config  # noqa: E402
from publisher.models import Item  # noqa: E402
from publisher.store import Store  # noqa: E402

NGINX = "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx-publisher.conf"
FEED = "/feeds/all.atom.xml"
SUMMARY = (
    "<p>The department published its annual review of social protection coverage, with "
    "figures on pensions, unemployment benefits and child allowances in 40 countries, "
    "and recommendations for closing the gaps that remain for informal workers.</p>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer at {url}") from None
            time.sleep(0.1)


def write_site(base: Path, items: int) -> Path:
    """config.toml, a SQLite store with ``items`` items and the built public/; the config's path."""
    data: dict[str, Any] = {
        "site": {
            "title": "Social Protection Department",
            "base_url": "https://www.example.org",
            "language": "en",
            "postal_address": "Route des Morillons 4, 1211 Geneva 22, Switzerland",
        },
        "storage": {"url": f"sqlite:///{base / 'publisher.db'}"},
        "feeds": {"output_dir": str(base / "public")},
        "outbox": {"path": str(base / "outbox")},
        "web": {"host": "127.0.0.1", "port": free_port()},
        "categories": [{"slug": "news", "title": "News", "labels": ["News"]}],
        "sources": [{"name": "bench", "type": "directory", "path": str(base / "content")}],
    }
    (base / "content").mkdir()
    config = base / "config.toml"
    config.write_text(tomlkit.dumps(data), encoding="utf-8")
    publisher = Publisher(load_config(config), Store(data["storage"]["url"]))
    now = publisher.clock()
    publisher.store.items.save(
        [
            Item(
                id=f"urn:bench:{n}",
                source="bench",
                title=f"Social protection report {n}: coverage gaps and how to close them",
                link=f"https://www.example.org/news/report-{n}",
                published=now - timedelta(hours=n),
                updated=now - timedelta(hours=n),
                language="en",
                summary=SUMMARY,
                label="News",
                category="news",
                content_hash=f"h{n}",
            )
            for n in range(items)
        ],
        [],
        now,
    )
    publisher.build()
    publisher.close()
    return config


@contextlib.contextmanager
def publisher_run(config: Path) -> Iterator[str]:
    """``publisher run`` on the config's [web] port; its base URL."""
    port = load_config(config).web.port
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "publisher.cli", "--config", str(config), "run"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + FEED, proc, "publisher run")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.contextmanager
def nginx(folder: Path, public: Path, upstream_port: int, workers: int) -> Iterator[str]:
    """Debian's nginx with the deploy site (port, root and upstream rewritten); its base URL."""
    port = free_port()
    site = SITE.read_text(encoding="utf-8")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "")
    site = site.replace("root /opt/publisher/public;", f"root {public};")
    site = site.replace("alias /opt/publisher/public/;", f"alias {public}/;")
    site = site.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{upstream_port}")
    if str(public) not in site or f"127.0.0.1:{port}" not in site:
        raise RuntimeError("deploy/nginx-publisher.conf changed shape: update bench/serve.py")
    folder.mkdir()
    (folder / "site.conf").write_text(site, encoding="utf-8")
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"  {kind}_temp_path {folder / kind};" for kind in kinds)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes {workers};\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n  sendfile on;\n{temp}\n"
        f"  include {folder / 'site.conf'};\n}}\n",
        encoding="utf-8",
    )
    checked = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(conf)], capture_output=True)
    if checked.returncode != 0:
        raise RuntimeError(checked.stderr.decode())
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + FEED, proc, "nginx")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(slots=True)
class Case:
    server: str
    request: str
    url: str
    headers: dict[str, str]
    status: int
    rates: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def cases_for(server: str, base: str) -> list[Case]:
    """200, 304 by ETag and 304 by date, each checked once before it is measured."""
    first = httpx.get(base + FEED)
    first.raise_for_status()
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    cases = [
        Case(server, f"200 ({len(first.content) / 1024:.0f} KiB)", base + FEED, {}, 200),
        Case(server, "304, If-None-Match", base + FEED, {"If-None-Match": etag}, 304),
        Case(server, "304, If-Modified-Since", base + FEED, {"If-Modified-Since": modified}, 304),
    ]
    for case in cases:
        answer = httpx.get(case.url, headers=case.headers)
        if answer.status_code != case.status or (case.status == 200 and answer.content != first.content):
            raise RuntimeError(f"{server} {case.request}: got {answer.status_code}")
    return cases


_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(case: Case, args: argparse.Namespace) -> None:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    for name, value in case.headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, case.url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors for {case.server} {case.request}:\n{out}")
    rate, p99 = _RATE.search(out), _P99.search(out)
    if rate is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    case.rates.append(float(rate.group(1)))
    case.p99_ms.append(float(p99.group(1)) * _UNIT_MS[p99.group(2)])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes")
    args = parser.parse_args()
    for tool in ("wrk", NGINX):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: `make bench-deps` installs wrk, `make system-deps` nginx")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        config = write_site(base, args.items)
        with publisher_run(config) as app:
            port = int(app.rsplit(":", 1)[1])
            with nginx(base / "nginx", base / "public", port, args.nginx_workers) as proxy:
                cases = cases_for("publisher run", app) + cases_for("nginx", proxy)
                for _ in range(args.repeat):
                    for case in cases:
                        run_wrk(case, args)
    after = os.getloadavg()
    table = Table(
        title=f"GET {FEED} with wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
        f"median of {args.repeat} ({datetime.now(UTC):%Y-%m-%d}; load {load[0]:.1f} before, "
        f"{after[0]:.1f} after; {os.cpu_count()} CPUs, nginx worker_processes {args.nginx_workers})"
    )
    for column in ("server", "request", "requests/s", "runs", "p99 ms", "vs publisher run"):
        table.add_column(column, justify="left" if column in ("server", "request") else "right")
    by_request = {c.request: statistics.median(c.rates) for c in cases if c.server == "publisher run"}
    for case in cases:
        rate = statistics.median(case.rates)
        table.add_row(
            case.server,
            case.request,
            f"{rate:,.0f}",
            " ".join(f"{r:,.0f}" for r in case.rates),
            f"{statistics.median(case.p99_ms):.1f}",
            f"{rate / by_request[case.request]:.1f}x",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
