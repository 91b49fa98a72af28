"""The CLI as an admin uses it: real subprocesses on a copy of the embedded default.

Each test copies config.toml, content/ and subscribers/ into a temporary folder and
runs ``python -m publisher.cli`` there, checking output, files and exit codes
(0 success, 1 work failed, 2 usage or configuration).
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import feedparser
import pytest
from click.testing import CliRunner

from publisher.cli import cli as main_group

REPO = Path(__file__).parent.parent


@pytest.fixture
def site(tmp_path: Path) -> Path:
    for name in ("content", "subscribers"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    return tmp_path


def cli(site: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "publisher.cli", *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
    )


def _commands(group: click.Group, path: list[str]) -> Iterator[list[str]]:
    """Every command path of the CLI, groups included, read from click (never a hand list
    that a new command can be missing from)."""
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name]


# Groups that only hold commands (they read no config themselves), and the one command
# that needs no config.toml (it only hashes a password).
NO_CONFIG = {
    ("subscribers",),
    ("digest",),
    ("schedules",),
    ("bounces",),
    ("admin",),
    ("admin", "hash-password"),
    ("storage",),
}
# The commands that list things: each has --json (plain data for scripts, no markup).
LISTINGS = {
    ("items",),
    ("ingest",),
    ("status",),
    ("digest", "status"),
    ("digest", "failures"),
    ("digest", "preview"),
    ("schedules", "list"),
    ("subscribers", "show"),
    ("subscribers", "pending"),
    ("bounces", "process"),
    ("storage", "copy"),
}


def test_every_command_has_help() -> None:
    commands = list(_commands(main_group, []))
    assert ["items", "hide"] in commands and ["subscribers", "pending"] in commands  # the walk found them
    for command in commands:
        r = CliRunner().invoke(main_group, [*command, "--help"])
        assert r.exit_code == 0, (command, r.output)
        if tuple(command) not in NO_CONFIG:
            assert "--config" in r.output, command
        if tuple(command) in LISTINGS:
            assert "--json" in r.output, command


def test_check_reports_bad_config_and_exits_2(site: Path) -> None:
    assert cli(site, "check").returncode == 0
    (site / "bad.toml").write_text('[site]\ntimezone = "Nowhere/Else"\n[feeds]\nmax_item = 3\n')
    r = cli(site, "check", "--config", "bad.toml")
    assert r.returncode == 2
    assert "site.timezone" in r.stderr and "feeds.max_item: unknown key" in r.stderr


def test_check_reports_every_mistake_in_one_run_and_exits_2(site: Path) -> None:
    """Three independent mistakes in the embedded default: a number in quotes, a cron that
    never fires (31 February) and a list naming a schedule that does not exist. One run
    names all three, each on its own line with its key path, and exits 2 (no traceback)."""
    config = (site / "config.toml").read_text()
    config = config.replace("max_items = 50", 'max_items = "50"')
    config = config.replace('cron = "0 9 * * mon"', 'cron = "0 9 31 2 *"')
    config = config.replace(
        'schedule = "weekly-digest"\nsender = "Social Protection Press',
        'schedule = "weekly-digst"\nsender = "Social Protection Press',
    )
    (site / "config.toml").write_text(config)
    r = cli(site, "check")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "configuration error: config.toml: 3 problem(s)"
    assert lines[1].startswith("  - feeds.max_items: Input should be a valid integer (got '50'); write the")
    assert lines[2].startswith("  - schedules.weekly-digest.cron: '0 9 31 2 *' never fires")
    assert lines[3].startswith("  - lists[2] 'press'.schedule: no [schedules.weekly-digst] table")
    assert len(lines) == 4 and "Traceback" not in r.stderr and r.stdout == ""


def test_check_writes_nothing_and_needs_no_database(site: Path) -> None:
    """check used to open the store: it created var/publisher.db and migrated it (before
    an upgrade, under the old daemons), and failed when PostgreSQL was down."""
    before = sorted(p.relative_to(site) for p in site.rglob("*"))
    r = cli(site, "check")
    assert r.returncode == 0 and r.stdout.startswith("ok config.toml"), r.stderr
    assert sorted(p.relative_to(site) for p in site.rglob("*")) == before  # no database, no var/
    config = (site / "config.toml").read_text()
    assert 'url = "sqlite:///var/publisher.db"' in config
    (site / "config.toml").write_text(
        config.replace("sqlite:///var/publisher.db", "postgresql://nobody@127.0.0.1:1/unreachable")
    )
    down = cli(site, "check")
    assert down.returncode == 0 and down.stdout.startswith("ok config.toml"), down.stderr
    assert "migrate" not in down.stderr


def test_publish_builds_feeds_and_sends_the_sample_digest_once(site: Path) -> None:
    r = cli(site, "publish")
    assert r.returncode == 0, r.stderr
    assert "ingest: 13 new" in r.stdout
    for slug in ("all", "press-releases", "news", "comments", "video-messages", "events", "publications"):
        parsed = feedparser.parse((site / "public" / "feeds" / f"{slug}.atom.xml").read_bytes())
        assert parsed.bozo == 0 and parsed.entries, slug
    outbox = mailbox.Maildir(site / "var" / "outbox", create=False)
    recipients = sorted(str(m["To"]) for m in outbox)
    assert len(recipients) == 4  # three on weekly, one on press
    again = cli(site, "publish")
    assert again.returncode == 0 and "ingest: 0 new, 0 changed, 13 unchanged" in again.stdout
    assert len(list(mailbox.Maildir(site / "var" / "outbox", create=False))) == 4  # never twice

    status = cli(site, "digest", "status")
    assert status.returncode == 0 and "weekly" in status.stdout and "press" in status.stdout
    items = cli(site, "items")
    assert "Social protection a vital part of the pandemic" in items.stdout

    overview = cli(site, "status")
    assert overview.returncode == 0
    assert "sample" in overview.stdout and "press-releases" in overview.stdout
    assert "confirmed 3" in overview.stdout  # the weekly list's sample subscribers


def test_schedules_admin_commands(site: Path) -> None:
    listed = cli(site, "schedules", "list")
    assert listed.returncode == 0 and "weekly-digest" in listed.stdout and "cron 0 9 * * mon" in listed.stdout
    assert "Mon" in listed.stdout  # the next runs of a Monday schedule
    assert cli(site, "schedules", "pause", "ingest").returncode == 0
    assert "yes" in cli(site, "schedules", "list").stdout
    assert cli(site, "schedules", "resume", "ingest").returncode == 0
    ran = cli(site, "schedules", "run", "ingest")
    assert ran.returncode == 0 and "ingest: ok" in ran.stdout and "new 13" in ran.stdout
    unknown = cli(site, "schedules", "run", "nope")
    assert unknown.returncode == 2 and "unknown schedule 'nope'" in unknown.stderr


def test_ingest_exits_1_when_an_item_is_rejected(site: Path) -> None:
    (site / "content" / "broken.md").write_text(
        "---\ntitle: No date here\nlink: https://example.org/x\n---\nBody\n"
    )
    r = cli(site, "ingest")
    assert r.returncode == 1
    assert "broken.md" in r.stderr and "date" in r.stderr
    assert "12 new" not in r.stdout and "13 new" in r.stdout  # the others are stored


def test_subscribers_commands(site: Path) -> None:
    csv = site / "people.csv"
    csv.write_text("email,name,language\nOla@Example.ORG ,Ola,fr\nnot-an-address,Bad,en\n")
    r = cli(site, "subscribers", "import", "weekly", str(csv))
    assert r.returncode == 1  # one row rejected
    assert "people.csv:3" in r.stderr and "1 added" in r.stdout

    assert cli(site, "subscribers", "add", "weekly", "zoe@example.org", "--name", "Zoé").returncode == 0
    shown = cli(site, "subscribers", "show", "Ola@example.org")
    assert shown.returncode == 0 and "confirmed" in shown.stdout

    assert cli(site, "subscribers", "remove", "weekly", "zoe@example.org").returncode == 0
    exported = cli(site, "subscribers", "export", "weekly")
    assert "zoe@example.org" in exported.stdout and "unsubscribed" in exported.stdout

    assert cli(site, "subscribers", "forget", "zoe@example.org", "--yes").returncode == 0
    assert "zoe@example.org" not in cli(site, "subscribers", "export", "weekly").stdout
    forgotten = cli(site, "subscribers", "show", "zoe@example.org")
    assert "forgotten" in forgotten.stdout and "Zoé" not in forgotten.stdout


def test_remove_is_idempotent_and_survives_unsuppress(site: Path) -> None:
    """Before, remove said "is not on weekly" with exit 1 for an address unsubscribed
    already, and for a bounced one recorded nothing, so `unsuppress` re-subscribed it."""
    assert cli(site, "subscribers", "add", "weekly", "rb@example.org").returncode == 0
    assert cli(site, "subscribers", "add", "weekly", "left@example.org").returncode == 0
    assert cli(site, "subscribers", "remove", "weekly", "left@example.org").returncode == 0
    again = cli(site, "subscribers", "remove", "weekly", "left@example.org")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "left@example.org: already unsubscribed from weekly; nothing changed\n"

    assert cli(site, "subscribers", "suppress", "rb@example.org", "--reason", "bounced").returncode == 0
    removed = cli(site, "subscribers", "remove", "weekly", "rb@example.org")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("rb@example.org: unsubscribed from weekly (recorded; it stays")
    assert "list weekly: bounced" in cli(site, "subscribers", "show", "rb@example.org").stdout
    lifted = cli(site, "subscribers", "unsuppress", "rb@example.org")
    assert lifted.returncode == 0 and lifted.stdout == "rb@example.org: unsubscribed on weekly\n"
    shown = cli(site, "subscribers", "show", "rb@example.org", "--json")
    assert [s["status"] for s in json.loads(shown.stdout)["lists"]] == ["unsubscribed"]

    nobody = cli(site, "subscribers", "remove", "weekly", "nobody@example.org")
    assert nobody.returncode == 1 and nobody.stderr == "nobody@example.org is not on weekly\n"


def test_a_latin1_file_and_a_language_not_offered_are_named_with_the_fix(site: Path) -> None:
    csv = site / "excel.csv"
    csv.write_bytes(
        "email,name,language\nana@example.org,Ana,fr\nrene@example.org,René,fr\n".encode("cp1252")
    )
    r = cli(site, "subscribers", "import", "weekly", str(csv))
    assert r.returncode == 1 and "1 added" in r.stdout and "1 rejected" in r.stdout, r.stdout
    assert (
        "excel.csv:3: not UTF-8 text (byte 0xe9); save the file as UTF-8 (in Excel: 'CSV UTF-8')"
        in " ".join(r.stderr.split())
    ), r.stderr

    added = cli(site, "subscribers", "add", "weekly", "bo@example.org", "--language", "de")
    assert added.returncode != 0
    assert "language 'de' is not offered; use one of en, es, fr" in " ".join(added.stderr.split())
    assert "no subscriber with this address" in cli(site, "subscribers", "show", "bo@example.org").stderr


def test_digest_preview_and_dry_run_record_nothing(site: Path) -> None:
    assert cli(site, "ingest").returncode == 0
    assert cli(site, "subscribers", "import", "weekly", "subscribers/weekly.csv").returncode == 0
    r = cli(site, "digest", "preview", "weekly", "--out", "preview")
    assert r.returncode == 0, r.stderr
    assert (site / "preview" / "weekly.html").exists() and (site / "preview" / "weekly.eml").exists()
    dry = cli(site, "digest", "send", "weekly", "--dry-run")
    assert dry.returncode == 0 and "13 item(s) to 3 subscriber(s)" in dry.stdout
    assert not (site / "var" / "outbox" / "new").exists() or not any(
        (site / "var" / "outbox" / "new").iterdir()
    )
    sent = cli(site, "digest", "send", "weekly")
    assert sent.returncode == 0 and "sent 3" in sent.stdout
    again = cli(site, "digest", "send", "weekly")
    assert again.returncode == 0 and "exists already" in again.stdout
    assert len(list(mailbox.Maildir(site / "var" / "outbox", create=False))) == 3


def test_unknown_list_is_a_usage_error(site: Path) -> None:
    r = cli(site, "digest", "send", "nope")
    assert r.returncode == 2 and "unknown list 'nope'" in r.stderr


def test_json_log_lines_name_the_job_and_run(site: Path) -> None:
    """`--log-format json`: one JSON object per line, with job, schedule and run fields."""
    import json

    r = cli(site, "--log-format", "json", "schedules", "run", "ingest")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert records, r.stderr
    finished = [rec for rec in records if rec.get("schedule") == "ingest" and "finished" in rec["message"]]
    assert finished and finished[0]["job"] == "ingest" and isinstance(finished[0]["run"], int)
    assert all({"time", "level", "logger", "message"} <= rec.keys() for rec in records)


def test_check_loads_the_dkim_key(site: Path) -> None:
    (site / "dkim.pem").write_text("not a key\n")
    config = (site / "config.toml").read_text()
    (site / "config.toml").write_text(
        config + '\n[dkim]\nselector = "s1"\ndomain = "example.org"\nkey_path = "dkim.pem"\n'
    )
    r = cli(site, "check")
    assert r.returncode == 2 and "dkim.key_path" in r.stderr


MARKUP_TITLE = "Budget [/] cuts [bold red]x[/]"


def _add_item(site: Path, name: str, title: str, *, label: str = "News", **extra: str) -> None:
    header = "".join(f"{key}: {value}\n" for key, value in extra.items())
    (site / "content" / f"{name}.md").write_text(
        f"---\ntitle: {json.dumps(title)}\ndate: 2020-08-01\ncategory: {json.dumps(label)}\n"
        f"link: https://www.example.org/{name}\n{header}---\n\nBody\n",
        encoding="utf-8",
    )


@pytest.mark.slow
def test_text_from_outside_is_printed_literally_never_read_as_console_markup(site: Path) -> None:
    """Fault 7: a `[/]` in a title, label or name crashed every command that printed it."""
    _add_item(site, "markup", MARKUP_TITLE, label="News [/] [white on white]hidden")
    config = (site / "config.toml").read_text()
    (site / "config.toml").write_text(
        config.replace(
            'subject = "Social protection this week',
            "subject = \"{{ (items|sort(attribute='published', reverse=true)|first).title }} - this week",
        )
    )
    added = cli(site, "subscribers", "add", "weekly", "mark@example.org", "--name", "[/] [bold]Mark")
    assert added.returncode == 0, added.stderr

    ingested = cli(site, "ingest")
    assert ingested.returncode == 0, ingested.stderr
    assert "label 'News [/] [white on white]hidden' matches no category" in ingested.stderr
    assert (
        "add the label to the 'labels' of a [[categories]] table" in ingested.stderr
    )  # our own brackets too
    listed = cli(site, "items")
    assert listed.returncode == 0 and MARKUP_TITLE in listed.stdout, listed.stderr
    shown = cli(site, "subscribers", "show", "mark@example.org")
    assert shown.returncode == 0 and "name:       [/] [bold]Mark" in shown.stdout, shown.stderr
    published = cli(site, "publish")
    assert published.returncode == 0, published.stderr
    assert "digest weekly [2" in published.stdout and "sent 4" in published.stdout
    status = cli(site, "digest", "status")
    assert status.returncode == 0 and "Budget [/] cuts" in status.stdout, status.stderr
    assert "Traceback" not in listed.stderr + shown.stderr + published.stderr + status.stderr


@pytest.mark.slow
def test_hostile_item_is_cut_cleaned_and_capped_on_its_way_to_feeds_and_mail(site: Path) -> None:
    """Fault 9 and the per-issue cap, as an admin and a reader see them."""
    long_title = "Budget \u202ecuts " + "word " * 40_000  # 200,000 characters and a bidi override
    _add_item(site, "long", long_title, language="'en\"><script>'")
    config = (site / "config.toml").read_text()
    config = config.replace(
        "subject = \"Social protection this week: {{ plural(items|length, '{count} new item', "
        "'{count} new items') }}\"",
        "subject = \"{{ items|map(attribute='title')|join(' / ') }}\"\nmax_items = 10",
    )
    (site / "config.toml").write_text(config)
    assert cli(site, "subscribers", "import", "weekly", "subscribers/weekly.csv").returncode == 0
    named = cli(site, "subscribers", "add", "weekly", "eve@example.org", "--name", "Eve \u202eRights")
    assert named.returncode == 0, named.stderr

    ingested = cli(site, "ingest")
    assert ingested.returncode == 0 and "14 new" in ingested.stdout, ingested.stderr
    assert "title of 200011 characters cut to" in ingested.stderr
    assert "language 'en\"><script>' is not a language tag" in ingested.stderr
    dry = cli(site, "digest", "send", "weekly", "--dry-run")
    assert "10 item(s) (4 more not included) to 4 subscriber(s)" in dry.stdout, dry.stdout
    sent = cli(site, "digest", "send", "weekly")
    assert sent.returncode == 0 and "new issue, 10 item(s) (4 more not included)" in sent.stdout, sent.stdout
    assert cli(site, "build").returncode == 0

    all_json = (site / "public" / "feeds" / "all.json").read_text(encoding="utf-8")
    all_atom = (site / "public" / "feeds" / "all.atom.xml").read_text(encoding="utf-8")
    assert "<script>" not in all_json and "\\u202e" not in all_json.lower() and "\u202e" not in all_json
    assert "\u202e" not in all_atom and "Budget cuts word" in all_atom
    entry = next(e for e in json.loads(all_json)["items"] if e["url"].endswith("/long"))
    assert len(entry["title"]) <= 500 and entry["title"].endswith("word…")

    outbox = list(mailbox.Maildir(site / "var" / "outbox", create=False))
    assert len(outbox) == 4
    for message in outbox:
        parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
        subject, to = str(parsed["Subject"]), str(parsed["To"])
        assert len(subject) <= 200 and "Budget cuts word" in subject and subject.endswith("…")
        assert "\u202e" not in subject + to
        assert len(message.as_bytes()) < 200_000  # not the 611 KB of an uncut title
        html_part = parsed.get_body(preferencelist=("html",))
        assert html_part is not None
        more = ("and 4 more on the website", "et 4 de plus sur le site", "y 4 más en el sitio web")
        assert any(f"{text}</a>" in html_part.get_content() for text in more)
        assert 'href="http://127.0.0.1:8080/"' in html_part.get_content()
    assert any("Eve Rights" in str(m["To"]) for m in outbox)


def test_a_relay_outage_is_one_line_and_exit_1_and_nothing_is_lost(site: Path) -> None:
    """`digest send`, `worker --once` and `publish` against a relay answering 421 at connect."""
    from publisher.config import load_config
    from publisher.store import Store
    from tests.smtp_server import DOWN, SmtpSink

    with SmtpSink() as sink:
        sink.greeting = DOWN
        config = (site / "config.toml").read_text()
        smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntimeout = 2\n'
        (site / "config.toml").write_text(config.replace("[web]\n", smtp + "\n[web]\n", 1))
        assert cli(site, "ingest").returncode == 0
        expected = f"error: cannot send mail via 127.0.0.1:{sink.port}: 421 4.3.2 Service not available"
        for command in (["digest", "send", "weekly"], ["worker", "--once"], ["publish"]):
            r = cli(site, "--log-format", "json", *command)
            assert r.returncode == 1, (command, r.stdout, r.stderr)
            problems = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("{")]
            # The weekly list's 3 messages; publish stops at that first list's outage.
            assert problems == [expected + ", closing transmission channel; 3 message(s) left queued"]
        assert sink.received == []
        store = Store(load_config(site / "config.toml").storage.url)
        (weekly,) = store.issues.summaries()
        store.close()
        assert weekly.pending == 3 and weekly.unknown == 0

        sink.greeting = None  # the relay is back: everyone gets exactly one copy
        assert cli(site, "worker", "--once").returncode == 0  # the weekly list's queue
        assert cli(site, "publish").returncode == 0  # creates and sends the press issue
        assert cli(site, "publish").returncode == 0  # nothing more
        copies = [(m.rcpt_tos[0], m.message["List-Id"]) for m in sink.accepted()]
        assert len(copies) == 4 and len(set(copies)) == 4  # three on weekly, one on press


# A 4xx reply that tries to recolour and clear the admin's terminal and to style the line.
HOSTILE_REPLY = "451 4.7.1 \x1b[31mGreylisted\x1b[0m\x1b[2J [bold]come back[/bold] \u202elater"
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T")  # the site's zone, Europe/Zurich
LONG_REPLY = "554 5.7.1 Client host [127.0.0.1] blocked using zen.spamhaus.org; " + "see the list " * 60


def test_digest_failures_shows_each_refusal_with_the_servers_words_made_inert(
    site: Path, store_url: str
) -> None:
    """A real send into an SMTP server that refuses three of four recipients (5xx, 4xx), on
    SQLite and PostgreSQL: `digest failures` says who, how and what the server said."""
    from tests.smtp_server import Rule, SmtpSink

    config = (site / "config.toml").read_text().replace("sqlite:///var/publisher.db", store_url)
    assert store_url in config
    with SmtpSink() as sink:
        smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntimeout = 5\n'
        (site / "config.toml").write_text(config.replace("[web]\n", smtp + "\n[web]\n", 1))
        none_yet = cli(site, "digest", "failures")
        assert none_yet.returncode == 0 and none_yet.stdout == "no issue yet\n", none_yet.stderr
        assert json.loads(cli(site, "digest", "failures", "--json").stdout) == []
        gone = "550 5.1.1 <amina.diallo@example.org>: Recipient address rejected: User unknown"
        sink.script(
            Rule("rcpt", reply=gone, recipient="amina.diallo@example.org"),
            Rule("rcpt", reply=HOSTILE_REPLY, recipient="carlos.mendez@example.org"),
            Rule("rcpt", reply=LONG_REPLY, recipient="press.desk@example.org"),
        )
        published = cli(site, "publish")
        assert published.returncode == 1, published.stderr  # a message failed
        assert [m.rcpt_tos for m in sink.accepted()] == [["jane.smith@example.org"]]

    shown = cli(site, "digest", "failures")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert re.search(r"^weekly \S+ \(issue 1\): 3 deliveries, sent 1, deferred 1, bounced 1$", out, re.M)
    assert re.search(r"^press \S+ \(issue 2\): 1 delivery, failed 1$", out, re.M)
    lines = out.splitlines()
    amina = next(line for line in lines if "amina.diallo@example.org" in line)
    assert "bounced" in amina and " 550 " in amina and len(LOCAL_TIME.findall(amina)) == 1  # last attempt
    assert "5.1.1 <amina.diallo@example.org>: Recipient address rejected: User unknown" in amina
    carlos = next(line for line in lines if "carlos.mendez@example.org" in line)
    assert "deferred" in carlos and " 451 " in carlos and len(LOCAL_TIME.findall(carlos)) == 2  # and next
    # The hostile reply is shown, inert: no escape character reaches the terminal, the
    # markup is printed as text, the bidi override as an escape.
    assert "\x1b" not in out and "\u202e" not in out
    assert "4.7.1 \\x1b[31mGreylisted\\x1b[0m\\x1b[2J [bold]come back[/bold] \\u202elater" in carlos
    press = next(line for line in lines if "press.desk@example.org" in line)
    assert "failed" in press and " 554 " in press and "blocked using zen.spamhaus.org" in press
    assert "see the list see the" in press and "…" in press and LONG_REPLY[4:] not in out  # cut for the eye
    # The reasons come first, the recipient's address masked so that refusals group.
    assert out.index("Why not sent") < out.index("Deliveries not sent")
    assert "5.1.1 <address>: Recipient address rejected: User unknown" in out
    assert out.rstrip().endswith("3 of 3 shown")

    raw = cli(site, "digest", "failures", "--json").stdout
    # For scripts the reply is whole, and still inert on a terminal: the bidi override is
    # a JSON escape (the same string once parsed), never the character itself.
    assert "\x1b" not in raw and "\u202e" not in raw and "\\u202elater" in raw
    rows = json.loads(raw)
    # Latest attempt first: the press issue was sent after the weekly one.
    triples = [(r["address"], r["status"], r["code"]) for r in rows]
    assert triples[0] == ("press.desk@example.org", "failed", 554)
    assert sorted(triples[1:]) == [
        ("amina.diallo@example.org", "bounced", 550),
        ("carlos.mendez@example.org", "deferred", 451),
    ]
    by_address = {r["address"]: r for r in rows}
    assert by_address["carlos.mendez@example.org"]["text"] == HOSTILE_REPLY[4:]  # whole, as sent
    assert by_address["press.desk@example.org"]["text"] == LONG_REPLY[4:].rstrip()
    assert by_address["carlos.mendez@example.org"]["next_attempt"].endswith("+00:00")
    assert by_address["amina.diallo@example.org"]["list"] == "weekly"
    assert all(r["worker"] and r["attempts"] == 1 and r["period"] for r in rows)

    grouped = json.loads(cli(site, "digest", "failures", "--group", "--json").stdout)
    assert {(g["status"], g["code"], g["count"]) for g in grouped} == {
        ("bounced", 550, 1),
        ("deferred", 451, 1),
        ("failed", 554, 1),
    }
    only = cli(site, "digest", "failures", "weekly", "--status", "deferred", "--limit", "1")
    assert "carlos.mendez@example.org" in only.stdout and "amina" not in only.stdout
    assert "press" not in only.stdout
    assert only.stdout.rstrip().endswith("1 of 1 shown")
    some = cli(site, "digest", "failures", "weekly", "--limit", "1")
    assert some.stdout.rstrip().endswith("1 of 2 shown; --limit N shows more, --group only the reasons")
    reasons = cli(site, "digest", "failures", "weekly", "--group")
    assert "5.1.1 <address>" in reasons.stdout and "amina.diallo" not in reasons.stdout
    wrong = cli(site, "digest", "failures", "press", "--issue", "1")
    assert (
        wrong.returncode == 1 and wrong.stderr == "error: issue 1 is an issue of list 'weekly', not 'press'\n"
    )
    assert cli(site, "digest", "failures", "--status", "sent").returncode == 2


def test_requeue_unknown_repairs_only_the_old_outage_marker(site: Path) -> None:
    """Rows an older version marked unknown during an outage go back to pending, once."""
    import json

    from sqlalchemy import update

    from publisher.config import load_config
    from publisher.store import Store
    from publisher.store.tables import deliveries

    assert cli(site, "publish").returncode == 0  # weekly (3) and press (1) sent to the outbox
    settings = load_config(site / "config.toml")
    store = Store(settings.storage.url)
    old = "sender stopped while this message was in flight; not resent"
    real = "connection lost after the message was sent, before the server confirmed it: reset"
    with store.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(deliveries.select().order_by(deliveries.c.id))]
        for did, text in zip(ids, [old, old, real, old], strict=True):
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == did)
                .values(status="unknown", last_code=None, last_text=text)
            )
    store.close()

    dry = cli(site, "digest", "requeue-unknown", "weekly", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    found = json.loads(dry.stdout)
    assert found["dry_run"] is True and found["total"] == 2
    assert [(i["list"], i["count"]) for i in found["issues"]] == [("weekly", 2)]

    done = cli(site, "digest", "requeue-unknown")
    assert done.returncode == 0, done.stderr
    assert (
        "weekly" in done.stdout and "press" in done.stdout and "requeued 3 message(s) in total" in done.stdout
    )
    again = cli(site, "digest", "requeue-unknown", "--json")
    assert json.loads(again.stdout)["total"] == 0
    sent = cli(site, "worker", "--once")
    assert sent.returncode == 0 and "sent 3" in sent.stdout  # the connection-lost one stays unknown


# -- withdrawing an item ------------------------------------------------------------------

VIDEO_ID = "urn:publisher:sample:social-protection-a-vital-part-of-the-pandemic-response"


def test_items_hide_and_unhide_withdraw_an_item_from_the_feeds_at_once(site: Path) -> None:
    assert cli(site, "publish").returncode == 0
    video_feed = site / "public" / "feeds" / "video-messages.rss.xml"
    (entry,) = feedparser.parse(video_feed.read_bytes()).entries
    assert [(e.href, e.type) for e in entry.enclosures] == [
        (
            "https://www.example.org/social-protection/videos/"
            "social-protection-a-vital-part-of-the-pandemic-response.mp4",
            "video/mp4",
        )
    ]

    hidden = cli(site, "items", "hide", VIDEO_ID)

    assert hidden.returncode == 0, hidden.stderr
    assert hidden.stdout.startswith(f"hidden: {VIDEO_ID} (Social protection a vital part of the pandemic")
    assert "now hidden" in hidden.stdout and "build: " in hidden.stdout
    assert feedparser.parse(video_feed.read_bytes()).entries == []
    all_feed = (site / "public" / "feeds" / "all.atom.xml").read_text()
    assert "Social protection a vital part" not in all_feed
    assert "Social protection a vital part" not in (site / "public" / "index.html").read_text()
    listing = json.loads(cli(site, "items", "--json").stdout)
    video = next(i for i in listing if i["id"] == VIDEO_ID)
    assert (video["hidden"], video["state"], video["duplicate_of"]) == (True, "hidden", None)
    assert video["enclosure"]["type"] == "video/mp4"
    assert {i["state"] for i in listing if i["id"] != VIDEO_ID} == {"shown"}
    table = cli(site, "items").stdout
    assert "hidden" in next(line for line in table.splitlines() if "vital part" in line)

    assert cli(site, "items", "unhide", VIDEO_ID).returncode == 0
    assert len(feedparser.parse(video_feed.read_bytes()).entries) == 1


def test_items_hide_of_an_unknown_id_fails_with_a_clear_line(site: Path) -> None:
    r = cli(site, "items", "hide", "no-such-item")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "error: item 'no-such-item': no stored item has this id; 'publisher items' lists them"
    )
    # --config given to the group reaches the subcommand too.
    moved = site / "elsewhere"
    moved.mkdir()
    (moved / "c.toml").write_text("[site]\ntimezone = 'Nowhere/Else'\n")
    bad = cli(site, "items", "--config", "elsewhere/c.toml", "hide", "no-such-item")
    assert bad.returncode == 2 and "site.timezone" in bad.stderr


def test_ingest_json_counts_duplicates_per_source(site: Path) -> None:
    page = REPO / "tests" / "data" / "department-page.html"
    config = (site / "config.toml").read_text()
    config = config.replace(
        "# The department's listing page",
        f"""[[sources]]
