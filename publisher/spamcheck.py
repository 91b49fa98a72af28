"""SpamAssassin's verdict on one message: its score and every rule it hit.

Why: whether a digest reaches the inbox is decided by filters we do not run, and an
admin's template override can undo what the built-in templates get right (a hidden
preheader, text coloured like its background). SpamAssassin is the one widely deployed
filter whose rules anyone can run locally, so ``publisher digest preview LIST
--spam-check`` and ``tests/test_deliverability.py`` both ask it, through this module,
about the very bytes the product sends.

How it is run: ``spamassassin -t -L`` (test mode, local tests only: no DNS blocklists,
no network at all), with a throw-away home folder and user preferences, so nothing of
the user running it (their Bayes database, whitelists, ``user_prefs``) changes the
verdict and nothing is learned from the message (``bayes_auto_learn 0``). The scores
are read from a header SpamAssassin is told to add (``_TESTSSCORES_``: every rule with
its exact score), the descriptions from its report, in English (``LANG=C``).

What counts as clean: a score of at most 0 and no rule that adds points. SpamAssassin
gives purely informational rules (``HTML_MESSAGE``: the message has an HTML part) a
score of 0.001, because a score of 0 would switch the rule off; such a rule adds
nothing, so a rule "adds points" when its score is above :data:`INFORMATIONAL`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from publisher.errors import ToolError

SPAMASSASSIN = "spamassassin"
INFORMATIONAL = 0.001  # SpamAssassin's score for rules that only inform
TIMEOUT = 120.0  # seconds; a run takes about one (loading the rules is most of it)
_RULES_HEADER = "X-Spam-Publisher-Rules"
_SETTINGS = (
    f"add_header all {_RULES_HEADER.removeprefix('X-Spam-')} _TESTSSCORES(,)_",
    "bayes_auto_learn 0",
    "report_safe 0",
)
_STATUS = re.compile(r"score=(-?[\d.]+)\s+required=(-?[\d.]+)")
_REPORT_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")
_INSTALL_HINT = "install Debian's spamassassin package (`make system-deps` does it)"


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One SpamAssassin rule the message hit, with its exact score."""

    name: str
    score: float
    description: str = ""

    @property
    def adds_points(self) -> bool:
        """True for a rule that counts against the message (not merely informational)."""
        return self.score > INFORMATIONAL


@dataclass(frozen=True, slots=True)
class SpamReport:
    """SpamAssassin's verdict: the total, the threshold it compares with, the rules hit."""

    score: float
    required: float
    rules: list[RuleHit] = field(default_factory=list)
    version: str = ""

    @property
    def clean(self) -> bool:
        """At most 0 points in all and no rule adding any: nothing a filter holds against it."""
        return self.score <= 0 and not self.adding_points

    @property
    def adding_points(self) -> list[RuleHit]:
        return [rule for rule in self.rules if rule.adds_points]

    def lines(self) -> list[str]:
        """One line per rule hit, highest score first: what a person reads."""
        return [
            f"{rule.score:+7.3f} {rule.name}" + (f"  {rule.description}" if rule.description else "")
            for rule in sorted(self.rules, key=lambda r: (-r.score, r.name))
        ]

    def as_dict(self) -> dict[str, object]:
        return {
            "score": self.score,
            "required": self.required,
            "clean": self.clean,
            "version": self.version,
            "rules": [
                {"name": r.name, "score": r.score, "adds_points": r.adds_points, "description": r.description}
                for r in sorted(self.rules, key=lambda r: (-r.score, r.name))
            ],
        }


def find_spamassassin() -> str:
    """The path of the ``spamassassin`` program; ToolError (exit 2) when it is not installed."""
    path = shutil.which(SPAMASSASSIN)
    if path is None:
        raise ToolError(f"{SPAMASSASSIN} is not installed: {_INSTALL_HINT}", missing=True)
    return path


def check_message(message: bytes, *, program: str | None = None, timeout: float = TIMEOUT) -> SpamReport:
    """Run SpamAssassin (local tests only, no user state) on ``message`` and read its verdict."""
    program = program or find_spamassassin()
    with tempfile.TemporaryDirectory(prefix="publisher-spamcheck-") as home:
        prefs = Path(home) / "user_prefs"
        prefs.write_text("")
        env = {
            "HOME": home,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
        }
        command = [program, "-t", "-L", "-x", f"--prefspath={prefs}"]
        command += [f"--cf={line}" for line in _SETTINGS]
        try:
            done = subprocess.run(
                command, input=message, capture_output=True, env=env, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise ToolError(f"{SPAMASSASSIN} did not answer within {timeout:.0f} s") from e
        except OSError as e:
            raise ToolError(f"{SPAMASSASSIN} could not be started: {e.strerror}", missing=True) from e
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        problem = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ToolError(
            f"{SPAMASSASSIN} failed (exit {done.returncode}): {problem[-1] if problem else 'no message'}"
        )
    return parse_report(output)


def parse_report(output: str) -> SpamReport:
    """The verdict in the output of ``spamassassin -t`` run with this module's settings."""
    headers = _unfolded_headers(output)
    status = _STATUS.search(headers.get("x-spam-status", ""))
    rules_value = headers.get(_RULES_HEADER.lower())
    if status is None or rules_value is None:
        raise ToolError(f"{SPAMASSASSIN} gave no verdict (no X-Spam-Status header in its output)")
    descriptions = _descriptions(output)
    rules = []
    for entry in rules_value.replace(" ", "").split(","):
        if not entry or entry == "none":
            continue
        name, _, value = entry.partition("=")
        rules.append(RuleHit(name, float(value or 0), descriptions.get(name, "")))
    checker = headers.get("x-spam-checker-version", "")  # "SpamAssassin 4.0.1 (2024-03-25) on host"
    version = checker.split(" on ")[0].removeprefix("SpamAssassin ")
    # The sum of the exact scores: X-Spam-Status rounds to a tenth (-0.001 shows as -0.0).
    score = round(sum(rule.score for rule in rules), 3) if rules else float(status.group(1))
    return SpamReport(score, float(status.group(2)), rules, version)


def _unfolded_headers(output: str) -> dict[str, str]:
    head = re.split(r"\r?\n\r?\n", output, maxsplit=1)[0]
    headers: dict[str, str] = {}
    for line in re.sub(r"\r?\n[ \t]+", " ", head).splitlines():
        name, colon, value = line.partition(":")
        if colon and name.lower() not in headers:  # the first one: SpamAssassin puts its own on top
            headers[name.lower()] = value.strip()
    return headers


def _descriptions(output: str) -> dict[str, str]:
    """Rule descriptions from the report's table (a description may wrap onto more lines)."""
    _, found, table = output.rpartition("Content analysis details:")
    if not found:
        return {}
    descriptions: dict[str, str] = {}
    current = ""
    for line in table.splitlines()[1:]:
        match = _REPORT_LINE.match(line)
        if match:
            current = match.group(2)
            descriptions[current] = match.group(3).strip()
        elif current and line.startswith(" " * 10) and line.strip():
            descriptions[current] += " " + line.strip()
        elif not line.strip() and descriptions:
            current = ""
    return descriptions
