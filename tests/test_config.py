"""config.toml validation: every mistake named by key path, value and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from publisher.config import load_config, parse_duration, settings_from_dict
from publisher.errors import ConfigError

REPO = Path(__file__).parent.parent


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data)
    return info.value.problems


def test_the_embedded_default_is_valid() -> None:
    settings = load_config(REPO / "config.toml")
    assert settings.site.timezone == "Europe/Zurich"
    assert [c.slug for c in settings.categories][:2] == ["press-releases", "news"]
    assert settings.sources[0].type == "directory"
    # relative paths resolve against the config file's folder, whatever the cwd
    assert settings.feeds.output_dir == REPO / "public"
    assert settings.storage.url == f"sqlite:///{REPO / 'var' / 'publisher.db'}"


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[site]\ntitle = "x"\nbase_url = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "column" in message


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "nope.toml")


def test_unknown_keys_are_refused_with_their_path() -> None:
    found = problems({"site": {"titel": "x"}, "feeds": {"max_items": 5, "format": ["rss"]}})
    assert any(p.startswith("site.titel: unknown key") for p in found)
    assert any(p.startswith("feeds.format: unknown key") for p in found)


def test_secrets_are_not_accepted_in_the_file() -> None:
    (found,) = problems({"smtp": {"password": "hunter2"}})
    assert "smtp.password" in found and "password_env" in found


def test_bad_values_name_key_value_and_what_is_allowed() -> None:
    found = problems(
        {
            "site": {"timezone": "Mars/Olympus", "base_url": "example.org"},
            "feeds": {"formats": ["rss", "rdf"], "max_items": 0},
            "smtp": {"security": "ssl"},
        }
    )
    text = "\n".join(found)
    assert "site.timezone" in text and "Mars/Olympus" in text and "Europe/Zurich" in text
    assert "site.base_url" in text and "http" in text
    assert "feeds.formats" in text and "rdf" in text
    assert "feeds.max_items" in text
    assert "smtp.security" in text and "'none'" in text


def test_sources_are_named_in_errors() -> None:
    (found,) = problems(
        {
            "sources": [
                {"name": "page", "type": "html", "url": "x", "item": "li", "title": "h3", "link": "a@href"}
            ]
        }
    )
    assert found == "sources[1] 'page'.date: required key is missing"


def test_cross_references_are_checked() -> None:
    found = problems(
        {
            "categories": [{"slug": "news", "title": "News", "labels": ["News"]}],
            "lists": [
                {
                    "slug": "w",
                    "name": "W",
                    "sender": "a@example.org",
                    "categories": ["nope"],
                    "schedule": "missing",
                }
            ],
        }
    )
    assert any("lists[1] 'w'.categories" in p and "'nope'" in p for p in found)
    assert any("lists[1] 'w'.schedule" in p and "[schedules.missing]" in p for p in found)


def test_numeric_cron_weekdays_are_refused_with_the_reason() -> None:
    (found,) = problems({"schedules": {"weekly": {"cron": "0 9 * * 1", "job": "digest"}}})
    assert "schedules.weekly.cron" in found and "Monday" in found and "mon" in found


def test_cron_fields_are_checked_at_start_not_when_scheduling() -> None:
    for cron in ("61 9 * * mon", "0 9 * * monday", "0 25 * * *"):
        (found,) = problems({"schedules": {"x": {"cron": cron, "job": "digest"}}})
        assert found.startswith("schedules.x.cron:") and repr(cron) in found


def test_list_reply_addresses_are_checked() -> None:
    found = problems(
        {
            "lists": [
                {
                    "slug": "w",
                    "name": "W",
                    "sender": "a@example.org",
                    "reply_to": "nobody",
                    "unsubscribe_mailto": "x@example.org\r\nBcc: y@example.org",
                }
            ]
        }
    )
    assert any(p.startswith("lists[1] 'w'.reply_to:") for p in found)
    assert any(p.startswith("lists[1] 'w'.unsubscribe_mailto:") for p in found)


def test_schedule_needs_exactly_one_trigger() -> None:
    (found,) = problems({"schedules": {"x": {"job": "ingest"}}})
    assert "every" in found and "cron" in found


def test_durations() -> None:
    assert parse_duration("15m").total_seconds() == 900
    assert parse_duration("14d").days == 14
    with pytest.raises(ValueError, match="s, m, h or d"):
        parse_duration("two weeks")
    (found,) = problems({"schedules": {"x": {"every": "fortnight", "job": "ingest"}}})
    assert "schedules.x.every" in found


@pytest.mark.parametrize(
    ("table", "body"),
    [
        ("site", "[site]\nlanguage = 'en\"><script>'\n"),
        ("sources[1] 's'", '[[sources]]\nname = "s"\ntype = "directory"\npath = "c"\nlanguage = "en gb"\n'),
    ],
)
def test_a_language_that_is_not_a_bcp47_tag_is_a_config_error(tmp_path: Path, table: str, body: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=rf"{re.escape(table)}\.language: .*is not a language tag"):
        load_config(path)
