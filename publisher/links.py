"""Mailed links -> who they are for: the token checked against the subscriber's own secret.

Every digest carries ``/unsubscribe/TOKEN`` and ``/preferences/TOKEN`` links. A link is
good only if its token parses, names a subscriber we still know (not forgotten) and is
signed with that subscriber's secret; anything else is a TokenError and the page says
the link is not valid. A test copy (``digest send --to``) is made for subscriber id 0,
which no stored subscriber has: its links say so instead of failing as forged.
"""

from __future__ import annotations

from dataclasses import dataclass

from publisher.config import Settings
from publisher.errors import TokenError
from publisher.i18n import normalise_language
from publisher.store import Store
from publisher.tokens import make_token, read_token, verify_token

# The subscriber id of previews and test copies (see publisher.digests.sample_subscriber).
TEST_SUBSCRIBER_ID = 0


@dataclass(frozen=True, slots=True)
class LinkHolder:
    """The subscriber a valid link is for, and the list it names."""

    subscriber_id: int
    list_slug: str
    email: str
    language: str  # a catalogue language, for the page
    preferences_token: str = ""  # the holder's own preferences link (pages link to it)

    @property
    def test_copy(self) -> bool:
        return self.subscriber_id == TEST_SUBSCRIBER_ID


def link_holder(settings: Settings, store: Store, token: str, purpose: str) -> LinkHolder:
    """Verify ``token`` for ``purpose``; raise TokenError saying why it is not valid."""
    subscriber_id, list_slug, token_purpose = read_token(token)
    if token_purpose != purpose:
        raise TokenError(f"a {token_purpose} token used for {purpose}")
    if subscriber_id == TEST_SUBSCRIBER_ID:
        return LinkHolder(subscriber_id, list_slug, "", normalise_language(None, settings.site.language))
    sub = store.subscribers.get(subscriber_id)
    if sub is None or not sub.secret:
        raise TokenError("no such subscriber")
    verify_token(token, sub.secret)
    if store.subscribers.is_forgotten(subscriber_id):
        raise TokenError("this subscriber was forgotten; its links no longer work")
    language = normalise_language(sub.language, settings.site.language)
    preferences = make_token(subscriber_id, list_slug, "preferences", sub.secret)
    return LinkHolder(subscriber_id, list_slug, sub.email, language, preferences)
