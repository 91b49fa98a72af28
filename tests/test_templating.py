"""Template search path, overrides, sandbox, strictness, filters, and the fixed texts (i18n)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from publisher import sandbox
from publisher.config import Settings
from publisher.errors import TemplateError
from publisher.i18n import CATALOGUE, format_day, normalise_language, translate
from publisher.templating import (
    BUILTIN_TEMPLATES,
    make_environment,
    render_string,
    render_template,
    translator,
)
from publisher.text import html_to_text

MakeSettings = Callable[..., Settings]


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    folder = tmp_path / "my-templates"
    (folder / "email").mkdir(parents=True)
    return folder


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_builtin_templates_are_found_without_override_folder(make_settings: MakeSettings) -> None:
    env = make_environment(make_settings())
    assert (BUILTIN_TEMPLATES / "email" / "digest.html.j2").is_file()
    assert env.get_template("email/digest.txt.j2").filename == str(
        BUILTIN_TEMPLATES / "email" / "digest.txt.j2"
    )


def test_override_folder_wins_and_default_prefix_reaches_the_builtin(
    make_settings: MakeSettings, overrides: Path
) -> None:
    _write(overrides, "email/page.txt.j2", "override says {{ word }}")
    _write(overrides, "email/digest.txt.j2", "mine")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    assert render_template(env, "email/page.txt.j2", {"word": "hi"}) == "override says hi"
    assert render_template(env, "email/digest.txt.j2", {}) == "mine"
    builtin = env.get_template("default:email/digest.txt.j2")
    assert builtin.filename == str(BUILTIN_TEMPLATES / "email" / "digest.txt.j2")


def test_override_extends_builtin_of_the_same_name(make_settings: MakeSettings, overrides: Path) -> None:
    _write(overrides, "email/base.txt.j2", "X{% block b %}builtin-free{% endblock %}Y")
    assert not (BUILTIN_TEMPLATES / "email" / "base.txt.j2").exists()
    _write(
        overrides, "email/child.txt.j2", '{% extends "email/base.txt.j2" %}{% block b %}child{% endblock %}'
    )
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    assert render_template(env, "email/child.txt.j2", {}) == "XchildY"
    # and the built-in layout is reachable by its prefixed name even when overridden
    _write(overrides, "email/layout.html.j2", "{% block content %}{% endblock %}")
    _write(
        overrides,
        "email/x.html.j2",
        '{% extends "default:email/layout.html.j2" %}{% block content %}<b>{{ v }}</b>{% endblock %}',
    )
    ctx = {"language": "en", "subject": "S", "site": {"title": "T"}, "t": translator("en"), "sender": "N"}
    out = render_template(env, "email/x.html.j2", {**ctx, "v": "<i>"})
    assert "<b>&lt;i&gt;</b>" in out and "<!DOCTYPE html>" in out


def test_missing_template_is_a_template_error(make_settings: MakeSettings) -> None:
    env = make_environment(make_settings())
    with pytest.raises(TemplateError, match=r"email/nope\.html\.j2 not found"):
        render_template(env, "email/nope.html.j2", {})
    with pytest.raises(TemplateError, match="not found"):
        render_template(env, "default:email/nope.html.j2", {})


def test_undefined_variable_is_an_error_naming_file_and_line(
    make_settings: MakeSettings, overrides: Path
) -> None:
    _write(overrides, "email/u.txt.j2", "line one\n{{ nosuchthing }}\n")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    with pytest.raises(TemplateError) as info:
        render_template(env, "email/u.txt.j2", {})
    message = str(info.value)
    assert "nosuchthing" in message and "undefined" in message
    assert "u.txt.j2, line 2" in message


def test_syntax_error_names_file_and_line(make_settings: MakeSettings, overrides: Path) -> None:
    _write(overrides, "email/s.txt.j2", "ok\nok\n{% if %}\n")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    with pytest.raises(TemplateError, match=r"s\.txt\.j2, line 3: syntax error"):
        render_template(env, "email/s.txt.j2", {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    ],
)
def test_sandbox_blocks_python_internals(make_settings: MakeSettings, source: str) -> None:
    env = make_environment(make_settings())
    with pytest.raises(TemplateError, match="subject"):
        render_string(env, source, {"x": object()}, label="lists 'weekly'.subject")


def test_override_of_a_web_page_template_is_sandboxed_too(
    make_settings: MakeSettings, overrides: Path
) -> None:
    _write(overrides, "web/subscription.html.j2", "{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    with pytest.raises(TemplateError, match=r"subscription\.html\.j2, line 1: not allowed in a template"):
        render_template(env, "web/subscription.html.j2", {})


def test_other_runtime_errors_become_template_errors(make_settings: MakeSettings) -> None:
    env = make_environment(make_settings())
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_string(env, "{{ 1 // 0 }}", {}, label="subject")
    with pytest.raises(TemplateError, match="unknown text key"):
        render_string(env, "{{ t('no_such_key') }}", {"t": translator("en")}, label="subject")


def test_autoescape_in_html_templates_not_in_text_or_strings(
    make_settings: MakeSettings, overrides: Path
) -> None:
    _write(overrides, "email/e.html.j2", "{{ v }}")
    _write(overrides, "email/e.txt.j2", "{{ v }}")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    assert render_template(env, "email/e.html.j2", {"v": "<a&b>"}) == "&lt;a&amp;b&gt;"
    assert render_template(env, "email/e.txt.j2", {"v": "<a&b>"}) == "<a&b>"
    assert render_string(env, "{{ v }}", {"v": "<a&b>"}, label="subject") == "<a&b>"


def test_date_filter_uses_context_language_and_site_timezone(make_settings: MakeSettings) -> None:
    settings = make_settings(site={"timezone": "Europe/Zurich"})
    env = make_environment(settings)
    late = datetime(2024, 3, 4, 23, 30, tzinfo=UTC)  # already 5 March in Zurich
    assert render_string(env, "{{ d|date }}", {"d": late, "language": "fr"}, label="s") == "5 mars 2024"
    assert (
        render_string(env, "{{ d|date }}", {"d": late, "language": "es"}, label="s") == "5 de marzo de 2024"
    )
    assert render_string(env, "{{ d|date }}", {"d": late}, label="s") == "March 5, 2024"  # site language
    assert render_string(env, "{{ d|date('short', 'en') }}", {"d": late}, label="s") == "3/5/24"


def test_plaintext_filter_flattens_sanitised_html() -> None:
    assert html_to_text("<p>One &amp; <b>two</b></p>\n<ul><li>three</li></ul>") == "One & two three"
    assert html_to_text("plain   text") == "plain text"
    assert html_to_text('<p>Read the <a href="x">report</a>.</p><p>Next</p>') == "Read the report. Next"


# -- fixed texts -------------------------------------------------------------------


def test_every_language_has_every_key() -> None:
    for language, texts in CATALOGUE.items():
        assert set(texts) == set(CATALOGUE["en"]), language


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("en-GB", "en"),
        ("fr_CH", "fr"),
        ("ES", "es"),
        ("es-419", "es"),
        ("de", "fr"),
        ("", "fr"),
        (None, "fr"),
    ],
)
def test_normalise_language(code: str | None, expected: str) -> None:
    assert normalise_language(code, "fr") == expected


def test_normalise_language_falls_back_to_english_when_site_language_is_unknown() -> None:
    assert normalise_language("de", "it") == "en"


def test_translate_fills_values_and_falls_back() -> None:
    assert translate("unsubscribe_question", "fr", list="Hebdo") == "Se désabonner de Hebdo ?"
    assert translate("unsubscribe_question", "es-ES", list="Semanal") == "¿Darse de baja de Semanal?"
    assert translate("invalid_link_title", "de") == "This link is not valid"
    CATALOGUE["es"].pop("read_more")
    try:
        assert translate("read_more", "es") == "Read more"
    finally:
        CATALOGUE["es"]["read_more"] = "Leer más"
    with pytest.raises(TemplateError, match="needs the value 'list'"):
        translate("unsubscribe_question", "en")


def test_format_day_for_plain_dates() -> None:
    assert format_day(date(2024, 12, 25), "es") == "25 de diciembre de 2024"


def test_an_xsl_override_escapes_what_it_prints_without_e(
    make_settings: MakeSettings, overrides: Path
) -> None:
    """feed.xsl.j2 is XML: a value an override prints without |e is escaped all the same."""
    (overrides / "web").mkdir(exist_ok=True)
    (overrides / "web" / "feed.xsl.j2").write_text("<xsl:text>{{ title }}</xsl:text>\n", encoding="utf-8")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    out = env.get_template("web/feed.xsl.j2").render(title='</xsl:text><xsl:copy-of select="/"/> & "x"')
    assert (
        out
        == "<xsl:text>&lt;/xsl:text&gt;&lt;xsl:copy-of select=&#34;/&#34;/&gt; &amp; &#34;x&#34;</xsl:text>\n"
    )


# -- bounds: no template can take the process's memory or time ------------------------


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ 'x' * 10**9 }}", "1,000,000,000 characters"),
        ("{{ '%s' % 'a' * 100000000 }}", "100,000,000 characters"),
        ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "loops more than"),
        ("{% for c in 'x' * 999999 %}{% for d in 'y' * 999999 %}{% endfor %}{% endfor %}", "loops more than"),
        ("{{ '%999999999s' % 'a' }}", "formatted text"),
        ("{{ '{:>999999999}'.format('a') }}", "formatted text"),
        ("{{ 'a'.ljust(10**9) }}", "padded text"),
        ("{{ 'a'.zfill(10**9) }}", "padded text"),
        ("{{ 'a'|center(10**9) }}", "centred text"),
        ("{{ 'a'|indent(10**9, true) }}", "indented text"),
        ("{{ 'a'|replace('a', 'b' * 900000)|replace('b', 'cc') }}", "characters"),
        ("{{ [1]|batch(10**9, 'x')|list|length }}", "a list"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "over",
        ),
        ("{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}", "a list"),
        ("{% set l = ['x' * 900000] %}{{ (l * 1000)|join }}", "characters"),
        (
            "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}"
            "{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
            "over",
        ),
        ("{% for i in range(20) %}{{ 'x' * 999999 }}{% endfor %}", "writes more than 10,000,000"),
        ("{{ 7 ** 1000000 }}", "bits"),
    ],
)
def test_a_template_that_would_take_memory_or_time_stops_with_a_clear_error(
    make_settings: MakeSettings, source: str, says: str
) -> None:
    env = make_environment(make_settings())
    with pytest.raises(TemplateError) as info:
        render_string(env, source, {}, label="lists 'weekly'.subject")
    message = str(info.value)
    assert message.startswith("lists 'weekly'.subject"), message
    assert "not allowed in a template: the template " in message and says in message


def test_an_override_file_over_the_limit_is_named_with_its_line(
    make_settings: MakeSettings, overrides: Path
) -> None:
    _write(overrides, "email/digest.txt.j2", "Hello\n{{ 'x' * 10**9 }}\n")
    env = make_environment(make_settings(templates={"path": str(overrides)}))
    with pytest.raises(TemplateError) as info:
        render_template(env, "email/digest.txt.j2", {})
    assert "digest.txt.j2, line 2: not allowed in a template: the template would make a text or list" in str(
        info.value
    )
    assert "1,000,000,000 characters or list items long; the limit is 1,000,000" in str(info.value)


def test_a_render_that_runs_too_long_is_stopped(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exponential work without a loop (a macro calling itself twice) meets the deadline."""
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 0.2)
    env = make_environment(make_settings())
    source = "{% macro m(d) %}{% if d > 0 %}{{ m(d - 1) }}{{ m(d - 1) }}{% endif %}{% endmacro %}{{ m(40) }}"
    with pytest.raises(TemplateError, match=r"ran for more than 0\.2 seconds"):
        render_string(env, source, {}, label="subject")


def test_ordinary_templates_are_untouched_by_the_bounds(make_settings: MakeSettings) -> None:
    env = make_environment(make_settings())
    source = (
        "{{ '-' * 3 }}|{{ '%05d' % 42 }}|{{ '{:>4}'.format('a') }}|{{ [1, 2] + [3] }}|{{ 'a' ~ 1 }}|"
        "{% for k, v in {'a': 1}.items() %}{{ k }}{{ v }}{% endfor %}|"
        "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% else %}none{% endfor %}|"
        "{% for i in [] %}x{% else %}none{% endfor %}|{{ 'x'|center(5) }}|{{ (2, 3)|join(',') }}|"
        "{{ [1, 2, 3]|map('string')|join }}|{{ 2 ** 10 }}|{{ 'ab'.replace('a', 'c') }}"
    )
    assert render_string(env, source, {}, label="s") == (
        "---|00042|   a|[1, 2, 3]|a1|a1|1/3 2/3 3/3 |none|  x  |2,3|123|1024|cb"
    )
