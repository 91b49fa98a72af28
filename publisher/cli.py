"""The command line: a thin front over :class:`publisher.app.Publisher`.

Each command loads the config, calls one library method and prints the outcome.
Errors from the library become one clear line and an exit code (Datasette's
StartupError -> ClickException): 0 success, 1 the work failed, 2 usage or config.

Much of what is printed comes from outside (item titles, labels, subscriber names,
file names): the consoles never read console markup or emoji codes, so a ``[/]`` in
a title cannot crash a command and ``[white on white]`` cannot hide a line. Colour is
given only by explicit styles (:func:`labelled`), never by markup in a string.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from publisher.app import (
    WORKER_INTERVAL_MAX,
    WORKER_INTERVAL_MIN,
    ItemChange,
    Publisher,
    check_config,
    hash_admin_password,
    inert_json,
)
from publisher.config import Settings, load_config
from publisher.errors import ConfigError, MailError, OutputError, PublisherError, SchedulerError
from publisher.models import (
    NOT_SENT,
    WHY_STATUSES,
    DeliveryStatus,
    ListedItem,
    SubscriptionStatus,
    Unsubscribe,
)

if TYPE_CHECKING:
    from publisher.digests import DigestReport, FailureReport
    from publisher.feeds import BuildReport
    from publisher.ingest import IngestReport
    from publisher.ledger import DeliveryTally
    from publisher.store.feedback import FeedbackRates
    from publisher.store.issues import FailedDelivery, IssueSummary
    from publisher.store.runs import JobRun
    from publisher.store.subscribers import SubscriberRecord
    from publisher.subscriptions import ImportReport

log = logging.getLogger("publisher.cli")


def make_console(*, stderr: bool = False) -> Console:
    """A console that reads no markup and, when piped, never cuts or wraps a line.

    Rich lays tables out for 80 columns when its output is not a terminal, which cut
    names (``every-…``) and wrapped messages mid-sentence for ``| cat`` and scripts;
    piped, lines are as long as their text.
    """
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty()
    return Console(
        stderr=stderr,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=piped,
        width=1_000_000 if piped else None,
    )


console = make_console()
err_console = make_console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def labelled(label: str, style: str, message: object) -> Text:
    """``label message`` with the label styled; the message is printed as it is."""
    return Text.assemble((label, style), " ", str(message))


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
        return inert_json(json.dumps(data, ensure_ascii=False))


def setup_logging(fmt: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("aiosmtplib", "httpx", "httpcore", "alembic", "apscheduler"):
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
            err_console.print(labelled("configuration error:", "red", e))
            sys.exit(2)
        except PublisherError as e:
            err_console.print(labelled("error:", "red", e))
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


DEFAULT_CONFIG = Path("config.toml")


def config_option(**extra: Any) -> Callable[[F], F]:
    """``--config PATH``: on the group (with its env variable) and on every command."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Path of config.toml [default: $PUBLISHER_CONFIG, else ./config.toml].",
        **extra,
    )


def with_context(func: F) -> F:
    """Give every command its --config; also accepted before the command, or from the env.

    ``publisher --config x check`` and ``publisher check --config x`` are the same; the
    one after the command wins; ``PUBLISHER_CONFIG`` (read by the group's option) is
    used when neither is given.
    """

    @config_option()
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: Path | None, **kwargs: Any) -> Any:
        # The nearest given: `publisher items --config x hide ID` reads x, like the root's.
        outer = click.get_current_context().parent
        while config_path is None and outer is not None:
            config_path = outer.params.get("config_path")
            outer = outer.parent
        return func(Context(config_path or DEFAULT_CONFIG), *args, **kwargs)

    return handle_errors(wrapper)  # type: ignore[return-value]


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange, refusing ``nan`` (which every range comparison lets through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number from {self.min:g} to {self.max:g}.", param, ctx)
        return number


#: --limit of a listing: 0 listed nothing and a negative number listed everything.
LIMIT = click.IntRange(min=1)
#: --port: the same range as [web] port.
PORT = click.IntRange(0, 65535)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout (for scripts)."
)


def print_json(document: Any) -> None:
    """One JSON document on stdout; datetimes as ISO 8601 with their offset."""
    click.echo(inert_json(json.dumps(document, ensure_ascii=False, indent=2, default=_json_value)))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def local(value: datetime | None, settings: Settings) -> str:
    """A time in the site's zone, with the zone, as feeds and pages show it."""
    return _when(value, settings.site.tz)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option(envvar="PUBLISHER_CONFIG")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="Log line format.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="publisher")
def cli(config_path: Path | None, log_format: str, verbose: bool) -> None:
    """Publish a department's news as per-category feeds and email digests."""
    setup_logging(log_format, verbose)


# -- feeds ------------------------------------------------------------------------


@cli.command()
@with_context
def check(ctx: Context) -> None:
    """Validate config.toml, templates, subjects, subscriber files and the DKIM key (exit 2 on errors)."""
    settings = ctx.settings
    report = check_config(settings)  # never opens the store: nothing is created or migrated
    for warning in report.warnings:
        err_console.print(labelled("warning:", "yellow", warning))
    if not report.ok:
        raise ConfigError(f"{ctx.config_path}: {len(report.errors)} problem(s)", report.errors)
    console.print(
        labelled(
            "ok",
            "green",
            f"{ctx.config_path}: {len(settings.sources)} source(s), "
            f"{len(settings.categories)} categories, {len(settings.lists)} list(s), "
            f"{len(settings.schedules)} schedule(s)",
        )
    )


def print_ingest(report: IngestReport) -> None:
    for failure in report.failed:
        err_console.print(labelled("source failed:", "red", failure))
    for rejected in report.rejected:
        err_console.print(labelled("item rejected:", "yellow", rejected))
    for warning in report.warnings:
        err_console.print(labelled("warning:", "yellow", warning))
    console.print(
        f"ingest: {report.new_count} new, {report.changed_count} changed, "
        f"{report.unchanged_count} unchanged, {report.duplicate_count} duplicate(s), "
        f"{len(report.rejected)} rejected, {len(report.failed)} source(s) failed"
    )


