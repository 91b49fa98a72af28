"""Digest messages: rendered once, personalised by substitution, parsed back as a mail client would.

Every message is read back with ``email.message_from_bytes(..., policy=default)``;
golden files pin the HTML and text of a fixed issue in en, fr and es (set
``UPDATE_GOLDEN=1`` to rewrite them after an intended change, then review the diff).
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import re
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dkim
import pytest

from publisher.archive import issue_url
from publisher.checks import check_settings
from publisher.config import DkimConfig, Settings
from publisher.errors import ConfigError, IssueError, SubscriberError, TemplateError
from publisher.messages import (
    GMAIL_CLIP_BYTES,
    RenderedIssue,
    feedback_id,
    group_items,
    render_issue,
    render_subject,
)
from publisher.models import Item, Subscriber, SubscriptionStatus
from publisher.signing import DkimSigner
from publisher.tokens import read_token, verify_token
from tests.conftest import DKIM_DOMAIN, DKIM_SELECTOR, DkimKey

GOLDEN = Path(__file__).parent / "golden" / "email"
NOW = datetime(2024, 3, 4, 9, 0, tzinfo=ZoneInfo("Europe/Zurich"))
IN_CI = os.environ.get("CI", "").lower() == "true"
MakeSettings = Callable[..., Settings]

LIST = {
    "slug": "weekly",
    "name": "Weekly digest",
    "sender": "Social Protection <news@example.org>",
    "subject": "Social protection this week: {{ items|length }} new items",
}


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def make_item(n: int, **fields: Any) -> Item:
    values: dict[str, Any] = {
        "id": f"item-{n}",
        "source": "sample",
        "title": f"Item number {n}",
        "link": f"https://www.example.org/news/{n}",
        "published": _utc(2024, 3, 1, 10) - timedelta(hours=n),
        "updated": _utc(2024, 3, 1, 10),
        "language": "en",
        "summary": f"<p>Summary of item {n}, with <strong>some</strong> detail.</p>",
        "category": "news",
    }
    values.update(fields)
    return Item(**values)


GOLDEN_ITEMS = [
    make_item(
        1,
        title="New pension rules adopted",
        category="press-releases",
        published=_utc(2024, 3, 1, 10),
        summary="<p>The council adopted <strong>new rules</strong> on pensions &amp; survivors.</p>",
        image="https://www.example.org/img/council.jpg",
        image_alt='The council "in session" & voting',
        image_width=1200,
        image_height=800,
    ),
    make_item(
        2,
        title="Minimum wage report — 2024 edition",
        published=_utc(2024, 3, 2, 8),
        image="https://www.example.org/img/report-cover.png",  # no size, no alt: the title serves
    ),
    make_item(
        3,
        title="Social dialogue & youth employment",
        published=_utc(2024, 2, 28, 12),
        summary='<p>Read the <a href="https://www.example.org/report.pdf">full report</a>.</p>',
    ),
    make_item(
        4,
        title="Conférence régionale à Genève",
        category="events",
        published=_utc(2024, 3, 3, 23, 30),  # 4 March in Zurich
        summary="",
    ),
    make_item(5, title="Staff notice", category=None, published=_utc(2024, 2, 29, 9)),
    make_item(6, title="Archive moved", category="no-such-category", published=_utc(2024, 2, 27, 9)),
]


def make_subscriber(**fields: Any) -> Subscriber:
    values: dict[str, Any] = {
        "id": 42,
        "email": "carlos@example.org",
        "name": "Carlos Méndez",
        "language": "en",
        "secret": "golden-secret",
        "list_slug": "weekly",
        "status": SubscriptionStatus.CONFIRMED,
    }
    values.update(fields)
    return Subscriber(**values)


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings(lists=[LIST])


def render(
    settings: Settings, items: list[Item] | None = None, language: str = "en", **kw: Any
) -> RenderedIssue:
    return render_issue(
        settings,
        settings.lists[0],
        GOLDEN_ITEMS if items is None else items,
        issue_id=7,
        period_label=kw.pop("period_label", "Week of 4 March 2024"),
        language=language,
        now=kw.pop("now", NOW),
        **kw,
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The decoded text and HTML parts, checking they are the only parts, in that order."""
    assert message.get_content_type() == "multipart/alternative"
    children = list(message.iter_parts())
    assert [p.get_content_type() for p in children] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in children)
    text, html = (p.get_content() for p in children)
    return str(text), str(html)


def personalised(rendered: RenderedIssue, subscriber: Subscriber | None = None) -> tuple[str, bytes]:
    return rendered.personalise(subscriber or make_subscriber(), delivery_id=99)


