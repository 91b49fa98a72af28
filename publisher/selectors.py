"""The selector syntax of html sources: ``css selector`` or ``css selector@attribute``.

config.py compiles every selector when the config is loaded (so ``publisher check``
finds a typo, not the next ingest) and sources/html.py reads items with the same
split, so both agree on what ``h3 a@href`` means.
"""

from __future__ import annotations

import re

import soupsieve
from soupsieve import SelectorSyntaxError

_ATTRIBUTE = re.compile(r"^(.*)@([A-Za-z_:][-\w:.]*)$", re.DOTALL)


def split_selector(spec: str) -> tuple[str, str | None]:
    """``"h3 a@href"`` -> ``("h3 a", "href")``; ``"h3 a"`` -> ``("h3 a", None)``."""
    match = _ATTRIBUTE.match(spec)
    return (match.group(1), match.group(2)) if match else (spec, None)


def check_selector(spec: str) -> None:
    """Raise ValueError, saying what is wrong, unless ``spec`` compiles.

    An empty selector means the item element itself and is allowed.
    """
    selector, _ = split_selector(spec)
    if not selector.strip():
        return
    try:
        soupsieve.compile(selector)
    except SelectorSyntaxError as e:
        first = str(e).splitlines()[0]
        raise ValueError(f"{spec!r} is not a valid CSS selector: {first}") from e
    except (RecursionError, ValueError, TypeError) as e:
        raise ValueError(f"{spec!r} is not a valid CSS selector ({type(e).__name__})") from e
