"""The shared text rules: cuts at a word, bidi controls, BCP 47 language tags."""

from __future__ import annotations

import pytest

from publisher.text import cut_at_word, is_language_tag, strip_bidi


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