name = "department-page"
type = "html"
url = "{page}"
base_url = "https://www.example.org/social-protection/news"
item = "li.news-item"
title = "h3 a"
link = "h3 a@href"
date = "span.date"
date_format = "%d %B %Y"
category = "span.type"
default_category = "News"
summary = "p"
exclude = ['a:-soup-contains("Read more")']

# The department's listing page""",
    )
    (site / "config.toml").write_text(config)
    sample = site / "content" / "2020-07-15-social-protection-a-vital-part-of-the-pandemic-response.md"
    sample.write_text(
        sample.read_text().replace(
            "https://www.example.org/social-protection/news/social-protection-a-vital-part-of-the-pandemic-response",
            "https://www.example.org/social-protection/news/WCMS_751030/lang--en/index.htm",
        )
    )

    r = cli(site, "ingest", "--json")

    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["sources"]["sample"]["duplicates"] == 0
    assert report["sources"]["department-page"]["duplicates"] == 1
    assert report["duplicates"] == [
        "https://www.example.org/social-protection/news/WCMS_751030/lang--en/index.htm"
    ]
    assert report["ok"] is True and len(report["new"]) == 13 + 12
    text = cli(site, "ingest")
    assert "0 new, 0 changed, 25 unchanged, 1 duplicate(s)" in text.stdout