def ingest_json(report: IngestReport) -> dict[str, Any]:
    """The ingest report as one JSON document (field names documented in the README)."""
    return {
        "ok": report.ok,
        "new": report.new,
        "changed": report.changed,
        "unchanged": len(report.unchanged),
        "duplicates": report.duplicates,
        "rejected": [{"where": e.where, "reason": e.reason} for e in report.rejected],
        "warnings": [{"where": e.where, "reason": e.reason} for e in report.warnings],
        "failed": [{"source": e.source, "reason": e.cause} for e in report.failed],
        "skipped": report.skipped,
        "sources": {
            name: {
                "new": c.new,
                "changed": c.changed,
                "unchanged": c.unchanged,
                "duplicates": c.duplicates,
                "rejected": c.rejected,
                "left_out": c.left_out,
                "not_modified": c.not_modified,
                "error": c.error,
            }
            for name, c in report.sources.items()
        },
    }


def print_build(report: BuildReport) -> None:
    deleted = f", {len(report.deleted)} deleted" if report.deleted else ""
    unchanged = len(report.unchanged) + report.unchanged_archive
    console.print(f"build: {len(report.written)} file(s) written, {unchanged} unchanged{deleted}")


def finish_hub_pings(publisher: Publisher, report: BuildReport) -> None:
    """A one-shot command waits (bounded) for its WebSub pings: its process is about to end."""
    if not report.hub_pings:
        return
    tally = publisher.finish_hub_pings()
    waiting = f", {tally.pending} still failing when the command ended (not retried)" if tally.pending else ""
    console.print(f"websub: {tally.sent} ping(s) sent, {tally.failed} failed{waiting}")


@cli.command()
@json_option
@with_context
def ingest(ctx: Context, as_json: bool) -> None:
    """Read every source into the store (exit 1 if a source failed or an item was rejected)."""
    report = ctx.publisher.ingest()
    if as_json:
        print_json(ingest_json(report))
    else:
        print_ingest(report)
    if not report.ok:
        sys.exit(1)


@cli.command()
@with_context
def build(ctx: Context) -> None:
    """Write feeds, OPML and index.html under feeds.output_dir (only changed files)."""
    report = ctx.publisher.build()
    print_build(report)
    finish_hub_pings(ctx.publisher, report)


@cli.group(invoke_without_command=True)
@click.option(
    "--limit", type=LIMIT, default=100, show_default=True, help="How many items to list (1 or more)."
)
@click.option("--category", default=None, help="Only this category's items (its slug).")
@json_option
@with_context
def items(ctx: Context, limit: int, category: str | None, as_json: bool) -> None:
    """List stored items, newest first: id, category, published (site time), state, title.

    State: shown, hidden (items hide), source-removed (its source left config.toml) or
    duplicate (an earlier source has the same link). `items hide|unhide ID` withdraws one.
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    found = ctx.publisher.items(limit=limit, category=category)
    if as_json:
        print_json([_listed_json(listed) for listed in found])
        return
    table = Table("id", "category", "published", "state", "title")
    for listed in found:
        item = listed.item
        table.add_row(
            item.id, item.category or "-", local(item.published, ctx.settings), _state(listed), item.title
        )
    console.print(table)


def _state(listed: ListedItem) -> str:
    if listed.duplicate_of:
        return f"{listed.state.value} of {listed.duplicate_of}"
    return listed.state.value


def _listed_json(listed: ListedItem) -> dict[str, Any]:
    item = listed.item
    return {
        "id": item.id,
        "source": item.source,
        "category": item.category,
        "label": item.label,
        "language": item.language,
        "title": item.title,
        "link": item.link,
        "published": item.published,
        "updated": item.updated,
        "image": item.image,
        "enclosure": (
            {"url": item.enclosure_url, "type": item.enclosure_type, "length": item.enclosure_length}
            if item.enclosure_url
            else None
        ),
        "hidden": listed.hidden,
        "state": listed.state.value,
        "duplicate_of": listed.duplicate_of,
    }


@items.command("hide")
@click.argument("item_id", metavar="ID")
@with_context
def items_hide(ctx: Context, item_id: str) -> None:
    """Withdraw item ID from every feed, index.html and future issue; feeds are rebuilt now."""
    _print_item_change(ctx.publisher.hide_item(item_id), "hidden", "already hidden")


@items.command("unhide")
@click.argument("item_id", metavar="ID")
@with_context
def items_unhide(ctx: Context, item_id: str) -> None:
    """Show item ID again (undoes `items hide`); feeds are rebuilt now."""
    _print_item_change(ctx.publisher.unhide_item(item_id), "unhidden", "not hidden")


def _print_item_change(change: ItemChange, done: str, already: str) -> None:
    item = change.item.item
    console.print(
        f"{done if change.changed else already}: {item.id} ({item.title}), now {_state(change.item)}"
    )
    if change.build is not None:
        print_build(change.build)


def _serve(publisher: Publisher, host: str | None, port: int | None) -> None:
    # The web front and uvicorn load only for `serve` and `run`: every other command
    # (and `--help`) starts without them.
    from publisher.web.app import ServedApp
    from publisher.web.server import StoppableServer, check_port, server_config

    config = server_config(ServedApp(publisher), publisher.settings.web, host=host, port=port)
    check_port(config.host, config.port)
    console.print(f"serving {publisher.settings.feeds.output_dir} on http://{config.host}:{config.port}/")
    for url in publisher.feed_urls():
        console.print(f"  {url}")
    console.print(publisher.admin_banner())
    server = StoppableServer(config)
    server.run()
    if not server.started:
        sys.exit(1)  # uvicorn logged why
    log.info("serve: stopped")


@cli.command()
@click.option("--host", default=None, help="Override [web] host.")
@click.option("--port", type=PORT, default=None, help="Override [web] port.")
@with_context
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve public/ and the subscriber pages (ETag, Last-Modified, 304s)."""
    _serve(ctx.publisher, host, port)


