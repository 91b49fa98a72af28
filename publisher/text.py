"""Characters that must never reach a feed or a mail header, defined once.

Ingest strips what XML cannot carry before items are stored and hashed; feeds strip
the same from configuration text; messages and subscriptions refuse or neutralise
control characters in anything that becomes a header (injection).
"""

from __future__ import annotations

import re

# XML 1.0 cannot carry C0 controls (but tab, LF, CR), surrogates or U+FFFE/U+FFFF;
# C1 controls and U+FFFD are legal but flagged by feed validators and never meant.
XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ufffe\uffff\ud800-\udfff]")

# Anything that can end or fold a header line, or hide in one.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def xml_safe(text: str | None) -> str:
    """``text`` without the characters XML cannot carry or validators flag."""
    return XML_UNSAFE.sub("", text or "")