# -- golden files -------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_golden_html_and_text(settings: Settings, language: str) -> None:
    archive_url = issue_url(settings, settings.lists[0], "2020-07-20T07:00:00Z")
    rendered = render(settings, language=language, archive_url=archive_url)
    _mid, data = personalised(rendered, make_subscriber(language=language))
    text, html = parts(parse(data))
    for suffix, body in (("txt", text), ("html", html)):
        actual = body.replace("\r\n", "\n")  # the message has CRLF; golden files are plain text
        path = GOLDEN / f"digest.{language}.{suffix}"
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
        assert actual == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize(
    ("language", "date_text", "texts"),
    [
        (
            "en",
            "March 4, 2024",
            ["Unsubscribe", "Manage preferences", "Read more", "Other news", "Hello Carlos"],
        ),
        (
            "fr",
            "4 mars 2024",
            ["Se désabonner", "Gérer mes préférences", "Lire la suite", "Autres actualités"],
        ),
        (
            "es",
            "4 de marzo de 2024",
            ["Darse de baja", "Gestionar preferencias", "Leer más", "Otras noticias"],
        ),
    ],
)
def test_dates_and_fixed_texts_are_in_the_readers_language(
    settings: Settings, language: str, date_text: str, texts: list[str]
) -> None:
    text, html = parts(parse(personalised(render(settings, language=language))[1]))
    for body in (text, html):
        assert date_text in body  # the event at 23:30 UTC on 3 March is on 4 March in Zurich
        for fixed in texts:
            assert fixed in body
    assert f'<html lang="{language}"' in html


def test_items_grouped_in_config_order_newest_first_unknown_last(settings: Settings) -> None:
    groups = group_items(settings, GOLDEN_ITEMS, "fr")
    assert [g.slug for g in groups] == ["press-releases", "news", "events", ""]
    assert [g.title for g in groups] == ["Press releases", "News", "Events", "Autres actualités"]
    assert [i.id for i in groups[1].items] == ["item-2", "item-3"]
    assert [i.id for i in groups[3].items] == ["item-5", "item-6"]
    text, _html = parts(parse(personalised(render(settings))[1]))
    order = [text.index(t) for t in ("== Press releases", "== News", "== Events", "== Other news")]
    assert order == sorted(order)


# -- subject ------------------------------------------------------------------------


def test_subject_template_sees_items_list_site_and_categories(make_settings: MakeSettings) -> None:
    template = "{{ site.title }} / {{ list.name }}: {{ items|length }} new, first {{ categories[0].title }}"
    settings = make_settings(lists=[{**LIST, "subject": template}])
    expected = "Social Protection Department / Weekly digest: 6 new, first Press releases"
    assert render(settings).subject == expected
    assert parse(personalised(render(settings))[1])["Subject"] == expected
    assert render_subject(settings, settings.lists[0], GOLDEN_ITEMS, language="en", now=NOW) == expected


def test_non_ascii_and_long_subject_is_encoded_and_round_trips(make_settings: MakeSettings) -> None:
    template = "Protection sociale : {{ items|length }} nouveautés – " + "très " * 20 + "fin"
    settings = make_settings(lists=[{**LIST, "subject": template}])
    _mid, data = personalised(render(settings))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head and "nouveautés".encode() not in head
    assert parse(data)["Subject"] == "Protection sociale : 6 nouveautés – " + "très " * 20 + "fin"
    assert max(len(line) for line in head.split(b"\r\n")) <= 998


def test_subject_errors_are_template_errors(make_settings: MakeSettings) -> None:
    for template, expected in [
        ("{{ nope }}", "undefined"),
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("  ", "empty"),
    ]:
        settings = make_settings(lists=[{**LIST, "subject": template}])
        with pytest.raises(TemplateError, match=expected) as info:
            render(settings)
        assert "'weekly'" in str(info.value)


