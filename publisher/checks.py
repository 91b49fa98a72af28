"""``publisher check``: everything that would fail later, found now, without sending or writing.

config.py validates the file itself (types, keys, cross references). What it cannot
see needs the disk or a render: templates that do not exist or do not compile, a
subject that uses a field no issue has, a subscribers file that is missing or has bad
rows, a DKIM key that does not load. Each of those used to pass ``check`` and fail at
send time, after the issue was created; here each becomes one problem naming the key
path and the fix, all reported at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import jinja2

from publisher.archive import issue_url
from publisher.config import ListConfig, Settings
from publisher.errors import ConfigError, PublisherError, SubscriberError
from publisher.i18n import LANGUAGES
from publisher.messages import render_issue, render_web_copy
from publisher.models import Item
from publisher.signing import DkimSigner
from publisher.subscriptions import read_subscriber_csv
from publisher.templating import BUILTIN_TEMPLATES, make_environment


def page_templates() -> list[str]:
    """Every built-in template an override may replace: pages, the console, the feed
    stylesheet, the confirmation mail and the layouts they extend.

    Read from the folder (when ``check`` runs, not at import), so a new page is checked
    without being listed anywhere. The digest templates are left out: each list names
    its own (html_template, text_template), checked with the list.
    """
    return sorted(
        path.relative_to(BUILTIN_TEMPLATES).as_posix()
        for path in BUILTIN_TEMPLATES.rglob("*")
        if path.is_file() and not path.name.startswith("digest.")
    )


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class CheckReport:
    """Problems that stop ``check`` (exit 2) and warnings it only prints."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_settings(settings: Settings) -> CheckReport:
    """Run every check that needs more than the config file; never sends or writes."""
    report = CheckReport()
    _check_templates_folder(settings, report)
    env = make_environment(settings)
    for name in page_templates():
        _compile(env, name, f"templates: {name}", report)
    for position, list_cfg in enumerate(settings.lists, 1):
        where = f"lists[{position}] {list_cfg.slug!r}"
        templates_ok = all(
            [
                _compile(env, list_cfg.html_template, f"{where}.html_template", report),
                _compile(env, list_cfg.text_template, f"{where}.text_template", report),
            ]
        )
        if templates_ok:
            _render_sample(settings, list_cfg, where, report)
        _check_subscribers_file(list_cfg, where, report)
    _check_dkim(settings, report)
    _check_ports(settings, report)
    _check_bounces(settings, report)
    _check_admin_hashes(settings, report)
    _check_secrets(settings, report)
    return report


def _check_secrets(settings: Settings, report: CheckReport) -> None:
    """A secret named by a ``*_env`` key whose variable is not set: what needs it would
    fail later (a login refused, every webhook call refused), so say so now. A warning,
    as for the admin hashes: the variable may be set only where the daemon or the
    workers run. Only the key and the variable's name are printed, never a value."""
    where = "a process started like this one"
    smtp = settings.smtp
    if smtp is not None and smtp.username and smtp.password is None:
        report.warnings.append(
            f"smtp.password_env: {smtp.password_env} is not set (or empty) here, so sending as "
            f"smtp.username fails to log in to the relay from {where}; set it where mail is sent"
        )
    bounces = settings.bounces
    if bounces is None:
        return
    if bounces.imap is not None and bounces.imap.password is None:
        report.warnings.append(
            f"bounces.imap.password_env: {bounces.imap.password_env} is not set (or empty) here, so "
            f"`bounces process` cannot log in to {bounces.imap.host} from {where}"
        )
    if bounces.webhook_secret_env is not None and not os.environ.get(bounces.webhook_secret_env):
        report.warnings.append(
            f"bounces.webhook_secret_env: {bounces.webhook_secret_env} is not set (or empty) here, so "
            "a `publisher run` started like this one refuses every report posted to the generic "
            "bounce webhook"
        )


def _check_bounces(settings: Settings, report: CheckReport) -> None:
    """A bounce Maildir that is not there makes every `bounces process` fail; say so now."""
    bounces = settings.bounces
    if bounces is None:
        return
    if bounces.maildir is not None and not (bounces.maildir / "new").is_dir():
        report.errors.append(
            f"bounces.maildir: {bounces.maildir} is not a Maildir (no new/ folder); point it at the "
            "Maildir your relay delivers bounces+* to, or create new/, cur/ and tmp/ there"
        )
    if bounces.reads_reports and bounces.address is None:
        report.warnings.append(
            "bounces.address is not set: messages go out with the list's sender as envelope sender, "
            "so DSNs carry no token and `bounces process` can only act on complaints"
        )


