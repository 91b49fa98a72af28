"""The command line: a thin front over :class:`publisher.app.Publisher`.

Each command loads the config, calls one library method and prints the outcome.
Errors from the library become one clear line and an exit code (Datasette's
StartupError -> ClickException): 0 success, 1 the work failed, 2 usage or config.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from publisher.app import Publisher
from publisher.config import Settings, load_config
from publisher.errors import ConfigError, PublisherError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("job", "run", "schedule", "source", "list"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(fmt: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("aiosmtplib", "httpx", "httpcore", "alembic", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Context:
    """Lazily loaded config and publisher, shared by the commands of one invocation."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self._publisher: Publisher | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_config(self.config_path)
        return self._settings

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            self._publisher = Publisher(self.settings)
        return self._publisher


def handle_errors(func: F) -> F:
    """Turn library errors into one line on stderr and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as e:
            err_console.print(f"[red]configuration error:[/red] {e}", markup=True)
            sys.exit(2)
        except PublisherError as e:
            err_console.print(f"[red]error:[/red] {e}", markup=True)
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config.toml"),
    show_default=True,
    help="Path of config.toml.",
)


def with_context(func: F) -> F:
    """Give every command its own --config, as the contract says."""

    @config_option
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: Path, **kwargs: Any) -> Any:
        return func(Context(config_path), *args, **kwargs)

    return handle_errors(wrapper)  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="Log line format.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="publisher")
def cli(log_format: str, verbose: bool) -> None:
    """Publish a department's news as per-category feeds and email digests."""
    setup_logging(log_format, verbose)


# -- feeds ------------------------------------------------------------------------


@cli.command()
@with_context
def check(ctx: Context) -> None:
    """Validate config.toml and report every problem (exit 2 when invalid)."""
    settings = ctx.settings
    console.print(
        f"[green]ok[/green] {ctx.config_path}: {len(settings.sources)} source(s), "
        f"{len(settings.categories)} categories, {len(settings.lists)} list(s), "
        f"{len(settings.schedules)} schedule(s)"
    )


def print_ingest(report: Any) -> None:
    for failure in report.failed:
        err_console.print(f"[red]source failed:[/red] {failure}")
    for rejected in report.rejected:
        err_console.print(f"[yellow]item rejected:[/yellow] {rejected}")
    for warning in getattr(report, "warnings", []):
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(
        f"ingest: {report.new_count} new, {report.changed_count} changed, "
        f"{report.unchanged_count} unchanged, {len(report.rejected)} rejected, "
        f"{len(report.failed)} source(s) failed"
    )


def print_build(report: Any) -> None:
    console.print(f"build: {len(report.written)} file(s) written, {len(report.unchanged)} unchanged")


@cli.command()
@with_context
def ingest(ctx: Context) -> None:
    """Read every source into the store (exit 1 if a source failed or an item was rejected)."""
    report = ctx.publisher.ingest()
    print_ingest(report)
    if not report.ok:
        sys.exit(1)


@cli.command()
@with_context
def build(ctx: Context) -> None:
    """Write feeds, OPML and index.html under feeds.output_dir (only changed files)."""
    print_build(ctx.publisher.build())


@cli.command()
@click.option("--limit", type=int, default=100, show_default=True, help="How many items to list.")
@click.option("--category", default=None, help="Only this category's items (its slug).")
@with_context
def items(ctx: Context, limit: int, category: str | None) -> None:
    """List stored items, newest first: id, category, date, title."""
    table = Table("id", "category", "published", "title")
    for item in ctx.publisher.items(limit=limit, category=category):
        table.add_row(item.id, item.category or "-", item.published.date().isoformat(), item.title)
    console.print(table)


def _serve(publisher: Publisher, host: str | None, port: int | None) -> None:
    import uvicorn

    from publisher.web.app import create_app

    web = publisher.settings.web
    host, port = host or web.host, port if port is not None else web.port
    console.print(f"serving {publisher.settings.feeds.output_dir} on http://{host}:{port}/")
    for url in publisher.feed_urls():
        console.print(f"  {url}")
    uvicorn.run(create_app(publisher), host=host, port=port, log_level="warning")


@cli.command()
@click.option("--host", default=None, help="Override [web] host.")
@click.option("--port", type=int, default=None, help="Override [web] port.")
@with_context
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve public/ and the subscriber pages (ETag, Last-Modified, 304s)."""
    _serve(ctx.publisher, host, port)


def main() -> None:
    cli(prog_name="publisher")


if __name__ == "__main__":
    main()