def test_the_default_subject_counts_in_the_readers_language_by_its_plural_rules(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(lists=[{k: v for k, v in LIST.items() if k != "subject"}])
    cfg = settings.lists[0]
    said = {
        (language, n): render_subject(settings, cfg, GOLDEN_ITEMS[:n], language=language, now=NOW)
        for language in ("en", "fr", "es")
        for n in (0, 1, 2)
    }
    assert said == {
        ("en", 0): "Weekly digest: 0 new items",
        ("en", 1): "Weekly digest: 1 new item",
        ("en", 2): "Weekly digest: 2 new items",
        ("fr", 0): "Weekly digest: 0 nouvelle actualité",  # French: 0 and 1 are singular
        ("fr", 1): "Weekly digest: 1 nouvelle actualité",
        ("fr", 2): "Weekly digest: 2 nouvelles actualités",
        ("es", 0): "Weekly digest: 0 noticias nuevas",
        ("es", 1): "Weekly digest: 1 noticia nueva",
        ("es", 2): "Weekly digest: 2 noticias nuevas",
    }


def test_plural_in_a_subject_uses_the_site_languages_rules_for_the_admins_words(
    make_settings: MakeSettings,
) -> None:
    template = "{{ plural(items|length, '{count} new release', '{count} new releases') }}"
    english = make_settings(lists=[{**LIST, "subject": template}])
    french = make_settings(site={"language": "fr-CH"}, lists=[{**LIST, "subject": template}])
    for language in ("en", "fr"):  # the reader's language does not change the admin's words
        assert [
            render_subject(english, english.lists[0], GOLDEN_ITEMS[:n], language=language, now=NOW)
            for n in (0, 1, 2)
        ] == ["0 new releases", "1 new release", "2 new releases"]
    assert render_subject(french, french.lists[0], [], language="en", now=NOW) == "0 new release"  # fr rules


def test_the_sample_configs_subjects_say_1_new_item(make_settings: MakeSettings) -> None:
    config = tomllib.loads((Path(__file__).parent.parent / "config.toml").read_text(encoding="utf-8"))
    subjects = {cfg["slug"]: cfg["subject"] for cfg in config["lists"]}
    settings = make_settings(lists=[{**LIST, "slug": slug, "subject": s} for slug, s in subjects.items()])
    said = {
        (cfg.slug, n): render_subject(settings, cfg, GOLDEN_ITEMS[:n], language="fr", now=NOW)
        for cfg in settings.lists
        for n in (1, 2)
    }
    assert said == {
        ("weekly", 1): "Social protection this week: 1 new item",
        ("weekly", 2): "Social protection this week: 2 new items",
        ("press", 1): "1 new press release",
        ("press", 2): "2 new press releases",
    }


def test_a_counted_text_without_its_count_is_a_template_error(make_settings: MakeSettings) -> None:
    settings = make_settings(lists=[{**LIST, "subject": "{{ t('new_items') }}"}])
    with pytest.raises(TemplateError, match="'new_items' says how many: give it count=<a whole number>"):
        render(settings)


# -- overrides and template safety ---------------------------------------------------


EXTENDS = '{% extends "default:email/digest.html.j2" %}'


def _override(
    make_settings: MakeSettings, tmp_path: Path, files: dict[str, str], **list_fields: Any
) -> Settings:
    folder = tmp_path / "overrides"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return make_settings(templates={"path": str(folder)}, lists=[{**LIST, **list_fields}])


def test_admin_override_extends_the_builtin_and_changes_a_block(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = _override(
        make_settings,
        tmp_path,
        {
            "email/digest.html.j2": '{% extends "default:email/digest.html.j2" %}'
            '{% block intro %}<p class="intro">Our custom intro for {{ subscriber.name }}</p>{% endblock %}'
        },
    )
    _mid, data = personalised(render(settings))
    _text, html = parts(parse(data))
    assert '<p class="intro"' in html and "Our custom intro for Carlos Méndez" in html
    assert "Hello Carlos" not in html  # the replaced block is gone ...
    assert "New pension rules adopted" in html and "/unsubscribe/" in html  # ... the rest is built-in


def test_preheader_is_visible_escaped_and_left_out_when_an_override_empties_it(
    make_settings: MakeSettings, tmp_path: Path, settings: Settings
) -> None:
    items = [make_item(1, title="Pensions <b>up</b> & more"), *GOLDEN_ITEMS[1:3]]
    _text, html = parts(parse(personalised(render(settings, items=items))[1]))
    cell = re.search(r'<td class="preheader" style="([^"]*)">([^<]*)</td>', html)
    assert cell is not None, "the preheader is the mail's first row"
    assert html.index('class="preheader"') < html.index('class="card masthead"')
    assert (
        "display" not in cell.group(1)
        and "transparent" not in cell.group(1)
        and "opacity" not in cell.group(1)
    )
    assert "color: #52606d" in cell.group(1)  # the footer's grey: 5.8:1 on the page background
    assert cell.group(2).startswith("In this issue: ")
    assert " · Pensions &lt;b&gt;up&lt;/b&gt; &amp; more · " in cell.group(2)  # escaped like any text
    assert "&zwnj;" not in html and "\u034f" not in html  # no invisible filler after it either

    emptied = _override(
        make_settings, tmp_path, {"email/digest.html.j2": EXTENDS + "{% block preheader %} {% endblock %}"}
    )
    _text, html = parts(parse(personalised(render(emptied))[1]))
    assert 'class="preheader"' not in html.split("</head>")[1]  # no empty row
    assert "New pension rules adopted" in html


def test_undefined_variable_in_override_is_a_template_error(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = _override(
        make_settings,
        tmp_path,
        {"email/digest.html.j2": EXTENDS + "\n{% block intro %}\n{{ oops }}{% endblock %}"},
    )
    with pytest.raises(
        TemplateError, match=r"digest\.html\.j2, line 3: undefined value: 'oops' is undefined"
    ):
        render(settings)


def test_sandbox_blocks_python_internals_in_override(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = _override(
        make_settings,
        tmp_path,
        {"email/evil.txt.j2": "{{ ''.__class__.__mro__ }}"},
        text_template="email/evil.txt.j2",
    )
    with pytest.raises(TemplateError, match=r"evil\.txt\.j2, line 1: not allowed in a template"):
        render(settings)


def test_missing_list_template_is_a_template_error(make_settings: MakeSettings) -> None:
    settings = make_settings(lists=[{**LIST, "html_template": "email/weekly.html.j2"}])
    with pytest.raises(TemplateError, match=r"email/weekly\.html\.j2 not found"):
        render(settings)


def test_filter_applied_to_a_personal_value_renders_each_message_on_its_own(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """|upper used to be refused ("changed by a filter"); it is now rendered per recipient."""
    settings = _override(
        make_settings,
        tmp_path,
        {"email/t.txt.j2": "{{ subscriber.name|upper }} {{ unsubscribe_url }}"},
        text_template="email/t.txt.j2",
    )
    rendered = render(settings)
    assert rendered.per_recipient
    text, _html = parts(parse(personalised(rendered)[1]))
    assert text.startswith("CARLOS MÉNDEZ http://127.0.0.1:8080/unsubscribe/")
    text, _html = parts(parse(personalised(rendered, make_subscriber(name="Ana"))[1]))
    assert text.startswith("ANA http://127.0.0.1:8080/unsubscribe/")


DEAR = "{% if subscriber.name %}Dear {{ subscriber.name }},{% else %}Dear reader,{% endif %}"


def test_a_greeting_that_tests_the_name_is_right_for_each_reader(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """The once-per-issue placeholder is never empty: a template testing the name is rendered per reader."""
    settings = _override(
        make_settings,
        tmp_path,
        {
            "email/dear.txt.j2": DEAR + "\n\n{{ unsubscribe_url }}\n",  # trim_blocks eats one
            "email/dear.html.j2": EXTENDS + '{% block intro %}<p class="dear">' + DEAR + "</p>{% endblock %}",
        },
        text_template="email/dear.txt.j2",
        html_template="email/dear.html.j2",
    )
    rendered = render(settings)
    assert rendered.per_recipient
    text, html = parts(parse(personalised(rendered, make_subscriber(name=""))[1]))
    assert text.startswith("Dear reader,\r\n") and '<p class="dear"' in html and ">Dear reader,</p>" in html
    text, html = parts(parse(personalised(rendered, make_subscriber(name="Ana"))[1]))
    assert text.startswith("Dear Ana,\r\n") and ">Dear Ana,</p>" in html
    _mid, data = personalised(rendered, make_subscriber(name="<b>Zoë</b>"))
    text, html = parts(parse(data))
    assert text.startswith("Dear <b>Zoë</b>,") and "Dear &lt;b&gt;Zoë&lt;/b&gt;," in html  # escaped per part
    assert parse(data)["To"].addresses[0].display_name == "<b>Zoë</b>"


@pytest.mark.parametrize(
    ("source", "ana", "nameless"),
    [
        ("{{ subscriber.name|length }}", "3", "0"),
        ("{{ subscriber.name[:1] }}.", "A.", "."),
        ("{% if subscriber.name == 'Ana' %}hi Ana{% else %}hello{% endif %}", "hi Ana", "hello"),
        ("{% set who = subscriber.name or 'friend' %}{{ who }}", "Ana", "friend"),
        ("{{ greeting if subscriber.email.endswith('.org') else '' }}", "Hello Ana,", "Hello,"),
        ("{% macro hi() %}{{ subscriber.name }}{% endmacro %}{{ hi()|trim or 'nobody' }}", "Ana", "nobody"),
    ],
)
def test_personal_values_in_logic_act_on_the_readers_values(
    make_settings: MakeSettings, tmp_path: Path, source: str, ana: str, nameless: str
) -> None:
    settings = _override(
        make_settings, tmp_path, {"email/l.txt.j2": source + "\n"}, text_template="email/l.txt.j2"
    )
    rendered = render(settings)
    for name, expected in (("Ana", ana), ("", nameless)):
        text, _html = parts(parse(personalised(rendered, make_subscriber(name=name))[1]))
        assert text.rstrip("\r\n") == expected, (source, name)


def test_templates_that_only_print_personal_values_are_rendered_once(
    make_settings: MakeSettings, tmp_path: Path, settings: Settings
) -> None:
    assert not render(settings).per_recipient  # the built-ins: the fast path stays
    printed = _override(
        make_settings,
        tmp_path,
        {
            "email/p.txt.j2": "{% if in_archive %}x{% endif %}{{ subscriber.name }} {{ subscriber['email'] }}"
            " {{ greeting }} {{ unsubscribe_url }} {{ preferences_url }}\n"
        },
        text_template="email/p.txt.j2",
    )
    rendered = render(printed)
    assert not rendered.per_recipient and rendered.body_slots
    text, _html = parts(parse(personalised(rendered, make_subscriber(name="Ana"))[1]))
    assert text.startswith("Ana carlos@example.org Hello Ana, http://")


def test_a_template_failing_for_a_nameless_reader_fails_when_rendered(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """The placeholder is a name; a nameless reader is tried too, before any issue exists."""
    settings = _override(
        make_settings,
        tmp_path,
        {"email/n.txt.j2": "{% if not subscriber.name %}{{ nosuch }}{% endif %}\n"},
        text_template="email/n.txt.j2",
    )
    with pytest.raises(TemplateError, match=r"n\.txt\.j2, line 1: undefined value: 'nosuch' is undefined"):
        render(settings)


def test_a_message_over_the_size_limit_is_refused_naming_the_templates(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """Every template stays under its own limits, but the message would be 12 MB: no relay takes it."""
    settings = _override(
        make_settings,
        tmp_path,
        {"email/big.txt.j2": "{% for i in range(4) %}{{ '=' * 999999 }}{% endfor %}{{ unsubscribe_url }}"},
        text_template="email/big.txt.j2",
    )
    with pytest.raises(TemplateError) as info:
        render(settings)
    assert str(info.value).startswith(
        "email/big.txt.j2, email/digest.html.j2: a message of list 'weekly' would be 12."
    )
    assert "at most 10 MB is sent" in str(info.value)


def test_template_without_unsubscribe_link_is_warned(
    make_settings: MakeSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _override(
        make_settings,
        tmp_path,
        {"email/bare.html.j2": "<p>{{ items|length }}</p>"},
        html_template="email/bare.html.j2",
    )
    with caplog.at_level(logging.WARNING, logger="publisher.messages"):
        rendered = render(settings)
    assert any("no unsubscribe link" in w for w in rendered.warnings)
    assert "no unsubscribe link" in caplog.text


# -- personalisation ----------------------------------------------------------------


def test_placeholders_are_all_replaced_and_values_escaped_per_part(settings: Settings) -> None:
    rendered = render(settings)
    assert "PUBX" in rendered.html and "PUBX" in rendered.text  # placeholders before personalising
    name = 'Zoë "Z" <b>&</b> Müller'
    _mid, data = personalised(rendered, make_subscriber(name=name, email="zoe@example.org"))
    assert b"PUBX" not in data
    message = parse(data)
    text, html = parts(message)
    assert f"Hello {name}," in text
    assert "Hello Zoë &quot;Z&quot; &lt;b&gt;&amp;&lt;/b&gt; Müller," in html
    assert "<b>&</b>" not in html
    assert message["To"].addresses[0].display_name == name
    assert message["To"].addresses[0].addr_spec == "zoe@example.org"


def test_subscriber_without_name_gets_a_neutral_greeting_and_bare_address(settings: Settings) -> None:
    _mid, data = personalised(render(settings, language="fr"), make_subscriber(name="  "))
    message = parse(data)
    text, html = parts(message)
    assert "\r\nBonjour,\r\n" in text and ">Bonjour,<" in html
    assert message["To"] == "carlos@example.org"


def test_headers_of_a_personalised_message(make_settings: MakeSettings) -> None:
    settings = make_settings(
        lists=[
            {**LIST, "reply_to": "Desk <desk@example.org>", "unsubscribe_mailto": "unsubscribe@example.org"}
        ]
    )
    rendered = render(settings)
    message_id, data = rendered.personalise(make_subscriber(), delivery_id=1234)
    message = parse(data)
    assert message["From"].addresses[0].display_name == "Social Protection"
    assert message["From"].addresses[0].addr_spec == "news@example.org"
    assert message["To"].addresses[0].display_name == "Carlos Méndez"
    assert b"To: =?utf-8?" in data  # RFC 2047, not raw UTF-8
    assert message["Reply-To"].addresses[0].addr_spec == "desk@example.org"
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == message_id
    assert re.fullmatch(r"<issue-7\.1234\.[0-9a-f]+@example\.org>", message_id)
    assert message["List-Id"] == '"Weekly digest" <weekly.example.org>'
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == "weekly:7:publisher:example.org"  # list, issue, product, sender
    assert message["Precedence"] == "bulk"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["MIME-Version"] == "1.0"
    http, mailto = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert http.startswith("http://127.0.0.1:8080/unsubscribe/")
    token = http.rsplit("/", 1)[1]
    assert read_token(token) == (42, "weekly", "unsubscribe")
    verify_token(token, "golden-secret")
    assert mailto == f"mailto:unsubscribe@example.org?subject=unsubscribe%20{token}"
    text, html = parts(message)
    assert http in text and f'href="{http}"' in html  # the footer link is the header's link
    prefs = re.search(r"http://127\.0\.0\.1:8080/preferences/([A-Za-z0-9_-]+)", text)
    assert prefs and f'href="{prefs.group(0)}"' in html
    assert read_token(prefs.group(1)) == (42, "weekly", "preferences")
    verify_token(prefs.group(1), "golden-secret")


def test_each_message_gets_its_own_message_id_and_links(settings: Settings) -> None:
    rendered = render(settings)
    id1, data1 = rendered.personalise(make_subscriber(), delivery_id=1)
    id2, data2 = rendered.personalise(
        make_subscriber(id=43, email="ann@example.org", name="Ann", secret="s2"), delivery_id=2
    )
    assert id1 != id2
    m1, m2 = parse(data1), parse(data2)
    assert m1["List-Unsubscribe"] != m2["List-Unsubscribe"]
    assert parts(m1)[1].replace("Carlos Méndez", "Ann") != parts(m2)[1]  # tokens differ too
    assert m1["Subject"] == m2["Subject"] and m1["Date"] == m2["Date"]


def test_message_is_crlf_with_short_lines(settings: Settings) -> None:
    long_name = "Ünïcödé " * 20  # several encoded words
    _mid, data = personalised(render(settings), make_subscriber(name=long_name))
    assert re.search(rb"(?<!\r)\n", data) is None and re.search(rb"\r(?!\n)", data) is None
    head, body = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # RFC 2045 quoted-printable
    assert all(b < 128 for b in data)
    # Read the way RFC 2047 says (the space folding adds between encoded words is not
    # text); the stdlib's address parser keeps that space, so decode_header is used here.
    to = parse(data)["To"]
    raw_to = data.split(b"\r\nTo: ", 1)[1].split(b" <carlos@example.org>")[0].decode()
    assert str(make_header(decode_header(raw_to))) == long_name.strip()
    assert to.addresses[0].addr_spec == "carlos@example.org"


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: x@evil.example",
        "Eve\nBcc: x@evil.example",
        "Eve\rBcc: x@evil.example",
        "Eve\u2028Bcc: x@evil.example",
    ],
)
def test_header_injection_in_a_name_creates_no_header(settings: Settings, name: str) -> None:
    _mid, data = personalised(render(settings), make_subscriber(name=name))
    message = parse(data)
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in data
    assert message["To"].addresses[0].display_name == "Eve Bcc: x@evil.example"
    assert message["To"].addresses[0].addr_spec == "carlos@example.org"
    assert len(message.get_all("To") or []) == 1


def test_header_injection_in_subject_and_list_name_creates_no_header(make_settings: MakeSettings) -> None:
    settings = make_settings(
        lists=[
            {
                **LIST,
                "name": "Weekly\r\nBcc: x@evil.example",
                "subject": "Hi\r\nBcc: x@evil.example\n{{ items|length }}",
            }
        ]
    )
    message = parse(personalised(render(settings))[1])
    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: x@evil.example 6"
    assert message["List-Id"] == '"Weekly Bcc: x@evil.example" <weekly.example.org>'


def test_a_sender_with_a_non_ascii_name_and_domain_makes_a_sendable_message(
    make_settings: MakeSettings, dkim_key: DkimKey
) -> None:
    """Config gives the domain's xn-- form; the name goes out as RFC 2047 encoded words."""
    sender = {"sender": "Ünï Ñews <news@exämple.org>", "reply_to": "Bürö <desk@exämple.org>"}
    settings = make_settings(
        lists=[{**LIST, **sender}],
        dkim={"selector": DKIM_SELECTOR, "domain": DKIM_DOMAIN, "key_path": str(dkim_key.path)},
    )
    _mid, data = personalised(render(settings))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?b?" in head
    message = parse(data)
    (sender_address,) = message["From"].addresses
    assert (sender_address.display_name, sender_address.addr_spec) == ("Ünï Ñews", "news@xn--exmple-cua.org")
    (reply_address,) = message["Reply-To"].addresses
    assert (reply_address.display_name, reply_address.addr_spec) == ("Bürö", "desk@xn--exmple-cua.org")
    assert message["Message-ID"].endswith("@xn--exmple-cua.org>")
    assert message["List-Id"] == '"Weekly digest" <weekly.xn--exmple-cua.org>'
    assert dkim.verify(data, dnsfunc=dkim_key.dns)
    assert check_settings(settings).errors == []  # `publisher check` renders a sample too


def test_a_subject_made_of_titles_is_cut_at_a_word_to_200_characters(make_settings: MakeSettings) -> None:
    settings = make_settings(lists=[{**LIST, "subject": "{{ items|map(attribute='title')|join(', ') }}"}])
    titles = [make_item(n, title="Budget cuts " * 1000) for n in range(3)]
    rendered = render(settings, titles)
    subject = str(parse(personalised(rendered)[1])["Subject"])
    assert len(subject) <= 200 and subject.endswith("Budget…") and rendered.subject == subject


def test_bidi_controls_are_removed_from_subject_and_to(make_settings: MakeSettings) -> None:
    settings = make_settings(lists=[{**LIST, "subject": "{{ items[0].title }}"}])
    rendered = render(settings, [make_item(1, title="Invoice \u202egnp.exe")])
    message = parse(personalised(rendered, make_subscriber(name="Carlos \u202eMéndez\u2066"))[1])
    assert message["Subject"] == "Invoice gnp.exe"
    assert message["To"].addresses[0].display_name == "Carlos Méndez"


def test_a_long_name_is_cut_to_200_characters_in_to(settings: Settings) -> None:
    message = parse(personalised(render(settings), make_subscriber(name="Carlos " * 100))[1])
    name = message["To"].addresses[0].display_name
    assert len(name) <= 200 and name.endswith("Carlos…")


@pytest.mark.parametrize(
    "address",
    ["carlos@example.org\r\nBcc: x@evil.example", "a b@example.org", "<a@example.org>", "no-at-sign"],
)
def test_unusable_address_is_refused(settings: Settings, address: str) -> None:
    with pytest.raises(SubscriberError):
        personalised(render(settings), make_subscriber(email=address))


def test_subscriber_of_another_list_is_refused(settings: Settings) -> None:
    with pytest.raises(IssueError, match="not 'weekly'"):
        personalised(render(settings), make_subscriber(list_slug="daily"))


def test_naive_send_time_is_refused(settings: Settings) -> None:
    with pytest.raises(IssueError, match="timezone-aware"):
        render(settings, now=datetime(2024, 3, 4, 9, 0))


# -- size -----------------------------------------------------------------------------


def test_fifty_ordinary_items_stay_under_gmails_clip_size(settings: Settings) -> None:
    summary = "<p>" + "A typical summary sentence of moderate length. " * 6 + "</p>"
    rendered = render(
        settings, items=[make_item(n, summary=summary, category=None if n % 7 else "news") for n in range(50)]
    )
    assert rendered.warnings == []
    _mid, data = personalised(rendered)
    _text, html = parts(parse(data))
    assert len(html.encode()) < GMAIL_CLIP_BYTES
    assert html.count('class="item"') == 50


def test_oversized_issue_is_warned(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    summary = "<p>" + "Long summary text that goes on and on. " * 60 + "</p>"
    with caplog.at_level(logging.WARNING, logger="publisher.messages"):
        rendered = render(settings, items=[make_item(n, summary=summary) for n in range(50)])
    assert len(rendered.warnings) == 1 and "Gmail clips" in rendered.warnings[0]
    assert "Gmail clips" in caplog.text
    _text, html = parts(parse(personalised(rendered)[1]))  # still a valid message
    assert len(html.encode()) > GMAIL_CLIP_BYTES


# -- DKIM -----------------------------------------------------------------------------


def test_dkim_signature_verifies_and_covers_list_unsubscribe(settings: Settings, dkim_key: DkimKey) -> None:
    key = dkim_key.path
    signer = DkimSigner(DkimConfig(selector="mail2024", domain="example.org", key_path=key))
    rendered = render(settings, signer=signer)
    _mid, data = personalised(rendered)
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=dkim_key.dns)
    signature = parse(data)["DKIM-Signature"]
    tags = dict(t.strip().split("=", 1) for t in str(signature).replace("\r\n", "").split(";") if "=" in t)
    signed = [h.strip() for h in tags["h"].split(":")]
    assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= set(signed)
    assert "feedback-id" in signed  # Gmail's feedback loop trusts only a signed Feedback-ID
    assert tags["c"] == "relaxed/relaxed" and tags["d"] == "example.org" and tags["s"] == "mail2024"
    tampered = data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x")
    assert not dkim.verify(tampered, dnsfunc=dkim_key.dns)


def test_dkim_from_settings_signs_every_message(make_settings: MakeSettings, dkim_key: DkimKey) -> None:
    key = dkim_key.path
    settings = make_settings(
        lists=[LIST], dkim={"selector": "mail2024", "domain": "example.org", "key_path": str(key)}
    )
    rendered = render(settings)
    for n in range(3):
        _mid, data = rendered.personalise(make_subscriber(id=n, name=f"Reader {n}é"), delivery_id=n)
        assert dkim.verify(data, dnsfunc=dkim_key.dns)


def test_feedback_id_names_list_issue_and_the_signing_domain(
    make_settings: MakeSettings, dkim_key: DkimKey
) -> None:
    key = dkim_key.path
    plain = make_settings(lists=[LIST])
    assert feedback_id(plain, plain.lists[0], 7) == "weekly:7:publisher:example.org"
    assert (
        feedback_id(plain, plain.lists[0], 0) == "weekly:preview:publisher:example.org"
    )  # preview, test copy
    signed = make_settings(
        lists=[{**LIST, "sender": "News <news@Mail.Example.NET>"}],
        dkim={"selector": "s", "domain": "example.org", "key_path": str(key)},
    )
    assert feedback_id(signed, signed.lists[0], 12) == "weekly:12:publisher:example.org"  # d=, not From
    other = make_settings(lists=[{**LIST, "sender": "News <news@Mail.Example.NET>"}])
    assert feedback_id(other, other.lists[0], 3) == "weekly:3:publisher:mail.example.net"
    message = parse(personalised(render(signed))[1])
    assert message["Feedback-ID"] == "weekly:7:publisher:example.org"


def test_feedback_id_fields_stay_safe_for_the_header(make_settings: MakeSettings, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    settings = make_settings(lists=[LIST])
    # The config refuses such a domain (test_config); feedback_id stays safe without it.
    settings.dkim = DkimConfig.model_construct(selector="s", domain="ex:ample.org\r\nBcc: x", key_path=key)
    value = feedback_id(settings, settings.lists[0], 5)
    assert value.count(":") == 3 and re.fullmatch(r"[A-Za-z0-9._:-]+", value), value


def test_unusable_dkim_key_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a usable RSA private key"):
        DkimSigner(DkimConfig(selector="s", domain="example.org", key_path=bad))
    with pytest.raises(ConfigError, match="cannot read"):
        DkimSigner(DkimConfig(selector="s", domain="example.org", key_path=tmp_path / "missing.pem"))


# -- double opt-in -------------------------------------------------------------------


# -- real browser ---------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
def test_layout_in_headless_chromium(settings: Settings) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    wide = (
        "<p>See https://www.example.org/a/very/long/address/without/any/break/"
        + "segment" * 20
        + '</p><p><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="900" height="300" alt=""></p>'
    )
    items = [*GOLDEN_ITEMS, make_item(9, title="Extraordinarily" * 8, summary=wide)]
    _mid, data = personalised(render(settings, items=items))
    _text, html = parts(parse(data))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800})
            page.set_content(html)
            narrow = _measure(page)
            assert narrow["scroll"] <= 375, f"horizontal overflow at 375 px: {narrow}"
            assert narrow["column"] <= 375
            page.set_viewport_size({"width": 800, "height": 800})
            wide_view = _measure(page)
            assert 560 <= wide_view["column"] <= 600, wide_view
            assert wide_view["scroll"] <= 800
            light = page.evaluate("getComputedStyle(document.body).backgroundColor")
            page.emulate_media(color_scheme="dark")
            dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
            card_dark = page.evaluate("getComputedStyle(document.querySelector('.content')).backgroundColor")
            assert light != dark, "the body background should change in dark mode"
            assert (
                light == "rgb(242, 244, 247)" and dark == "rgb(17, 20, 24)" and card_dark == "rgb(28, 33, 40)"
            )
        finally:
            browser.close()


def _measure(page: Any) -> dict[str, float]:
    return dict(
        page.evaluate(
            """() => ({
                scroll: document.documentElement.scrollWidth,
                column: document.querySelector('table.container').getBoundingClientRect().width,
            })"""
        )
    )


def test_category_headings_use_the_readers_language(make_settings: MakeSettings) -> None:
    categories = [
        {
            "slug": "news",
            "title": "News",
            "labels": ["News"],
            "titles": {"fr": "Actualités", "es": "Noticias"},
        },
    ]
    settings = make_settings(lists=[LIST], categories=categories)
    items = [make_item(1, category="news")]
    assert "Actualités" in render(settings, items, language="fr").text
    assert "Noticias" in render(settings, items, language="es").text
    english = render(settings, items, language="en").text
    assert "News" in english and "Actualités" not in english


# -- pictures ---------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    """A real PNG (stripes of two colours), so a browser has a picture to lay out."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00"
        + b"".join(b"\x1d\x4e\xd8" if (x // 60 + y // 60) % 2 else b"\xf2\xa3\x3c" for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _images(html: str) -> list[dict[str, str | None]]:
    import lxml.html

    return [
        {name: img.get(name) for name in ("src", "alt", "width", "height")}
        for img in lxml.html.fromstring(html).xpath("//img")
    ]


def test_the_html_part_shows_each_picture_sized_for_the_column_and_only_http_ones(settings: Settings) -> None:
    items = [
        make_item(1, image="https://www.example.org/big.jpg", image_width=4000, image_height=3000),
        make_item(2, image="javascript:alert(1)"),  # a row written by hand: never reaches a mail
        make_item(
            3, image="http://www.example.org/small.png", image_width=120, image_height=90, image_alt="Logo"
        ),
    ]
    _mid, data = personalised(render(settings, items=items))
    text, html = parts(parse(data))

    assert _images(html) == [
        {"src": "https://www.example.org/big.jpg", "alt": "Item number 1", "width": "552", "height": "414"},
        {"src": "http://www.example.org/small.png", "alt": "Logo", "width": "120", "height": "90"},
    ]
    assert "javascript" not in html
    assert "big.jpg" not in text  # the text part has no pictures


@pytest.mark.browser
def test_a_digest_with_a_picture_at_375_px_in_chromium(settings: Settings) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import Route, sync_playwright

    _mid, data = personalised(render(settings))  # the golden items: two pictures
    _text, html = parts(parse(data))
    png = _png(1200, 800)
    screenshots = Path(__file__).resolve().parent.parent / "var" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    served: list[str] = []

    def serve_picture(route: Route) -> None:
        served.append(route.request.url)
        route.fulfill(status=200, body=png, content_type="image/png")

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800})
            page.route("https://www.example.org/img/**", serve_picture)
            page.set_content(html, wait_until="load")
            pictures = page.evaluate(
                """() => [...document.images].map(img => ({
                    alt: img.alt, complete: img.complete, natural: img.naturalWidth,
                    width: img.getBoundingClientRect().width, height: img.getBoundingClientRect().height,
                    column: img.closest('td').getBoundingClientRect().width,
                }))"""
            )
            page.screenshot(path=str(screenshots / "digest-picture-375.png"), full_page=False)
            scroll = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()

    assert sorted(served) == [
        "https://www.example.org/img/council.jpg",
        "https://www.example.org/img/report-cover.png",
    ]
    assert [p["alt"] for p in pictures] == [
        'The council "in session" & voting',
        "Minimum wage report — 2024 edition",
    ]
    for picture in pictures:
        assert picture["complete"] and picture["natural"] == 1200
        # Fills the column at 375 px (never wider), keeping the picture's proportions.
        assert 300 <= picture["width"] <= picture["column"] <= 375
        assert abs(picture["height"] - picture["width"] * 800 / 1200) <= 1
    assert scroll <= 375
