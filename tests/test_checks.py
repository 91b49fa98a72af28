"""`publisher check` finds what would otherwise fail at send time (issue 8, point 1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from publisher.checks import check_settings
from publisher.config import Settings
from publisher.errors import ConfigError

Make = Callable[..., Settings]


def weekly(**overrides: Any) -> dict[str, Any]:
    return {"slug": "weekly", "name": "Weekly", "sender": "News <news@example.org>", **overrides}


def only_error(settings: Settings) -> str:
    report = check_settings(settings)
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


def test_the_embedded_default_passes(make_settings: Make) -> None:
    report = check_settings(make_settings(lists=[weekly()]))
    assert report.ok and report.warnings == []


def test_a_list_template_that_does_not_exist(make_settings: Make) -> None:
    error = only_error(make_settings(lists=[weekly(html_template="email/weekly.html.j2")]))
    assert error.startswith("lists[1] 'weekly'.html_template: template 'email/weekly.html.j2' not found")


def test_a_templates_folder_that_does_not_exist(make_settings: Make, tmp_path: Path) -> None:
    error = only_error(make_settings(templates={"path": str(tmp_path / "nope")}))
    assert error.startswith(f"templates.path: {tmp_path / 'nope'} is not a folder")


def test_an_override_with_a_syntax_error(make_settings: Make, tmp_path: Path) -> None:
    (tmp_path / "over" / "email").mkdir(parents=True)
    (tmp_path / "over" / "email" / "digest.txt.j2").write_text("Hello\n{% if %}\n")
    error = only_error(make_settings(templates={"path": str(tmp_path / "over")}, lists=[weekly()]))
    assert error.startswith("lists[1] 'weekly'.text_template: ") and "line 2: syntax error" in error


def test_an_override_of_any_page_or_layout_is_compiled(make_settings: Make, tmp_path: Path) -> None:
    """The layout every page extends, and a console page, are checked like the rest."""
    (tmp_path / "over" / "web" / "admin").mkdir(parents=True)
    (tmp_path / "over" / "web" / "base.html.j2").write_text("<html>{% block body %}\n")
    (tmp_path / "over" / "web" / "admin" / "items.html.j2").write_text("{{ }}\n")
    report = check_settings(make_settings(templates={"path": str(tmp_path / "over")}))
    assert len(report.errors) == 2, report.errors
    assert report.errors[0].startswith("templates: web/admin/items.html.j2: ")
    assert report.errors[1].startswith("templates: web/base.html.j2: ")


def test_a_subscribers_file_that_does_not_exist(make_settings: Make, tmp_path: Path) -> None:
    error = only_error(make_settings(lists=[weekly(subscribers=str(tmp_path / "weekly.csv"))]))
    assert error.startswith(f"lists[1] 'weekly'.subscribers: {tmp_path / 'weekly.csv'} does not exist")


def test_bad_rows_of_a_subscribers_file_are_named_with_their_line(
    make_settings: Make, tmp_path: Path
) -> None:
    (tmp_path / "weekly.csv").write_text("email,name\na@example.org,A\nnot-an-address,B\n")
    report = check_settings(make_settings(lists=[weekly(subscribers=str(tmp_path / "weekly.csv"))]))
    assert report.ok
    (warning,) = report.warnings
    assert "weekly.csv:3: invalid address 'not-an-address'" in warning


def test_a_list_on_a_schedule_that_never_sends(make_settings: Make) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(
            schedules={"hourly": {"every": "1h", "job": "ingest"}}, lists=[weekly(schedule="hourly")]
        )
    (problem,) = info.value.problems
    assert problem.startswith("lists[1] 'weekly'.schedule: [schedules.hourly] runs job 'ingest'")
    assert 'job = "digest"' in problem


def test_a_subject_with_broken_jinja(make_settings: Make) -> None:
    error = only_error(make_settings(lists=[weekly(subject="{{ items|length } new")]))
    assert error == "lists[1] 'weekly'.subject, line 1: syntax error: unexpected '}'"


def test_a_subject_with_an_undefined_field(make_settings: Make) -> None:
    error = only_error(make_settings(lists=[weekly(subject="{{ list.title }}: news")]))
    assert error == (
        "lists[1] 'weekly'.subject, line 1: undefined value: "
        "List has no field 'title'; its fields: name, slug"
    )


def test_a_template_using_an_undefined_field(make_settings: Make, tmp_path: Path) -> None:
    (tmp_path / "over" / "email").mkdir(parents=True)
    (tmp_path / "over" / "email" / "digest.txt.j2").write_text("{{ subscriber.nickname }}\n")
    error = only_error(make_settings(templates={"path": str(tmp_path / "over")}, lists=[weekly()]))
    assert error.startswith("lists[1] 'weekly': ") and "no field 'nickname'; its fields: email, name" in error


def test_a_dkim_key_that_does_not_load(make_settings: Make, tmp_path: Path) -> None:
    (tmp_path / "dkim.pem").write_text("not a key")
    settings = make_settings(
        dkim={"selector": "s", "domain": "example.org", "key_path": str(tmp_path / "dkim.pem")}
    )
    error = only_error(settings)
    assert error.startswith("dkim.key_path:") and "not a usable RSA private key" in error


def test_a_loopback_base_url_on_another_port_is_a_warning(make_settings: Make) -> None:
    report = check_settings(make_settings(site={"base_url": "http://127.0.0.1:9000"}, web={"port": 8080}))
    assert report.ok
    (warning,) = report.warnings
    assert warning.startswith(
        "site.base_url: http://127.0.0.1:9000 points at port 9000 but [web] port is 8080"
    )


def test_every_problem_is_reported_at_once(make_settings: Make, tmp_path: Path) -> None:
    report = check_settings(
        make_settings(
            lists=[
                weekly(text_template="email/missing.txt.j2"),
                weekly(slug="press", subject="{{ nope }}", subscribers=str(tmp_path / "press.csv")),
            ]
        )
    )
    assert len(report.errors) == 3


def test_a_bounce_maildir_that_is_not_there_and_a_missing_address(
    make_settings: Make, tmp_path: Path
) -> None:
    report = check_settings(make_settings(bounces={"maildir": str(tmp_path / "bounces")}))
    assert any(e.startswith("bounces.maildir:") and "not a Maildir" in e for e in report.errors)
    assert any(w.startswith("bounces.address is not set") for w in report.warnings)
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "bounces" / sub).mkdir(parents=True)
    report = check_settings(
        make_settings(bounces={"address": "bounces@example.org", "maildir": str(tmp_path / "bounces")})
    )
    assert not [e for e in report.errors if "bounces" in e] and not [
        w for w in report.warnings if "bounces" in w
    ]


def test_a_template_that_would_exhaust_memory_is_reported(make_settings: Make, tmp_path: Path) -> None:
    (tmp_path / "over" / "email").mkdir(parents=True)
    (tmp_path / "over" / "email" / "digest.txt.j2").write_text("{{ 'x' * 10**9 }}\n")
    error = only_error(make_settings(templates={"path": str(tmp_path / "over")}, lists=[weekly()]))
    assert (
        error.startswith("lists[1] 'weekly': ")
        and "digest.txt.j2, line 1: not allowed in a template" in error
    )
    assert "1,000,000,000 characters" in error


def test_a_subject_that_would_loop_for_hours_is_reported(make_settings: Make) -> None:
    subject = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}News"
    error = only_error(make_settings(lists=[weekly(subject=subject)]))
    assert error.startswith("lists[1] 'weekly'.subject, line 1: not allowed in a template: ")
    assert "loops more than 1,000,000 times" in error


def test_a_message_too_big_for_a_relay_is_reported(make_settings: Make, tmp_path: Path) -> None:
    (tmp_path / "over" / "email").mkdir(parents=True)
    (tmp_path / "over" / "email" / "digest.txt.j2").write_text("{{ '%s' % '=' * 999999 }}" * 4)
    error = only_error(make_settings(templates={"path": str(tmp_path / "over")}, lists=[weekly()]))
    assert error.startswith("lists[1] 'weekly': email/digest.txt.j2, email/digest.html.j2: a message of list")
    assert "at most 10 MB is sent" in error


def test_a_secret_whose_variable_is_not_set_is_a_warning_naming_key_and_variable(
    make_settings: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REV_NOPE_PW", "REV_NOPE_IMAP", "REV_NOPE_HOOK"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "bounces").mkdir()
    settings = make_settings(
        smtp={"username": "u", "password_env": "REV_NOPE_PW"},
        bounces={
            "address": "bounces@example.org",
            "imap": {"host": "imap.example.org", "username": "b", "password_env": "REV_NOPE_IMAP"},
            "webhook_secret_env": "REV_NOPE_HOOK",
        },
    )
    report = check_settings(settings)
    assert report.ok, report.errors
    secrets = [w for w in report.warnings if "_env: REV_NOPE_" in w]
    assert [w.split(" is not set")[0] for w in secrets] == [
        "smtp.password_env: REV_NOPE_PW",
        "bounces.imap.password_env: REV_NOPE_IMAP",
        "bounces.webhook_secret_env: REV_NOPE_HOOK",
    ]
    monkeypatch.setenv("REV_NOPE_PW", "s3cret-smtp")
    monkeypatch.setenv("REV_NOPE_IMAP", "s3cret-imap")
    monkeypatch.setenv("REV_NOPE_HOOK", "s3cret-hook")
    report = check_settings(settings)
    assert not [w for w in report.warnings if "REV_NOPE_" in w or "s3cret" in w]
    # No username: the relay takes mail without a login, no password is needed.
    monkeypatch.delenv("REV_NOPE_PW")
    assert check_settings(make_settings(smtp={"password_env": "REV_NOPE_PW"})).warnings == []