@cli.command()
@with_context
def publish(ctx: Context) -> None:
    """Ingest, build, then send every list's due digest once (exit 1 on any failure)."""
    publisher = ctx.publisher
    report = publisher.publish()
    print_ingest(report.ingest)
    print_build(report.build)
    for digest in report.digests:
        print_digest(digest, publisher.settings)
    finish_hub_pings(publisher, report.build)
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--host", default=None, help="Override [web] host.")
@click.option("--port", type=PORT, default=None, help="Override [web] port.")
@with_context
def run(ctx: Context, host: str | None, port: int | None) -> None:
    """Run the scheduler and the web server in one process (until SIGTERM)."""

    from publisher.daemon import run_daemon  # with the web front and the scheduler: see _serve

    sys.exit(asyncio.run(run_daemon(ctx.config_path, host=host, port=port)))


# -- digests ----------------------------------------------------------------------


def print_import(report: ImportReport, name: str, list_slug: str) -> None:
    for problem in report.rejected:
        err_console.print(labelled("rejected:", "yellow", problem))
    for warning in report.warnings:
        err_console.print(labelled("warning:", "yellow", warning))
    console.print(
        f"import {name} -> {list_slug}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.suppressed_kept} kept unsubscribed, "
        f"{len(report.rejected)} rejected, {report.duplicates} duplicate(s) merged"
    )


def unserved_text(list_slug: str, unserved: dict[str, int], languages: list[str]) -> str | None:
    """The subscribers a list skips for their language, said out loud (None when none)."""
    if not unserved:
        return None
    per_language = ", ".join(f"{language} {n}" for language, n in sorted(unserved.items()))
    return (
        f"{list_slug}: {sum(unserved.values())} subscriber(s) skipped for their language "
        f"({per_language}); the list's languages: {', '.join(languages)}"
    )


def _more(omitted: int) -> str:
    """How many items an issue covers without showing them (over the list's max_items)."""
    return f" ({omitted} more not included)" if omitted else ""


def print_digest(report: DigestReport, settings: Settings) -> None:
    imported = report.import_report
    if imported is not None and (imported.added or imported.rejected):  # quiet when nothing changed
        print_import(imported, "subscribers file", report.list_slug)
    skipped = unserved_text(
        report.list_slug, report.unserved, settings.list_config(report.list_slug).languages
    )
    if skipped:
        err_console.print(labelled("note:", "yellow", skipped))
    t = report.tally
    head = f"digest {report.list_slug} [{report.period_key}]"
    if report.created:
        shown = f"{report.items} item(s){_more(report.omitted)}"
        head += f": new issue, {shown} for {report.recipients} subscriber(s)"
    elif report.note:
        head += f": {report.note}"
    console.print(head)
    if report.queued is not None:  # [delivery] mode = "workers": the workers send
        n = report.queued
        console.print(f"  {n} {'delivery' if n == 1 else 'deliveries'} queued for `publisher worker`")
    if any((t.sent, t.deferred, t.failed, t.bounced, t.unknown, t.skipped, t.released)):
        console.print(
            f"  sent {t.sent}, deferred {t.deferred}, failed {t.failed}, bounced {t.bounced}, "
            f"unknown {t.unknown}, skipped {t.skipped}, left queued {t.released}"
        )


def digest_json(report: DigestReport) -> dict[str, Any]:
    """``digest send --json``: what the send did; ``queued`` is set in workers mode only."""
    t = report.tally
    return {
        "list": report.list_slug,
        "period": report.period_key,
        "issue_id": report.issue_id,
        "created": report.created,
        "items": report.items,
        "omitted": report.omitted,
        "recipients": report.recipients,
        "note": report.note,
        "sent": t.sent,
        "deferred": t.deferred,
        "failed": t.failed,
        "bounced": t.bounced,
        "unknown": t.unknown,
        "skipped": t.skipped,
        "left_queued": t.released,
        "queued": report.queued,
    }


@cli.group()
def digest() -> None:
    """Preview, send and inspect digest issues."""


@digest.command("preview")
@click.argument("list_slug", metavar="LIST")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("preview"),
    show_default=True,
    help="Folder for LIST.html and LIST.eml.",
)
@click.option(
    "--spam-check",
    is_flag=True,
    help="Also score LIST.eml with SpamAssassin (local tests only) and list every rule it hits; "
    "exit 1 when the score is above 0 or a rule adds points.",
)
@json_option
@with_context
def digest_preview(ctx: Context, list_slug: str, out_dir: Path, spam_check: bool, as_json: bool) -> None:
    """Render the next issue for a sample subscriber to .html and .eml; records nothing."""
    result = ctx.publisher.preview_digest(list_slug, out_dir, spam_check=spam_check)
    spam = result.spam
    if as_json:
        print_json(
            {
                "list": result.list_slug,
                "subject": result.subject,
                "items": result.items,
                "omitted": result.omitted,
                "files": result.files,
                "spam": spam.as_dict() if spam is not None else None,
            }
        )
    else:
        console.print(f"{result.subject!r}: {result.items} item(s){_more(result.omitted)}")
        for path in result.files:
            console.print(f"  wrote {path}")
        if spam is not None:
            console.print(
                f"SpamAssassin {spam.version}: {spam.score:+.1f} points (spam from {spam.required:.1f}), "
                f"{len(spam.rules)} rule(s) hit:"
            )
            for line in spam.lines():
                console.print(f"  {line}")
            if spam.clean:
                console.print("spam check passed: no rule adds points")
    if spam is not None and not spam.clean:
        names = ", ".join(f"{r.name} ({r.score:+.3f})" for r in spam.adding_points) or "none"
        err_console.print(
            labelled(
                "spam check failed:",
                "red",
                f"{spam.score:+.1f} points; rules adding points: {names}. Fix the template "
                "(README, 'Deliverability') and run the check again.",
            )
        )
        sys.exit(1)


@digest.command("send")
@click.argument("list_slug", metavar="LIST")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send and record nothing.")
@click.option(
    "--to",
    "to_address",
    default=None,
    metavar="ADDRESS",
    help="Send a test copy of the next issue to this address only; records nothing.",
)
@click.option("--force", is_flag=True, help="Create an extra issue even if this period's exists.")
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="Also resend messages whose outcome is unknown (connection lost after the text was sent): "
    "their recipients may get them twice.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the send's report as one JSON document.")
