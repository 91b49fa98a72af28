"""End to end through the command line: send, bounce, process, and the next issues skip.

The relay is aiosmtpd on loopback (tests/smtp_server.py); the DSN is the Postfix one of
tests/data/bounces, filled with the token the sender really used, dropped into the
Maildir as an MTA would deliver it; every step is a `publisher` command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from publisher.bounces.verp import token_in, verify_verp_token
from publisher.store import Store
from tests.smtp_server import SmtpSink
from tests.test_bounces import BOUNCES, fixture

REPO = Path(__file__).parent.parent
READERS = ("reader0@example.org", "reader1@example.org")


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "publisher.cli", "--config", str(site / "config.toml"), *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def write_item(site: Path, n: int) -> None:
    today = datetime.now(UTC).date().isoformat()
    (site / "content" / f"item-{n}.md").write_text(
        f'---\nid: "urn:test:{n}"\ntitle: "Item {n}"\ndate: {today}\ncategory: "News"\n'
        f'link: "https://www.example.org/{n}"\nlanguage: en\n---\n\nText {n}.\n',
        encoding="utf-8",
    )


def make_site(tmp_path: Path, smtp: SmtpSink) -> Path:
    (tmp_path / "content").mkdir()
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "var" / "bounces" / sub).mkdir(parents=True)
    lists = ""
    for slug, sender in (("weekly", "news@example.org"), ("press", "press@example.org")):
        lists += f'[[lists]]\nslug = "{slug}"\nname = "{slug.title()}"\nsender = "News <{sender}>"\n\n'
    (tmp_path / "config.toml").write_text(
        f"""
[site]
title = "Social Protection Department"
base_url = "http://127.0.0.1:8080"
timezone = "Europe/Zurich"
postal_address = "Route des Morillons 4, 1211 Geneva 22, Switzerland"

[storage]
url = "sqlite:///var/publisher.db"

[[categories]]
slug = "news"
title = "News"
labels = ["News"]

[[sources]]
name = "local"
type = "directory"
path = "content"

[smtp]
host = "127.0.0.1"
port = {smtp.port}

[bounces]
address = "{BOUNCES}"
maildir = "var/bounces"

{lists}""",
        encoding="utf-8",
    )
    return tmp_path


def test_a_dsn_in_the_maildir_stops_every_list_for_that_address(
    tmp_path: Path, smtp_server: SmtpSink
) -> None:
    site = make_site(tmp_path, smtp_server)
    for slug in ("weekly", "press"):
        for address in READERS:
            cli(site, "subscribers", "add", slug, address)
    write_item(site, 1)
    cli(site, "ingest")
    cli(site, "digest", "send", "weekly")

    # The envelope sender is each delivery's own signed VERP address.
    store = Store(f"sqlite:///{site / 'var' / 'publisher.db'}")
    try:
        senders = {}
        for address in READERS:
            (received,) = smtp_server.accepted_for(address)
            token = token_in(received.mail_from, BOUNCES)
            assert token is not None and received.mail_from == f"bounces+{token}@example.org"
            sid = store.subscribers.find_id(address) or 0
            assert verify_verp_token(token, store.subscribers.secret(sid) or "").subscriber_id == sid
            senders[address] = token
            message_id = received.message["Message-ID"]
    finally:
        store.close()

    dsn = fixture("postfix-user-unknown.eml", senders[READERS[0]], READERS[0], str(message_id))
    (site / "var" / "bounces" / "new" / "1764061331.V801I2M3.mx1").write_bytes(dsn)
    processed = json.loads(cli(site, "bounces", "process", "--json").stdout)
    assert processed == {
        "processed": 1, "unmatched": 0, "unparsed": 0, "applied": 1, "duplicate": 0, "ignored": 0,
    }  # fmt: skip
    assert list((site / "var" / "bounces" / "new").iterdir()) == []
    assert len(list((site / "var" / "bounces" / "cur").iterdir())) == 1

    # The next issue of any list goes to the other reader only.
    cli(site, "digest", "send", "press")
    write_item(site, 2)
    cli(site, "ingest")
    cli(site, "digest", "send", "weekly", "--force")
    assert len(smtp_server.accepted_for(READERS[0])) == 1  # the first weekly issue only
    assert len(smtp_server.accepted_for(READERS[1])) == 3

    shown = json.loads(cli(site, "subscribers", "show", READERS[0], "--json").stdout)
    assert {s["list_slug"]: s["status"] for s in shown["lists"]} == {"press": "bounced", "weekly": "bounced"}
    (feedback,) = shown["feedback"]
    assert feedback["kind"] == "hard-bounce" and feedback["status_code"] == "5.1.1"
    assert feedback["report_id"] == "<20261125090211.4Xk2Lq0Ymzz9sRy@relay.example.org>"
    text = cli(site, "subscribers", "show", READERS[0]).stdout
    assert "hard-bounce 5.1.1 via maildir" in text

    issues = json.loads(cli(site, "digest", "status", "--json").stdout)
    first_weekly = [i for i in issues if i["list_slug"] == "weekly"][-1]
    assert first_weekly["bounced"] == 1 and first_weekly["sent"] == 1
    status = json.loads(cli(site, "status", "--json").stdout)
    assert status["feedback"]["bounced"] == 1 and status["feedback"]["mailed"] == 4
    assert status["feedback"]["warnings"][0].startswith("bounce rate 25.0%")

    # Processing again finds nothing; the same report dropped again changes nothing.
    (site / "var" / "bounces" / "new" / "1764061999.V801I2M4.mx1").write_bytes(dsn)
    again = json.loads(cli(site, "bounces", "process", "--json").stdout)
    assert again["duplicate"] == 1 and again["applied"] == 0

    # By hand: unsuppress (recorded), then the next forced issue reaches the address again.
    cli(site, "subscribers", "unsuppress", READERS[0], "--note", "mailbox restored")
    write_item(site, 3)
    cli(site, "ingest")
    cli(site, "digest", "send", "weekly", "--force")
    assert len(smtp_server.accepted_for(READERS[0])) == 2
    cli(site, "subscribers", "suppress", READERS[0], "--reason", "complained", "--note", "phoned in")
    shown = json.loads(cli(site, "subscribers", "show", READERS[0], "--json").stdout)
    assert {s["status"] for s in shown["lists"]} == {"complained"}
    assert shown["feedback"][-1]["source"] == "cli" and shown["feedback"][-1]["diagnostic"] == "phoned in"