def _check_admin_hashes(settings: Settings, report: CheckReport) -> None:
    """A console user without a usable hash cannot sign in: say so (a warning, since the
    variable may be set only where ``publisher run`` runs, e.g. a systemd EnvironmentFile)."""
    for user in settings.admin.users:
        variable = settings.admin.hash_env(user)
        value = settings.admin.password_hash(user)
        if value is None:
            report.warnings.append(
                f"admin.users: {variable} is not set here, so {user!r} cannot sign in to /admin/ from "
                "a process started like this one; set it to the output of `publisher admin hash-password`"
            )
        elif not value.startswith("$argon2id$"):
            report.errors.append(
                f"admin.users: {variable} is not an argon2id hash (it must start with $argon2id$); "
                "make one with `publisher admin hash-password`"
            )


def _check_templates_folder(settings: Settings, report: CheckReport) -> None:
    folder = settings.templates.path
    if folder is not None and not folder.is_dir():
        report.errors.append(
            f"templates.path: {folder} is not a folder; create it or remove the key to use the built-ins"
        )


def _compile(env: jinja2.Environment, name: str, where: str, report: CheckReport) -> bool:
    """True when template ``name`` is found (override folder or built-ins) and compiles."""
    try:
        env.get_template(name)
    except jinja2.TemplateNotFound:
        report.errors.append(
            f"{where}: template {name!r} not found in [templates] path or the built-in templates; "
            "fix the name or add the file"
        )
        return False
    except jinja2.TemplateSyntaxError as e:
        report.errors.append(f"{where}: {e.filename or name}, line {e.lineno}: syntax error: {e.message}")
        return False
    return True


def sample_items(settings: Settings) -> list[Item]:
    """One made-up item per category (and one without), to render templates against."""
    when = datetime(2020, 7, 15, 9, 0, tzinfo=UTC)
    slugs: list[str | None] = [c.slug for c in settings.categories] or [None]
    return [
        Item(
            id=f"https://example.org/check/{n}",
            source="check",
            title=f"Sample item {n}",
            link=f"https://example.org/check/{n}",
            published=when,
            updated=when,
            language=settings.site.language,
            summary="<p>A sample summary.</p>",
            category=slug,
            label=slug,
        )
        for n, slug in enumerate(slugs, 1)
    ]


def _render_sample(settings: Settings, list_cfg: ListConfig, where: str, report: CheckReport) -> None:
    """Render the list's subject and templates for a sample issue in every catalogue language.

    Rendering (not only compiling) is what finds ``{{ list.title }}``: templates run with
    StrictUndefined, so a field no issue has fails here as it would at send time.
    """
    items = sample_items(settings)
    unsigned = settings.model_copy(update={"dkim": None})  # the key is checked on its own
    now = datetime(2020, 7, 20, 9, 0, tzinfo=UTC)
    for language in LANGUAGES:
        try:
            render_issue(
                unsigned,
                list_cfg,
                items,
                issue_id=0,
                period_label="15 July 2020",
                language=language,
                now=now,
                archive_url=issue_url(settings, list_cfg, "2020-07-20T07:00:00Z", language),
            )
            if list_cfg.public:  # the archive's copy, written in every language too
                render_web_copy(
                    unsigned,
                    list_cfg,
                    items,
                    subject="x",
                    period_label="15 July 2020",
                    now=now,
                    language=language,
                )
        except PublisherError as e:
            # The subject's own errors say "lists 'weekly'.subject": use the full key path.
            message, own = str(e), f"lists {list_cfg.slug!r}."
            report.errors.append(
                f"{where}.{message.removeprefix(own)}" if message.startswith(own) else f"{where}: {message}"
            )
            return  # one language's failure is every language's: say it once


def _check_subscribers_file(list_cfg: ListConfig, where: str, report: CheckReport) -> None:
    path = list_cfg.subscribers
    if path is None:
        return
    if not path.is_file():
        report.errors.append(
            f"{where}.subscribers: {path} does not exist; create it (a CSV with an 'email' column) "
            "or remove the key"
        )
        return
    try:
        _rows, duplicates, rejected = read_subscriber_csv(path)
    except SubscriberError as e:
        report.errors.append(f"{where}.subscribers: {e}")
        return
    for problem in rejected:
        report.warnings.append(f"{where}.subscribers: row skipped at send time: {problem}")
    for duplicate in duplicates:
        report.warnings.append(f"{where}.subscribers: {duplicate}")


def _check_dkim(settings: Settings, report: CheckReport) -> None:
    if settings.dkim is None:
        return
    try:
        DkimSigner(settings.dkim)
    except ConfigError as e:
        report.errors.append(str(e))


def _check_ports(settings: Settings, report: CheckReport) -> None:
    """On a loopback base_url, links only work if they point at the port we listen on."""
    url = urlsplit(settings.site.base_url)
    if url.hostname not in _LOOPBACK:
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    if port != settings.web.port:
        report.warnings.append(
            f"site.base_url: {settings.site.base_url} points at port {port} but [web] port is "
            f"{settings.web.port}; links in feeds and mails will not reach this server"
        )