@with_context
def digest_send(
    ctx: Context,
    list_slug: str,
    dry_run: bool,
    to_address: str | None,
    force: bool,
    resend_unknown: bool,
    as_json: bool,
) -> None:
    """Send the current period's issue of LIST, once (and retry its due deliveries).

    With [delivery] mode = "workers" it only creates the issue and queues its
    deliveries; `publisher worker` processes send them.
    """
    publisher = ctx.publisher
    requeued: int | None = None
    if resend_unknown and not dry_run:
        requeued = publisher.requeue_unknown(list_slug)
        if not as_json:
            console.print(f"{requeued} message(s) of unknown outcome queued again")
    if dry_run:
        p = publisher.dry_run_digest(list_slug)
        skipped = unserved_text(list_slug, p.unserved, publisher.settings.list_config(list_slug).languages)
        if skipped:
            err_console.print(labelled("note:", "yellow", skipped))
        if as_json:
            print_json(
                {
                    "dry_run": True,
                    "list": list_slug,
                    "subject": p.subject if p.items else None,
                    "items": p.items,
                    "omitted": p.omitted,
                    "recipients": p.recipients,
                    "unserved": p.unserved,
                }
            )
        elif not p.items:
            console.print(f"dry run: list {list_slug}: nothing to send this period")
        else:
            console.print(
                f"dry run: {p.subject!r}: {p.items} item(s){_more(p.omitted)} to {p.recipients} subscriber(s)"
            )
        return
    if to_address:
        result = asyncio.run(publisher.send_test_copy(list_slug, to_address))
        if result is None:
            raise MailError(f"the test copy to {to_address} was not sent")
        if as_json:
            print_json(
                {
                    "test_copy": True,
                    "list": list_slug,
                    "to": to_address,
                    "status": result.status.value,
                    "code": result.code,
                    "text": result.text,
                }
            )
        else:
            outcome = " ".join(str(part) for part in (result.status, result.code, result.text) if part)
            console.print(f"test copy to {to_address}: {outcome}")
        if result.status is not DeliveryStatus.SENT:
            sys.exit(1)
        return
    with progress_bar() as progress:
        task = progress.add_task(f"sending {list_slug}", total=None)
        report = asyncio.run(
            publisher.send_digest(list_slug, force=force, progress=lambda n: progress.advance(task, n))
        )
    if as_json:
        print_json({**digest_json(report), "requeued_unknown": requeued})
    else:
        print_digest(report, publisher.settings)
    if not report.ok:
        sys.exit(1)


