"""Reading a visitor's ``Accept-Language``, for every page the web app answers.

Here rather than in :mod:`publisher.i18n` because the web fronts may import only the
facade and the plain data modules at runtime (``tests/test_layers.py``); they pass in
the languages they offer (``Publisher.page_languages``), so this module knows no catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Language ranges read from one header; the rest is ignored (a header is not a list to walk).
MAX_RANGES = 20


def accepted_language(header: str, offered: Iterable[str]) -> str | None:
    """The visitor's most wanted language among ``offered``, by quality then order; None if none.

    ``fr-CH;q=0.9`` counts as ``fr``; ``q=0`` ("not this one"), ``*`` and malformed
    qualities are skipped, so an unknown or empty header gives None and the caller
    falls back to the site language.
    """
    codes = set(offered)
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:MAX_RANGES]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        if primary in codes and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else None
