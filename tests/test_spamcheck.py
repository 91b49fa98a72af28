"""Reading SpamAssassin's verdict, and the errors when it cannot be had.

The real SpamAssassin judges real mails in tests/test_deliverability.py; here its
output format is pinned (so a change in it is noticed), and the failure modes are
made with small stand-in programs, since a real SpamAssassin cannot be made to hang
or crash on demand.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from publisher.errors import ToolError
from publisher.spamcheck import RuleHit, SpamReport, check_message, find_spamassassin, parse_report

# What `spamassassin -t -L` prints with publisher.spamcheck's settings (4.0.1, Debian 12).
OUTPUT = """Return-Path: <news@example.org>
X-Spam-Checker-Version: SpamAssassin 4.0.1 (2024-03-25) on vm
X-Spam-Level:
X-Spam-Status: No, score=-0.3 required=5.0 tests=HTML_FONT_LOW_CONTRAST,
\tHTML_MESSAGE,MAILING_LIST_MULTI,NO_RECEIVED,NO_RELAYS
\tautolearn=disabled version=4.0.1
X-Spam-Publisher-Rules: HTML_FONT_LOW_CONTRAST=0.713,HTML_MESSAGE=0.001,
\tMAILING_LIST_MULTI=-1,NO_RECEIVED=-0.001,NO_RELAYS=-0.001
From: Social Protection <news@example.org>
Subject: Content analysis details: in a subject is not the report

Body text.

Content analysis details:   (-0.3 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RECEIVED            Informational: message has no Received headers
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to
                            background
 0.0 HTML_MESSAGE           BODY: HTML included in message
-1.0 MAILING_LIST_MULTI     Multiple indicators imply a widely-seen list
                            manager

"""


def test_the_verdict_is_read_with_exact_scores_and_whole_descriptions() -> None:
    report = parse_report(OUTPUT)
    assert report.version == "4.0.1 (2024-03-25)"
    assert report.required == 5.0
    assert report.score == -0.288  # the exact sum; the header says -0.3
    hits = {rule.name: rule for rule in report.rules}
    assert hits["HTML_FONT_LOW_CONTRAST"] == RuleHit(
        "HTML_FONT_LOW_CONTRAST", 0.713, "BODY: HTML font color similar or identical to background"
    )
    assert hits["MAILING_LIST_MULTI"].description.endswith("widely-seen list manager")
    assert not report.clean and [r.name for r in report.adding_points] == ["HTML_FONT_LOW_CONTRAST"]
    assert (
        report.lines()[0]
        == " +0.713 HTML_FONT_LOW_CONTRAST  BODY: HTML font color similar or identical to background"
    )


def test_informational_rules_add_nothing() -> None:
    report = SpamReport(-0.001, 5.0, [RuleHit("HTML_MESSAGE", 0.001), RuleHit("NO_RELAYS", -0.001)])
    assert report.clean and not report.adding_points
    assert not SpamReport(0.1, 5.0, [RuleHit("X", 0.1)]).clean
    assert not SpamReport(0.5, 5.0, []).clean  # a total above 0, whatever the rules


def test_output_without_a_verdict_is_an_error() -> None:
    with pytest.raises(ToolError, match="gave no verdict"):
        parse_report("From: a@example.org\n\nno headers of spamassassin here\n")


def _program(folder: Path, script: str) -> str:
    path = folder / "spamassassin"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_missing_spamassassin_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"spamassassin is not installed: install Debian's spamassassin") as e:
        find_spamassassin()
    assert e.value.exit_code == 2


def test_a_failing_or_silent_spamassassin_is_an_error(tmp_path: Path) -> None:
    crashing = _program(tmp_path, 'echo "config: cannot open rules" >&2\nexit 3\n')
    with pytest.raises(ToolError, match=r"failed \(exit 3\): config: cannot open rules") as e:
        check_message(b"Subject: x\r\n\r\nx\r\n", program=crashing)
    assert e.value.exit_code == 1
    hanging = _program(tmp_path, "exec sleep 30\n")
    with pytest.raises(ToolError, match="did not answer within 1 s"):
        check_message(b"Subject: x\r\n\r\nx\r\n", program=hanging, timeout=1)


def test_spamassassin_runs_local_tests_only_in_a_throw_away_home(tmp_path: Path) -> None:
    """What the program is given: -t -L, a fresh HOME and empty preferences, nothing learned."""
    seen = tmp_path / "seen"
    script = (
        f'printf "%s\\n" "$HOME" "$LANG" "$@" > {seen}\n'
        'printf "X-Spam-Status: No, score=0.0 required=5.0\\nX-Spam-Publisher-Rules: none\\n\\n"\n'
    )
    report = check_message(b"Subject: x\r\n\r\nx\r\n", program=_program(tmp_path, script))
    assert report.rules == [] and report.score == 0.0 and report.clean
    home, lang, *args = seen.read_text().splitlines()
    assert home != str(Path.home()) and "publisher-spamcheck-" in home
    assert not Path(home).exists()  # thrown away afterwards
    assert lang == "C"  # rule descriptions in English, whatever the admin's locale
    assert args[:3] == ["-t", "-L", "-x"]  # test mode, local tests only, no preferences created
    assert f"--prefspath={home}/user_prefs" in args
    assert "--cf=bayes_auto_learn 0" in args
