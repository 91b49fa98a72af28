"""config.toml validation: every mistake named by key path, value and fix."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publisher.config import cron_never_fires, load_config, parse_duration, settings_from_dict
from publisher.errors import ConfigError
from publisher.periods import next_fire_times, schedule_trigger

REPO = Path(__file__).parent.parent
# A site with the postal address public lists require, for tests about another key.
ADDRESS = {"postal_address": "1 Main Street, Geneva"}


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


# -- hostile or odd configs (issue 7, fault 12) --------------------------------------


@pytest.mark.parametrize("value", ["50", True, 50.0])
def test_numbers_are_strict(value: object) -> None:
    (found,) = problems({"feeds": {"max_items": value}})
    assert found.startswith("feeds.max_items:") and "integer" in found and repr(value) in found


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "30", False, 3601])
def test_timeouts_are_finite_and_at_most_an_hour(value: object) -> None:
    (found,) = problems({"sources": [{"name": "s", "type": "feed", "url": "x", "timeout": value}]})
    assert found.startswith("sources[1] 's'.timeout:")


def test_booleans_are_strict() -> None:
    lst = {"slug": "w", "name": "W", "sender": "a@example.org", "send_empty": 1}
    (found,) = problems({"site": ADDRESS, "lists": [lst]})
    assert found.startswith("lists[1] 'w'.send_empty:") and "boolean" in found


def test_a_public_list_requires_the_postal_address_and_says_why() -> None:
    lists = [
        {"slug": "w", "name": "W", "sender": "a@example.org"},
        {"slug": "staff", "name": "S", "sender": "a@example.org", "public": False},
    ]
    (found,) = problems({"lists": lists})
    assert found.startswith("site.postal_address: required because list 'w' is public")
    assert "bulk-mail law" in found and "public = false" in found
    (blank,) = problems({"site": {"postal_address": "  "}, "lists": lists})
    assert blank.startswith("site.postal_address: required")
    # private lists only: no footer address is required
    private = settings_from_dict({"lists": [lists[1]]})
    assert private.lists[0].public is False and private.site.postal_address == ""
    with_address = settings_from_dict({"site": {"postal_address": "1 Main Street"}, "lists": lists})
    assert with_address.lists[0].public is True


def test_admin_users_whose_hash_variables_collide_are_refused() -> None:
    (found,) = problems({"admin": {"users": ["ops-team", "ops_team"]}})
    assert found.startswith("admin.users:")
    assert "'ops-team' and 'ops_team' would share the hash in PUBLISHER_ADMIN_OPS_TEAM_HASH" in found
    assert settings_from_dict({"admin": {"users": ["ops-team", "ops"]}}).admin.users == ["ops-team", "ops"]


def test_public_is_a_strict_boolean() -> None:
    lst = {"slug": "w", "name": "W", "sender": "a@example.org", "public": "no"}
    (found,) = problems({"site": {"postal_address": "x"}, "lists": [lst]})
    assert found.startswith("lists[1] 'w'.public:") and "boolean" in found


def test_huge_durations_are_a_configuration_error() -> None:
    lst = {"slug": "w", "name": "W", "sender": "a@example.org", "max_age": "100000000000000000000d"}
    (found,) = problems({"site": ADDRESS, "lists": [lst]})
    assert found.startswith("lists[1] 'w'.max_age:") and "100 years" in found
    with pytest.raises(ValueError, match="100 years"):
        parse_duration("36501d")
    assert parse_duration("36500d").days == 36500


def test_a_deeply_nested_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("x = " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_deep_values_under_known_keys_are_a_configuration_error() -> None:
    deep: object = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(ConfigError):
        settings_from_dict({"categories": deep})


def test_css_selectors_are_compiled_when_the_config_is_read() -> None:
    source = {
        "name": "page",
        "type": "html",
        "url": "x",
        "item": "li.news-item",
        "title": "h3 a[",
        "link": "h3 a@href",
        "date": "span..date",
    }
    found = problems({"sources": [source]})
    assert any(p.startswith("sources[1] 'page'.title:") and "'h3 a['" in p for p in found)
    assert any(p.startswith("sources[1] 'page'.date:") for p in found)
    assert not any(".link:" in p for p in found)  # selector@attribute is fine


_KEYS = {
    "site": ["title", "base_url", "language", "timezone", "description", "postal_address"],
    "storage": ["url"],
    "feeds": ["output_dir", "formats", "max_items", "archive_page_size", "websub_hubs", "languages"],
    "smtp": ["host", "port", "security", "connections", "rate_per_second", "timeout"],
    "web": ["host", "port", "keep_alive_timeout", "header_timeout", "forwarded_allow_ips"],
    "delivery": ["retry_min", "give_up", "batch_size", "journal_dir"],
    "templates": ["path"],
    "items": ["max_title_length"],
    "scheduler": ["takeover"],
}


def _values() -> st.SearchStrategy[object]:
    scalars = (
        st.none().map(lambda _: "")
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=30)
        | st.sampled_from(
            ["15m", "0d", "99999999999999999999d", "Europe/Zurich", "Europe", "../..", "\x00", "~nobody/x"]
        )
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )


@st.composite
def _configs(draw: st.DrawFn) -> dict[str, object]:
    data: dict[str, object] = {}
    for table in draw(st.lists(st.sampled_from(sorted(_KEYS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.sampled_from(_KEYS[table]), max_size=3, unique=True))
        data[table] = {k: draw(_values()) for k in keys}
    if draw(st.booleans()):
        data["sources"] = [
            {"name": "s", "type": draw(st.sampled_from(["feed", "html", "directory", "x"])), "url": "u"}
            | draw(st.dictionaries(st.sampled_from(["item", "title", "timeout", "path"]), _values()))
        ]
    if draw(st.booleans()):
        data["schedules"] = {draw(st.text(max_size=6)): {"every": draw(_values()), "job": draw(_values())}}
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_configs())
@example({"site": {"timezone": "Europe"}})  # a folder of the zone database
@example({"templates": {"path": "~nobody-here/x"}})
@example({"feeds": {"output_dir": "a\x00b"}})
@example({"storage": {"url": "sqlite:///~nobody-here/db"}})
@example({"sources": [{"name": "s", "type": "feed", "url": "~nobody-here/feed.xml"}]})
def test_any_config_is_valid_or_a_configuration_error(data: dict[str, object]) -> None:
    """Whatever the file holds, `check` answers with settings or a ConfigError (exit 2)."""
    with contextlib.suppress(ConfigError):
        settings_from_dict(data)


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


def test_durations_are_parsed_once_into_timedeltas_that_print_as_written() -> None:
    settings = settings_from_dict(
        {
            "site": {"postal_address": "1 Main Street, Geneva"},
            "schedules": {"often": {"every": "90m", "job": "ingest", "catch_up": "24h"}},
            "lists": [{"slug": "w", "name": "W", "sender": "a@example.org", "max_age": "14d"}],
        }
    )
    schedule, lst = settings.schedules["often"], settings.lists[0]
    assert schedule.every == timedelta(minutes=90) and str(schedule.every) == "90m"
    assert str(schedule.catch_up) == "24h" and lst.max_age == timedelta(days=14)
    assert settings.delivery.give_up == timedelta(days=3) and str(settings.delivery.give_up) == "3d"
    (found,) = problems({"schedules": {"x": {"every": 900, "job": "ingest"}}})
    assert found.startswith("schedules.x.every:") and "write it as text" in found


def test_scheduler_takeover_defaults_to_30s_and_stays_within_5s_to_10m() -> None:
    assert str(settings_from_dict({}).scheduler.takeover) == "30s"
    assert settings_from_dict({"scheduler": {"takeover": "2m"}}).scheduler.takeover == timedelta(minutes=2)
    for bad in ("4s", "11m", "1d"):
        (found,) = problems({"scheduler": {"takeover": bad}})
        assert found.startswith("scheduler.takeover:") and "outside 5s..10m" in found, found


# -- errors in plain words (issue 8, point 2) -------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"site": {"timezon": "UTC"}}, "site.timezon: unknown key; did you mean 'timezone'?"),
        ({"smpt": {}}, "smpt: unknown key; did you mean 'smtp'?"),
        (
            {"sources": [{"name": "s", "type": "feed", "url": "u", "timout": 3}]},
            "sources[1] 's'.timout: unknown key; did you mean 'timeout'?",
        ),
        (
            {"schedules": {"a": {"evry": "1m", "job": "ingest"}}},
            "schedules.a.evry: unknown key; did you mean 'every'?",
        ),
    ],
)
def test_a_misspelled_key_gets_the_nearest_known_key(data: dict[str, object], expected: str) -> None:
    (found,) = problems(data)
    assert found.startswith(expected)


def test_a_far_fetched_key_gets_no_guess() -> None:
    lst = {"slug": "a", "name": "A", "sender": "a@example.org", "xyzzy": 1}
    (found,) = problems({"site": ADDRESS, "lists": [lst]})
    assert found.startswith("lists[1] 'a'.xyzzy: unknown key (remove it")


def test_a_source_without_or_with_an_unknown_type_lists_the_types() -> None:
    (missing,) = problems({"sources": [{"name": "s", "url": "u"}]})
    assert missing.startswith("sources[1] 's'.type: required key is missing; write type = \"directory\"")
    (unknown,) = problems({"sources": [{"name": "s", "type": "rss", "url": "u"}]})
    assert unknown.startswith("sources[1] 's'.type: 'rss' is not a source type; use \"directory\", \"feed\"")
    assert '"html"' in missing and '"html"' in unknown


def test_a_bad_slug_says_what_a_slug_is() -> None:
    (found,) = problems({"categories": [{"slug": "Press Releases", "title": "x"}]})
    assert found == (
        "categories[1] 'Press Releases'.slug: 'Press Releases' is not a slug: use lower-case letters, "
        "digits and '-', starting with a letter or digit (e.g. 'press-releases')"
    )


# -- the web sign-up (issue 9) ------------------------------------------------------------


def test_subscriptions_defaults_and_lists_are_public_by_default() -> None:
    s = settings_from_dict(
        {
            "site": {"postal_address": "1 Example Street, Geneva"},
            "lists": [{"slug": "w", "name": "W", "sender": "a@example.org"}],
        }
    )
    assert s.subscriptions.confirm_within == timedelta(days=7)
    assert s.subscriptions.resend_after == timedelta(minutes=10)
    assert s.subscriptions.per_ip_per_hour == 20
    assert s.lists[0].public is True


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("per_ip_per_hour", "20", "integer"),
        ("per_ip_per_hour", 0, "greater than or equal to 1"),
        ("confirm_within", 7, "duration"),
        ("resend_after", "soon", "duration"),
    ],
)
def test_subscriptions_keys_are_strict(key: str, value: object, says: str) -> None:
    (found,) = problems({"subscriptions": {key: value}})
    assert found.startswith(f"subscriptions.{key}:") and says in found


def test_list_public_is_a_strict_boolean() -> None:
    (found,) = problems({"lists": [{"slug": "w", "name": "W", "sender": "a@example.org", "public": "no"}]})
    assert found.startswith("lists[1] 'w'.public:") and "boolean" in found


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    found = problems({"web": {"forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8", "*", "proxy.local"]}})
    assert len(found) == 1 and found[0].startswith("web.forwarded_allow_ips: '*', 'proxy.local': not an IP")
    networks = ["::1", "192.0.2.0/24"]
    assert settings_from_dict({"web": {"forwarded_allow_ips": networks}}).web.forwarded_allow_ips == networks
    assert settings_from_dict({"web": {"forwarded_allow_ips": []}}).web.forwarded_allow_ips == []
    assert settings_from_dict({}).web.forwarded_allow_ips == ["127.0.0.1", "::1"]


def test_exclude_selectors_of_html_sources_are_checked_when_the_config_is_read() -> None:
    source = {
        "name": "page",
        "type": "html",
        "url": "x",
        "item": "li",
        "title": "h3",
        "link": "a@href",
        "date": "span",
        "exclude": ["a.more", "div[", "a@href", " "],
    }
    found = [p for p in problems({"sources": [source]}) if ".exclude" in p]
    assert len(found) == 1
    assert found[0].startswith("sources[1] 'page'.exclude:")
    assert "'div[' is not a valid CSS selector" in found[0]
    source["exclude"] = ["a@href"]
    (attribute,) = [p for p in problems({"sources": [source]}) if ".exclude" in p]
    assert "exclude takes elements, not attributes" in attribute
    source["exclude"] = ["a.more", 'a:-soup-contains("Read more")']
    assert settings_from_dict({"sources": [source]}).sources[0].exclude == source["exclude"]


def test_feed_history_hub_and_language_keys_are_checked_with_their_path() -> None:
    found = problems(
        {
            "feeds": {
                "archive_page_size": 5,
                "websub_hubs": ["hub.example.org", "https://ok.example.org/"],
                "languages": ["fr", "not a tag", "FR"],
            }
        }
    )
    text = "\n".join(found)
    assert "feeds.archive_page_size:" in text and "10" in text
    assert "feeds.websub_hubs:" in text and "'hub.example.org' is not a hub URL" in text
    assert "feeds.languages:" in text and "'not a tag' is not a language tag" in text


def test_feed_history_hub_and_language_defaults() -> None:
    feeds = settings_from_dict({}).feeds
    assert (feeds.archive_page_size, feeds.websub_hubs, feeds.languages) == (100, [], [])
    feeds = settings_from_dict(
        {"feeds": {"languages": ["fr", "es", "fr"], "websub_hubs": ["https://h.example/"]}}
    ).feeds
    assert feeds.languages == ["fr", "es"]
    assert feeds.websub_hubs == ["https://h.example/"]
    assert problems({"feeds": {"languages": ["FR"]}}) == [
        "feeds.languages: 'FR': write a language folder in lower case, such as 'fr' or 'fr-ch'"
    ]


# -- DKIM names, senders, retry bounds, *_env names (config review) -----------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("selector", "news 2026"), ("selector", "news;2026"), ("selector", "-news"), ("domain", "example .org")],
)
def test_dkim_selector_and_domain_must_be_dns_names(key: str, value: str) -> None:
    dkim = {"selector": "news2026", "domain": "example.org", "key_path": "k.pem"} | {key: value}
    (found,) = problems({"dkim": dkim})
    assert found.startswith(f"dkim.{key}: must be a DNS name: labels of letters, digits and '-'")
    assert repr(value) in found


def test_dkim_names_with_dots_and_an_international_domain_are_accepted() -> None:
    dkim = settings_from_dict(
        {"dkim": {"selector": "news.2026", "domain": "exämple.org", "key_path": "k"}}
    ).dkim
    assert dkim is not None and (dkim.selector, dkim.domain) == ("news.2026", "xn--exmple-cua.org")


def _list_with(**keys: str) -> dict[str, object]:
    return {"site": {"postal_address": "1 Main Street"}, "lists": [{"slug": "w", "name": "W", **keys}]}


@pytest.mark.parametrize(
    ("sender", "says"),
    [
        ("Evil <news@example.org>, other@evil.com", "holds 2 addresses; write exactly one"),
        ("Smith, Jo <news@example.org>", "a name with a comma goes in double quotes"),
        ("<news@exa mple.org>", "'news@exa mple.org' is not a valid address: "),
        ("news@exa mple.org", "'news@exa mple.org' is not a valid address: "),
        ("News", "'News' is not an address"),
        ("nëws@example.org", "the part before the '@' of 'nëws@example.org' is not ASCII"),
        ("News <news@example.org>\nBcc: x@example.org", "contains a line break"),
    ],
)
def test_a_sender_must_be_exactly_one_valid_address(sender: str, says: str) -> None:
    (found,) = problems(_list_with(sender=sender))
    assert found.startswith("lists[1] 'w'.sender: ") and says in found, found


def test_reply_to_and_unsubscribe_mailto_are_checked_like_the_sender() -> None:
    found = problems(
        _list_with(
            sender="a@example.org",
            reply_to="Desk <desk@example.org>, x@evil.example",
            unsubscribe_mailto="Unsub <u@example.org>",
        )
    )
    assert len(found) == 2, found
    assert found[0].startswith("lists[1] 'w'.reply_to: holds 2 addresses")
    assert found[1].startswith("lists[1] 'w'.unsubscribe_mailto: must be one address alone")
    (query,) = problems(_list_with(sender="a@example.org", unsubscribe_mailto="u@example.org?subject=x"))
    assert "without '?...'" in query


def test_an_international_sender_domain_becomes_its_ascii_form() -> None:
    lst = settings_from_dict(
        _list_with(
            sender="Ünï <news@exämple.org>",
            reply_to='"Desk, Ünï" <desk@exämple.org>',
            unsubscribe_mailto="mailto:u@exämple.org",
        )
    ).lists[0]
    assert lst.sender == "Ünï <news@xn--exmple-cua.org>"  # the display name stays as written
    assert lst.sender_address == "news@xn--exmple-cua.org" and lst.sender_domain == "xn--exmple-cua.org"
    assert lst.reply_to == '"Desk, Ünï" <desk@xn--exmple-cua.org>'
    assert lst.unsubscribe_mailto == "u@xn--exmple-cua.org"


def test_the_bounce_address_is_one_valid_address() -> None:
    (found,) = problems({"bounces": {"address": "bounces@exa mple.org"}})
    assert found.startswith("bounces.address: must be a plain address without") and "without a name" in found
    (found,) = problems({"bounces": {"address": "bounces@example..org"}})
    assert "here: 'bounces@example..org' is not a valid address" in found
    bounces = settings_from_dict({"bounces": {"address": "Bounces@Exämple.org"}}).bounces
    assert bounces is not None and bounces.address == "bounces@xn--exmple-cua.org"


def test_retry_max_may_not_be_shorter_than_retry_min() -> None:
    (found,) = problems({"delivery": {"retry_min": "5s", "retry_max": "1s"}})
    assert found.startswith("delivery.retry_max: 1s is shorter than retry_min (5s)")
    (found,) = problems({"delivery": {"retry_max": "1m"}})  # below the default retry_min
    assert found.startswith("delivery.retry_max: 1m is shorter than retry_min (5m)")
    delivery = settings_from_dict({"delivery": {"retry_min": "5s", "retry_max": "5s"}}).delivery
    assert delivery.retry_min == delivery.retry_max == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("bounces.webhook_secret_env", "my secret value"),
        ("smtp.password_env", "hunter2!"),
        ("smtp.password_env", "1PASSWORD"),
        ("bounces.imap.password_env", "s3cr3t-v@lue"),
    ],
)
def test_an_env_key_must_name_a_variable_and_its_value_is_never_echoed(where: str, value: str) -> None:
    by_key: dict[str, dict[str, object]] = {
        "bounces.webhook_secret_env": {"bounces": {"webhook_secret_env": value}},
        "smtp.password_env": {"smtp": {"password_env": value}},
        "bounces.imap.password_env": {
            "bounces": {"imap": {"host": "h", "username": "u", "password_env": value}}
        },
    }
    with pytest.raises(ConfigError) as info:
        settings_from_dict(by_key[where])
    (found,) = info.value.problems
    assert found.startswith(f"{where}: must name the environment variable that holds the secret")
    assert value not in str(info.value)
    ok = settings_from_dict({"bounces": {"webhook_secret_env": "_HOOK_2"}}).bounces
    assert ok is not None and ok.webhook_secret_env == "_HOOK_2"


# -- every problem in one run (review: check stopped at the first field error) ---------


def test_three_independent_mistakes_are_all_reported_with_their_key_paths(tmp_path: Path) -> None:
    """A wrong type, a cron that never fires and a list naming a schedule that does not
    exist: one run names all three, the last one (a cross reference) too, although the
    other two are errors of single keys."""
    config = (REPO / "config.toml").read_text()
    config = config.replace("max_items = 50", 'max_items = "50"')
    config = config.replace('cron = "0 9 * * mon"', 'cron = "0 9 31 2 *"')
    config = config.replace(
        'schedule = "weekly-digest"\nsender = "Social Protection Press',
        'schedule = "weekly-digst"\nsender = "Social Protection Press',
    )
    path = tmp_path / "config.toml"
    path.write_text(config)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = info.value.problems
    assert len(found) == 3, found
    assert found[0] == (
        "feeds.max_items: Input should be a valid integer (got '50'); "
        "write the number without quotes: max_items = 50"
    )
    assert found[1].startswith("schedules.weekly-digest.cron: '0 9 31 2 *' never fires")
    assert found[2].startswith("lists[2] 'press'.schedule: no [schedules.weekly-digst] table")
    assert str(info.value).startswith(f"{path}: 3 problem(s)\n  - feeds.max_items:")


def test_cross_references_are_checked_beside_errors_of_single_keys() -> None:
    found = problems(
        {
            "site": {"timezone": "Mars/Olympus"},
            "categories": [{"slug": "news", "title": "News", "labels": ["News"]}],
            "lists": [
                {"slug": "w", "name": "W", "sender": "nobody", "categories": ["nope"]},  # bad sender
                {"slug": "p", "name": "P", "sender": "a@example.org", "categories": ["nope"]},
                {"slug": "p", "name": "P2", "sender": "a@example.org"},
            ],
        }
    )
    assert found[0].startswith("site.timezone:") and found[1].startswith("lists[1] 'w'.sender:")
    assert found[2:] == [
        "lists: slug 'p' appears twice; each slug must be unique",
        "lists[2] 'p'.categories: unknown category 'nope'; use '*' or one of ['news']",
        found[4],
    ]
    # Lists with a mistake of their own are still public: the footer address is required.
    assert found[4].startswith("site.postal_address: required because lists 'w', 'p', 'p' are public")


def test_a_name_whose_own_table_is_broken_is_not_also_reported_as_missing() -> None:
    """A list naming a schedule whose cron is wrong, or a category without a title, gets
    that error only: the schedule and the category exist, they are just invalid."""
    found = problems(
        {
            "site": ADDRESS,
            "categories": [{"slug": "news"}],
            "lists": [{"slug": "w", "name": "W", "sender": "a@example.org", "schedule": "weekly"}],
            "schedules": {"weekly": {"cron": "0 9 * * 1", "job": "digest"}},
        }
    )
    assert [p.split(":")[0] for p in found] == [
        "categories[1] 'news'.title",
        "schedules.weekly.cron",
    ], found


def test_cross_references_are_reported_once_when_every_key_is_valid() -> None:
    found = problems(
        {"site": ADDRESS, "lists": [{"slug": "w", "name": "W", "sender": "a@example.org", "schedule": "x"}]}
    )
    assert found == ["lists[1] 'w'.schedule: no [schedules.x] table; define it or use one of []"]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("50", "; write the number without quotes: max_items = 50"),
        (True, "; write a number, not true or false"),
        (50.0, "; write a whole number, e.g. max_items = 50"),
        ("fifty", "; write a number"),
    ],
)
def test_a_number_of_the_wrong_type_says_how_to_write_it(value: object, hint: str) -> None:
    (found,) = problems({"feeds": {"max_items": value}})
    assert found.endswith(f"(got {value!r}){hint}"), found


# -- a cron that never fires (review: "0 9 31 2 *" was accepted) -------------------------


@pytest.mark.parametrize("cron", ["0 9 31 2 *", "0 9 30 2 *", "*/5 * 31 4,6,9,11 *", "0 9 30 2 mon-fri"])
def test_a_cron_that_never_fires_is_refused_naming_the_schedule(cron: str) -> None:
    (found,) = problems({"schedules": {"monthly-report": {"cron": cron, "job": "digest"}}})
    assert found.startswith(f"schedules.monthly-report.cron: {cron!r} never fires: no calendar date is day ")
    assert "e.g. '0 9 28 2 *'" in found


@pytest.mark.parametrize(
    ("cron", "timezone"),
    [
        ("0 9 * * mon", "Europe/Zurich"),
        ("0 9 28 2 *", None),
        ("0 9 29 2 *", None),  # leap years only
        ("0 9 29 2 mon", None),  # a Monday 29 February: 2044, then 2072
        ("0 9 31 * *", None),
        ("30 2 31 3 sun", "Europe/Zurich"),  # always the night clocks skip 02:00-03:00; still fires
    ],
)
def test_a_rare_cron_still_fires_and_is_accepted(cron: str, timezone: str | None) -> None:
    schedule = {"cron": cron, "job": "digest"} | ({"timezone": timezone} if timezone else {})
    settings = settings_from_dict({"schedules": {"s": schedule}})
    assert not cron_never_fires(cron)
    # The scheduler's own trigger, in the schedule's zone, agrees (the check runs in UTC).
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert next_fire_times(schedule_trigger(settings, "s"), now, 1)