def test_an_out_path_that_cannot_be_written_is_one_line_naming_it(site: Path) -> None:
    """Each was a FileNotFoundError or NotADirectoryError traceback."""
    assert cli(site, "ingest").returncode == 0  # a preview needs items
    (site / "afile").write_text("not a folder\n")
    missing = site / "nonexistent" / "dir" / "x.csv"
    cases = {
        ("subscribers", "export", "weekly", "--out", str(missing)): (
            f"error: cannot write {missing}: No such file or directory "
            f"(the folder {missing.parent} does not exist; create it first)"
        ),
        ("subscribers", "export", "weekly", "--out", "afile/x.csv"): (
            "error: cannot write afile/x.csv: Not a directory (a part of the path is a file, not a folder)"
        ),
        ("digest", "preview", "weekly", "--out", "afile/sub"): (
            "error: cannot write afile/sub: Not a directory (a part of the path is a file, not a folder)"
        ),
    }
    for args, line in cases.items():
        r = cli(site, *args)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.splitlines() == [line] and "Traceback" not in r.stderr, args
        assert r.stdout == ""
    unknown = cli(site, "subscribers", "export", "nolist", "--out", "new.csv")
    assert unknown.returncode == 2 and not (site / "new.csv").exists()  # no empty file left behind


def test_numbers_out_of_range_are_usage_errors(site: Path) -> None:
    """`worker --interval 0` busy-looped on the database; `--limit -5` listed everything."""
    cases = {
        (
            "worker",
            "--interval",
            "0",
        ): "Invalid value for '--interval': 0.0 is not in the range 0.1<=x<=3600.0.",
        ("worker", "--once", "--interval", "-1"): "'--interval': -1.0 is not in the range 0.1<=x<=3600.0.",
        (
            "worker",
            "--interval",
            "nan",
        ): "Invalid value for '--interval': 'nan' is not a number from 0.1 to 3600.",
        ("items", "--limit", "-5"): "Invalid value for '--limit': -5 is not in the range x>=1.",
        ("items", "--limit", "0"): "Invalid value for '--limit': 0 is not in the range x>=1.",
        ("digest", "status", "--limit", "-1"): "Invalid value for '--limit': -1 is not in the range x>=1.",
        ("serve", "--port", "70000"): "Invalid value for '--port': 70000 is not in the range 0<=x<=65535.",
    }
    for args, message in cases.items():
        r = cli(site, *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert r.stdout == "" and "Traceback" not in r.stderr
    assert not (site / "var").exists()  # refused before the store was opened
    assert cli(site, "ingest").returncode == 0
    two = cli(site, "items", "--limit", "2", "--json")
    assert two.returncode == 0 and len(json.loads(two.stdout)) == 2
