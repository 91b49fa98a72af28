"""The shared text rules: cuts at a word, bidi controls, BCP 47 language tags, inert lines."""

from __future__ import annotations

import json

import pytest

from publisher.text import cut_at_word, first_line, inert_json, is_language_tag, strip_bidi, visible_line


def test_short_text_is_kept_whole() -> None:
    assert cut_at_word("Budget cuts", 11) == "Budget cuts"


def test_long_text_is_cut_at_a_word_with_an_ellipsis_within_the_limit() -> None:
    cut = cut_at_word("word " * 40_000, 500)
    assert len(cut) <= 500 and cut.endswith("word…")
    assert cut_at_word("Budget cuts announced today", 20) == "Budget cuts…"


def test_one_very_long_word_is_cut_inside_it() -> None:
    assert cut_at_word("see https://example.org/" + "a" * 100, 20) == "see https://example…"


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2069"])
def test_bidi_controls_are_removed(char: str) -> None:
    assert strip_bidi(f"invoice{char}fdp.exe") == "invoicefdp.exe"


@pytest.mark.parametrize(
    "tag", ["en", "fr-CH", "zh-Hant-TW", "sr-Latn-RS", "de-CH-1996", "en-US-x-twain", "x-local", "i-klingon"]
)
def test_well_formed_language_tags_pass(tag: str) -> None:
    assert is_language_tag(tag)


@pytest.mark.parametrize("tag", ['en"><script>', "", "e", "en-", "en_GB", "english language", "en\n", "1234"])
def test_malformed_language_tags_fail(tag: str) -> None:
    assert not is_language_tag(tag)


def test_a_hostile_reply_becomes_one_inert_line() -> None:
    """ANSI escapes, C1 controls, bidi overrides, NUL and line breaks from a mail server."""
    reply = "4.7.1 \x1b[2J\x1b]0;owned\x07 \x9b31m red\r\n4.7.1 [bold]x[/bold] \u202efdp.exe\x00\ud800 end"
    shown = visible_line(reply, 500)
    assert shown == (
        "4.7.1 \\x1b[2J\\x1b]0;owned\\x07 \\x9b31m red 4.7.1 [bold]x[/bold] \\u202efdp.exe\\x00\\ud800 end"
    )
    assert shown.isprintable() and shown.isascii()
    assert visible_line("a\tb\n\n c\u2028d", 50) == "a b c d"
    assert visible_line("\x1b[31m" + "word " * 100, 40) == "\\x1b[31mword word word word word word…"
    assert len(visible_line("\x1b" * 1000, 240)) <= 240


def test_json_for_a_terminal_escapes_what_is_not_text_and_parses_to_the_same_value() -> None:
    """C1 controls (\\x9b is a one-byte CSI), DEL, bidi overrides, line separators, lone
    surrogates and characters above U+FFFF of those kinds; accents and emoji stay."""
    value = {"reply": "a\x9b31m\x7f\u202efdp\u2028\U000e0041\ud800 é 📰", "n\u2066": ["\x85"]}
    text = inert_json(json.dumps(value, ensure_ascii=False, indent=2))
    assert json.loads(text) == value
    assert "é 📰" in text and "\\u009b" in text and "\\udb40\\udc41" in text
    visible = text.replace("é 📰", "")
    assert visible.isascii() and all(c.isprintable() or c == "\n" for c in visible), text
    assert inert_json('{"a": "plain"}') == '{"a": "plain"}'


def test_first_line_skips_blank_lines() -> None:
    assert first_line("\n  5.1.1 gone  \n5.1.1 more") == "5.1.1 gone"
    assert first_line("") == first_line(" \n ") == ""