def progress_bar() -> Any:
    """A transient progress bar on stderr; descriptions (list and file names) are not markup.

    Off when stderr is not a terminal: there is nothing to redraw in a pipe or a log, and
    rich would still write an empty line there when the bar ends.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


@digest.command("status")
@click.argument("list_slug", metavar="[LIST]", required=False)
@click.option(
    "--limit", type=LIMIT, default=20, show_default=True, help="How many issues to list (1 or more)."
)
@json_option
@with_context
def digest_status(ctx: Context, list_slug: str | None, limit: int, as_json: bool) -> None:
    """Issues, newest first, with sent, deferred, failed and unknown counts, and per worker
    its host, pid, messages sent, rate, last seen and state (alive, ended, expired)."""
    rows = ctx.publisher.digest_status(list_slug, limit)
    warning = ctx.publisher.idle_queue_warning()
    if warning:
        err_console.print(labelled("warning:", "yellow", warning))
    if as_json:
        print_json([dataclasses.asdict(row) for row in rows])
        return
    table = Table(
        "issue",
        "list",
        "period",
        "created",
        "subject",
        "total",
        "sent",
        "pending",
        "deferred",
        "failed",
        "bounced",
        "unknown",
        "skipped",
        "soft bounces",
        "complaints",
    )
    for row in rows:
        table.add_row(
            str(row.id),
            row.list_slug,
            row.period_key,
            local(row.created, ctx.settings),
            row.subject,
            str(row.total),
            str(row.sent),
            str(row.pending + row.sending),
            str(row.deferred),
            str(row.failed),
            str(row.bounced),
            str(row.unknown),
            str(row.skipped),
            str(row.soft_bounces),
            str(row.complaints),
        )
    console.print(table)
    workers = Table("list", "period", "host", "pid", "sent", "msg/s", "last seen", "state", title="Workers")
    for row in rows:
        for w in row.workers:
            workers.add_row(
                row.list_slug,
                row.period_key,
                w.host,
                str(w.pid),
                str(w.sent),
                f"{w.rate:g}",
                local(w.last_seen, ctx.settings),
                w.state,
            )
    if workers.row_count:
        console.print(workers)


@digest.command("failures")
@click.argument("list_slug", metavar="[LIST]", required=False)
@click.option(
    "--issue", "issue_id", type=int, default=None, help="This issue (its id) instead of the newest."
)
@click.option(
    "--status",
    "statuses",
    type=click.Choice([s.value for s in WHY_STATUSES]),
    multiple=True,
    help=f"Only this status; repeat for several [default: {', '.join(s.value for s in NOT_SENT)}].",
)
@click.option(
    "--limit", type=LIMIT, default=50, show_default=True, help="How many deliveries to list (1 or more)."
)
@click.option(
    "--group", is_flag=True, help="Only the reasons: count per status, code and first line of reply."
)
@json_option
@with_context
def digest_failures(
    ctx: Context,
    list_slug: str | None,
    issue_id: int | None,
    statuses: tuple[str, ...],
    limit: int,
    group: bool,
    as_json: bool,
) -> None:
    """Why deliveries were not sent: each deferred, failed, bounced or unknown one with the
    server's last reply, newest attempt first, after the reasons counted.

    Looks at the newest issue of each list (or of LIST), or at --issue ID. Replies come
    from mail servers: control characters and escape sequences are shown as \\x1b, and a
    reply is cut at 240 characters (--json gives it whole).
    """
    wanted = tuple(DeliveryStatus(s) for s in statuses) or NOT_SENT
    report = ctx.publisher.delivery_failures(list_slug, issue_id=issue_id, statuses=wanted, limit=limit)
    if as_json:
        if group:
            print_json([dataclasses.asdict(reason) for reason in report.reasons])
        else:
            print_json([_failed_json(row) for row in report.deliveries])
        return
    print_failures(report, ctx.settings, group=group)


def _failed_json(row: FailedDelivery) -> dict[str, Any]:
    return {
        "issue": row.issue_id,
        "list": row.list_slug,
        "period": row.period_key,
        "address": row.email,
        "status": row.status,
        "attempts": row.attempts,
        "code": row.code,
        "text": row.text,
        "next_attempt": row.next_attempt,
        "last_attempt": row.last_attempt,
        "worker": row.worker,
    }


def _issue_counts(issue: IssueSummary) -> str:
    counts = {
        "sent": issue.sent,
        "queued": issue.pending + issue.sending,
        "deferred": issue.deferred,
        "failed": issue.failed,
        "bounced": issue.bounced,
        "unknown": issue.unknown,
        "skipped": issue.skipped,
    }
    shown = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    total = f"{issue.total} {'delivery' if issue.total == 1 else 'deliveries'}"
    return f"{issue.list_slug} {issue.period_key} (issue {issue.id}): {total}" + (
        f", {shown}" if shown else ""
    )


def _either(statuses: tuple[DeliveryStatus, ...]) -> str:
    """``deferred, failed or bounced``."""
    names = [s.value for s in statuses]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def print_failures(report: FailureReport, settings: Settings, *, group: bool) -> None:
    """``digest failures`` for people: the issues, the reasons, then the deliveries (escaped)."""
    if not report.issues:
        console.print("no issue yet")
        return
    for issue in report.issues:
        console.print(_issue_counts(issue))
    asked = ", ".join(s.value for s in report.statuses)
    if not report.total:
        console.print(f"nothing {_either(report.statuses)}")
        return
    reasons = Table(title=f"Why not sent ({asked})")
    reasons.add_column("count", justify="right")
    for heading in ("status", "code", "reason (first line of the reply)"):
        reasons.add_column(heading)
    for reason in report.reasons:
        reasons.add_row(
            str(reason.count), reason.status, str(reason.code or "-"), Text(reason.shown_reason or "-")
        )
    console.print(reasons)
    if group:
        return
    table = Table(
        "address",
        "list",
        "period",
        "issue",
        "status",
        "attempts",
        "code",
        "reply",
        "next attempt",
        "last attempt",
        "worker",
        title="Deliveries not sent, latest attempt first",
    )
    for row in report.deliveries:
        table.add_row(
            Text(row.email if row.email is not None else "(forgotten)"),
            row.list_slug,
            row.period_key,
            str(row.issue_id),
            row.status,
            str(row.attempts),
            str(row.code or "-"),
            Text(row.shown_text or "-"),
            local(row.next_attempt, settings),
            local(row.last_attempt, settings),
            Text(row.worker or "-"),
        )
    console.print(table)
    shown = len(report.deliveries)
    more = "; --limit N shows more, --group only the reasons" if shown < report.total else ""
    console.print(f"{shown} of {report.total} shown{more}")


@digest.command("requeue-unknown")
@click.argument("list_slug", metavar="[LIST]", required=False)
@click.option("--issue", "issue_id", type=int, default=None, help="Only this issue (its id).")
@click.option("--dry-run", is_flag=True, help="Show what would be requeued; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@with_context
def digest_requeue_unknown(
    ctx: Context, list_slug: str | None, issue_id: int | None, dry_run: bool, as_json: bool
) -> None:
    """Requeue messages an older version wrongly marked unknown during a relay outage.

    Only rows with the old text "sender stopped while this message was in flight; not
    resent"; a real crash mid-send wrote it too, so check the relay's logs first.
    """
    rows = ctx.publisher.requeue_stopped_unknown(list_slug, issue_id=issue_id, dry_run=dry_run)
    if as_json:
        found = [
            {"issue": r.issue_id, "list": r.list_slug, "period": r.period_key, "count": r.count} for r in rows
        ]
        print_json({"dry_run": dry_run, "issues": found, "total": sum(r.count for r in rows)})
        return
    verb = "would requeue" if dry_run else "requeued"
    for r in rows:
        click.echo(f"{r.list_slug} {r.period_key} (issue {r.issue_id}): {verb} {r.count} message(s)")
    click.echo(f"{verb} {sum(r.count for r in rows)} message(s) in total")


@cli.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option(
    "--interval",
    type=FiniteFloatRange(WORKER_INTERVAL_MIN, WORKER_INTERVAL_MAX),
    default=5.0,
    show_default=True,
    help=f"Seconds between queue polls ({WORKER_INTERVAL_MIN:g} to {WORKER_INTERVAL_MAX:g}).",
)
@with_context
def worker(ctx: Context, once: bool, interval: float) -> None:
    """Deliver queued and due-for-retry messages; run one per core for more speed.

    SIGTERM (or Ctrl-C) lets the messages in flight finish, leaves the rest queued and
    exits 0 with a last line.
    """
    publisher = ctx.publisher

    def report(tally: DeliveryTally) -> None:
        if tally.sent or tally.deferred or tally.failed or tally.bounced or tally.unknown:
            console.print(
                f"worker: sent {tally.sent}, deferred {tally.deferred}, failed {tally.failed}, "
                f"bounced {tally.bounced}, unknown {tally.unknown}"
            )

    async def work() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, publisher.request_stop)
        await publisher.deliver_queue(once=once, interval=interval, on_round=report)

    log.info("worker: delivering due messages%s", "" if once else f", polling every {interval:g} s")
    asyncio.run(work())
    log.info("worker: stopped" if publisher.stop_requested() else "worker: done")


# -- schedules and status -----------------------------------------------------------


def _when(value: datetime | None, tz: tzinfo) -> str:
    """A time in ``tz`` (the site's or a schedule's), with the zone."""
    return "-" if value is None else value.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _run_format(times: list[datetime]) -> str:
    """Minutes suffice for most schedules; seconds only when a schedule uses them."""
    return "%a %d %b %H:%M:%S" if any(t.second for t in times) else "%a %d %b %H:%M"


@cli.group()
def schedules() -> None:
    """List, run now, pause and resume the [schedules.*] of config.toml."""


def require_schedule(ctx: Context, name: str) -> None:
    """An unknown schedule name is a usage error (exit 2), naming the known ones."""
    try:
        ctx.publisher.schedule_config(name)
    except SchedulerError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from e


def _run_json(run: JobRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "schedule": run.schedule,
        "job": run.job,
        "fire_time": run.fire_time,
        "started": run.started,
        "ended": run.ended,
        "outcome": run.outcome,
        "error": run.error,
        "counts": run.counts,
    }


@schedules.command("list")
@json_option
@with_context
def schedules_list(ctx: Context, as_json: bool) -> None:
    """Each schedule: trigger, time zone, next three runs, last run and outcome, paused."""
    overview = ctx.publisher.schedules()
    if as_json:
        print_json(
            [
                {
                    "name": info.name,
                    "job": info.job,
                    "trigger": info.trigger,
                    "timezone": info.timezone,
                    "next_runs": [t.astimezone(ZoneInfo(info.timezone)) for t in info.next_runs],
                    "last_run": _run_json(info.last_run),
                    "outcome": info.last_outcome,
                    "paused": info.paused,
                }
                for info in overview
            ]
        )
        return
    table = Table("name", "job", "trigger", "timezone", "next runs", "last run", "outcome", "paused")
    for info in overview:
        tz = ZoneInfo(info.timezone)
        last = info.last_run
        table.add_row(
            info.name,
            info.job,
            info.trigger,
            info.timezone,
            "\n".join(t.astimezone(tz).strftime(_run_format(info.next_runs)) for t in info.next_runs),
            _when(last.started, tz) if last else "never",
            (last.outcome + (f": {last.error}" if last.error else "")) if last else "-",
            "yes" if info.paused else "no",
        )
    console.print(table)


@schedules.command("run")
@click.argument("name")
@with_context
def schedules_run(ctx: Context, name: str) -> None:
    """Run schedule NAME now, through the same path as a scheduled run (recorded)."""
    require_schedule(ctx, name)
    run = ctx.publisher.run_schedule_now(name)
    counts = ", ".join(f"{k} {v}" for k, v in run.counts.items() if k not in ("host", "pid"))
    console.print(f"{name}: {run.outcome} ({counts})" + (f": {run.error}" if run.error else ""))
    if not run.ok:
        sys.exit(1)


@schedules.command("pause")
@click.argument("name")
@with_context
def schedules_pause(ctx: Context, name: str) -> None:
    """Pause NAME (kept in the store; a running daemon obeys within seconds)."""
    require_schedule(ctx, name)
    ctx.publisher.pause_schedule(name)
    console.print(f"{name}: paused")


@schedules.command("resume")
@click.argument("name")
@with_context
def schedules_resume(ctx: Context, name: str) -> None:
    """Resume a paused schedule."""
    require_schedule(ctx, name)
    ctx.publisher.resume_schedule(name)
    console.print(f"{name}: resumed")


@cli.command()
@json_option
@with_context
def status(ctx: Context, as_json: bool) -> None:
    """Sources, items per category, lists and subscribers, recent issues, queue, runs."""
    report = ctx.publisher.status()
    tz = ctx.settings.site.tz
    if as_json:
        print_json(
            {
                "sources": [dataclasses.asdict(src) for src in report.sources],
                "items_by_category": {k or "": v for k, v in report.items_by_category.items()},
                "lists": [dataclasses.asdict(lst) for lst in report.lists],
                "recent_issues": [dataclasses.asdict(row) for row in report.recent_issues],
                "queue": report.queue,
                "recent_runs": [_run_json(run) for run in report.recent_runs],
                "feedback": _rates_json(report.feedback),
                "workers": [
                    {
                        "worker": w.worker,
                        "host": w.host,
                        "pid": w.pid,
                        "started": w.started.isoformat(),
                        "last_seen": w.last_seen.isoformat(),
                        "state": w.state,
                        "sent": w.sent,
                    }
                    for w in report.workers
                ],
            }
        )
        return
    sources = Table("source", "last fetch", "last ok", "items", "error", title="Sources")
    for src in report.sources:
        sources.add_row(
            src.name,
            _when(src.last_fetch, tz),
            _when(src.last_ok, tz),
            str(src.item_count),
            src.last_error or "",
        )
    console.print(sources)
    items_table = Table("category", "items", title="Items")
    for category, count in sorted(report.items_by_category.items(), key=lambda kv: kv[0] or "~"):
        items_table.add_row(category or "(no category)", str(count))
    console.print(items_table)
    lists = Table("list", "schedule", "subscribers by status", "skipped for their language", title="Lists")
    for lst in report.lists:
        counts = ", ".join(f"{k} {v}" for k, v in lst.subscribers.items() if v)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(lst.unserved.items()))
        lists.add_row(lst.slug, lst.schedule or "(by hand)", counts or "none", skipped or "-")
    console.print(lists)
    issues_table = Table(
        "list", "period", "sent", "pending", "deferred", "failed", "unknown", title="Recent issues"
    )
    for row in report.recent_issues:
        issues_table.add_row(
            row.list_slug,
            row.period_key,
            str(row.sent),
            str(row.pending + row.sending),
            str(row.deferred),
            str(row.failed + row.bounced),
            str(row.unknown),
        )
    console.print(issues_table)
    console.print("Queue: " + ", ".join(f"{k} {v}" for k, v in report.queue.items()))
    if report.workers:
        senders = Table("host", "pid", "started", "last seen", "sent", title="Senders alive")
        for w in report.workers:
            senders.add_row(w.host, str(w.pid), _when(w.started, tz), _when(w.last_seen, tz), str(w.sent))
        console.print(senders)
    if report.feedback is not None:
        rates = report.feedback
        console.print(
            f"Last 30 days: {rates.mailed} mailed, {rates.bounced} bounced ({rates.bounce_rate:.2%}), "
            f"{rates.complaints} complaints ({rates.complaint_rate:.2%})"
        )
        for warning in rates.warnings:
            err_console.print(labelled("warning", "yellow", warning))
    runs = Table("started", "schedule", "job", "outcome", "error", title="Recent job runs")
    for run in report.recent_runs:
        runs.add_row(
            _when(run.started, tz), run.schedule or "(manual)", run.job, run.outcome, run.error or ""
        )
    console.print(runs)


def _rates_json(rates: FeedbackRates | None) -> dict[str, Any] | None:
    if rates is None:
        return None
    return {
        "since": rates.since,
        "mailed": rates.mailed,
        "bounced": rates.bounced,
        "complaints": rates.complaints,
        "bounce_rate": round(rates.bounce_rate, 6),
        "complaint_rate": round(rates.complaint_rate, 6),
        "warnings": rates.warnings,
    }


# -- subscribers ------------------------------------------------------------------


@cli.group()
def subscribers() -> None:
    """Import, export, add, remove, show, forget, list pending and confirm subscribers."""


@subscribers.command("import")
@click.argument("list_slug", metavar="LIST")
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@with_context
def subscribers_import(ctx: Context, list_slug: str, csv_path: Path) -> None:
    """Import FILE.csv (email,name,language,...) into LIST as confirmed (consent "import")."""
    ctx.settings.list_config(list_slug)
    with progress_bar() as progress:
        task = progress.add_task(f"importing {csv_path.name}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = ctx.publisher.import_subscribers(list_slug, csv_path, progress=advance)
    print_import(report, csv_path.name, list_slug)
    if report.rejected:
        sys.exit(1)


@subscribers.command("export")
@click.argument("list_slug", metavar="LIST")
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of stdout.",
)
@with_context
def subscribers_export(ctx: Context, list_slug: str, out_path: Path | None) -> None:
    """Write LIST's subscribers as CSV (with status and consent)."""
    if out_path is None:
        ctx.publisher.export_subscribers(list_slug, sys.stdout)
        return
    ctx.settings.list_config(list_slug)  # an unknown list leaves no empty file behind
    try:
        fh = out_path.open("w", encoding="utf-8", newline="")
    except OSError as e:  # a missing folder, a parent that is a file, no permission
        raise OutputError(out_path, e) from e
    with fh:
        ctx.publisher.export_subscribers(list_slug, fh)


@subscribers.command("add")
@click.argument("list_slug", metavar="LIST")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--language", default=None, help="en, fr or es (default: the site's).")
@click.option("--force", is_flag=True, help="Re-subscribe an address that unsubscribed (with its consent).")
@with_context
def subscribers_add(
    ctx: Context, list_slug: str, email: str, name: str, language: str | None, force: bool
) -> None:
    """Subscribe EMAIL to LIST as confirmed (consent "cli")."""
    sub = ctx.publisher.add_subscriber(list_slug, email, name, language, force=force)
    console.print(f"{sub.email}: {sub.status} on {list_slug}")


@subscribers.command("remove")
@click.argument("list_slug", metavar="LIST")
@click.argument("email")
@with_context
def subscribers_remove(ctx: Context, list_slug: str, email: str) -> None:
    """Unsubscribe EMAIL from LIST (kept as unsubscribed so imports never re-add it).

    Idempotent: an address already unsubscribed is left as it is (exit 0). A bounced or
    complained address stays so, with the unsubscribe recorded: `subscribers unsuppress`
    then leaves it unsubscribed.
    """
    outcome = ctx.publisher.remove_subscriber(list_slug, email)
    if outcome is Unsubscribe.NOT_ON_LIST:
        err_console.print(f"{email} is not on {list_slug}")
        sys.exit(1)
    if outcome is Unsubscribe.ALREADY:
        console.print(f"{email}: already unsubscribed from {list_slug}; nothing changed")
    elif outcome is Unsubscribe.RECORDED:
        console.print(
            f"{email}: unsubscribed from {list_slug} (recorded; it stays suppressed, "
            "and lifting that with `subscribers unsuppress` leaves it unsubscribed)"
        )
    else:
        console.print(f"{email}: unsubscribed from {list_slug}")


@subscribers.command("show")
@click.argument("email")
@json_option
@with_context
def subscribers_show(ctx: Context, email: str, as_json: bool) -> None:
    """Status per list, consent, attributes and history of EMAIL."""
    record = ctx.publisher.subscriber(email)
    if as_json:
        print_json(dataclasses.asdict(record))
    else:
        console.print(record_text(record, ctx.settings))


def record_text(record: SubscriberRecord, settings: Settings) -> str:
    """``subscribers show`` for people: one fact per line, times in the site's zone."""

    def at(value: datetime) -> str:
        return value.astimezone(settings.site.tz).isoformat(timespec="seconds")

    lines = [
        f"email:      {record.email if record.email is not None else '(forgotten)'}",
        f"name:       {record.name}",
        f"language:   {record.language}",
        f"created:    {at(record.created)}",
    ]
    if record.forgotten_at:
        lines.append(f"forgotten:  {at(record.forgotten_at)}")
    lines += [f"attribute:  {key} = {value}" for key, value in sorted(record.attributes.items())]
    for s in record.lists:
        consent = "none"
        if s.consent_at is not None:
            consent = f"{at(s.consent_at)} {s.consent_method} {s.consent_source or ''}".rstrip()
        lines.append(f"list {s.list_slug}: {s.status.value} (consent: {consent})")
        if s.consent_text:  # a web sign-up: the exact sentence its form showed
            lines.append(f"  consent text ({s.consent_language or '-'}): {s.consent_text}")
        if s.confirmed_at is not None:
            lines.append(f"  confirmed: {at(s.confirmed_at)} {s.confirmed_source or ''}".rstrip())
    lines += [
        f"  {at(e.at)} {e.list_slug or '-'} {e.event}" + (f" ({e.detail})" if e.detail else "")
        for e in record.events
    ]
    if record.feedback:
        lines.append("bounces and complaints:")
    for f in record.feedback:
        about = f"{f.list_slug} {f.period_key}" if f.list_slug else "-"
        code = f" {f.status_code}" if f.status_code else ""
        lines.append(
            f"  {at(f.at)} {f.kind}{code} via {f.source} ({about}; report {f.report_id})"
            + (f": {f.diagnostic}" if f.diagnostic else "")
        )
    return "\n".join(lines)


@subscribers.command("suppress")
@click.argument("email")
@click.option(
    "--reason", type=click.Choice(["bounced", "complained"]), required=True, help="What the address did."
)
@click.option("--note", default="", help="Why, for the record (shown by `subscribers show`).")
@with_context
def subscribers_suppress(ctx: Context, email: str, reason: str, note: str) -> None:
    """Mark EMAIL bounced or complained on every list (recorded; imports never lift it)."""
    changed = ctx.publisher.suppress_subscriber(email, SubscriptionStatus(reason), note)
    if changed:
        console.print(f"{email}: {reason} on {', '.join(changed)}")
    else:
        console.print(f"{email}: recorded; no list changed (already suppressed or on no list)")


@subscribers.command("unsuppress")
@click.argument("email")
@click.option("--note", default="", help="Why, for the record (shown by `subscribers show`).")
@with_context
def subscribers_unsuppress(ctx: Context, email: str, note: str) -> None:
    """Lift a bounce or complaint of EMAIL on every list, back to the status before it."""
    restored = ctx.publisher.unsuppress_subscriber(email, note)
    if not restored:
        err_console.print(f"{email} is not bounced or complained on any list")
        sys.exit(1)
    for slug, status in restored.items():
        console.print(f"{email}: {status.value} on {slug}")


@subscribers.command("pending")
@click.argument("list_slug", metavar="[LIST]", required=False)
@json_option
@with_context
def subscribers_pending(ctx: Context, list_slug: str | None, as_json: bool) -> None:
    """Web sign-ups not confirmed yet (of LIST, or of every list), oldest first, with their consent."""
    by_address: dict[str, dict[str, Any]] = {}
    for row in ctx.publisher.pending_signups(list_slug):
        entry = by_address.setdefault(
            row.email,
            {
                "email": row.email,
                "lists": [],
                "since": row.since,
                "consent": {
                    "method": row.method,
                    "source": row.source,
                    "language": row.language,
                    "text": row.consent_text,
                },
            },
        )
        entry["lists"].append(row.list_slug)
    if as_json:
        print_json(list(by_address.values()))
        return
    table = Table("address", "lists", "since", "consent", title="Pending sign-ups")
    for entry in by_address.values():
        consent = entry["consent"]
        table.add_row(
            entry["email"],
            ", ".join(entry["lists"]),
            local(entry["since"], ctx.settings),
            f"{consent['method']} {consent['source']} ({consent['language']})",
        )
    console.print(table if by_address else "no pending sign-ups")


@subscribers.command("confirm")
@click.argument("email")
@click.argument("list_slug", metavar="LIST")
@with_context
def subscribers_confirm(ctx: Context, email: str, list_slug: str) -> None:
    """Confirm EMAIL's pending sign-up to LIST by hand (consent "admin")."""
    if ctx.publisher.confirm_subscriber(email, list_slug):
        console.print(f"{email}: confirmed on {list_slug}")
    else:
        console.print(f"{email}: already confirmed on {list_slug}")


@subscribers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_context
def subscribers_forget(ctx: Context, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data; keep only a hash so re-imports stay suppressed."""
    if not yes:
        click.confirm(f"Erase all personal data of {email}?", abort=True)
    if ctx.publisher.forget_subscriber(email):
        console.print(f"{email}: forgotten")
    else:
        err_console.print(f"{email}: not known")
        sys.exit(1)


# -- bounces ------------------------------------------------------------------------


@cli.group()
def bounces() -> None:
    """Read bounce and complaint reports (see the README, "Bounces and complaints")."""


@bounces.command("process")
@json_option
@with_context
def bounces_process(ctx: Context, as_json: bool) -> None:
    """Read every new report of the [bounces] mailbox once and apply it."""
    report = ctx.publisher.process_bounces()
    counts = dataclasses.asdict(report)
    if as_json:
        print_json(counts)
        return
    console.print(", ".join(f"{name} {value}" for name, value in counts.items()))


# -- storage ------------------------------------------------------------------------


@cli.group()
def storage() -> None:
    """The store itself (see README, "Moving from SQLite to PostgreSQL")."""


@storage.command("copy")
@click.argument("target_url", metavar="TARGET_URL")
@json_option
@with_context
def storage_copy(ctx: Context, target_url: str, as_json: bool) -> None:
    """Copy every row of the configured store into TARGET_URL, a new, empty database.

    E.g. `publisher storage copy postgresql://publisher@localhost/publisher`. Stop
    `publisher run` and every `publisher worker` first. Nothing is kept in the target
    when the copy fails; the configured store is only read.
    """
    with progress_bar() as progress:
        task = progress.add_task("copying", total=None)

        def advance(table: str, rows: int) -> None:
            progress.update(task, description=f"copied {table} ({rows:,} rows)", advance=1)

        report = ctx.publisher.copy_store(target_url, progress=advance)
    if as_json:
        print_json(
            {
                "source": report.source,
                "target": report.target,
                "tables": {table.name: table.rows for table in report.tables},
                "rows": report.rows,
            }
        )
        return
    table = Table("table", Column("rows", justify="right"), title=f"{report.source} -> {report.target}")
    for copied in report.tables:
        table.add_row(copied.name, f"{copied.rows:,}")
    console.print(table)
    console.print(
        f"copied {report.rows:,} rows; now set [storage] url in config.toml to the target "
        "and start the publisher"
    )


# -- admin console ------------------------------------------------------------------


@cli.group()
def admin() -> None:
    """The admin console's users (see README, "Admin console")."""


@admin.command("hash-password")
@handle_errors
def admin_hash_password() -> None:
    """Ask for a password twice and print its argon2id hash for PUBLISHER_ADMIN_{USER}_HASH.

    The password is read from the terminal (or standard input), never from an argument,
    so it stays out of the shell history and the process list.
    """
    password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    click.echo(hash_admin_password(password))


def main() -> None:
    cli(prog_name="publisher")


if __name__ == "__main__":
    main()
