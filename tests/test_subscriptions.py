"""Subscriptions as the CLI and the web app use them, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import random
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email

from publisher import subscriptions as subs
from publisher.config import Settings
from publisher.errors import ConfigError, SubscriberError
from publisher.models import SubscriptionStatus, Unsubscribe
from publisher.store import Store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LISTS = [
    {"slug": "weekly", "name": "Weekly", "sender": "News <news@example.org>"},
    {"slug": "press", "name": "Press", "sender": "News <news@example.org>"},
]

SAMPLE = (
    "email,name,language,organisation\n"
    "amina.diallo@example.org,Amina Diallo,fr,Ministry of Social Affairs\n"
    "  Carlos.Mendez@EXAMPLE.org ,Carlos Méndez,es-MX,Social Security Institute\n"
    "jane.smith@example.org,Jane Smith,en-GB,\n"
    "zoe@example.org,Zoë Müller,,\n"
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(lists=LISTS)


def write(tmp_path: Path, text: str, name: str = "weekly.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def statuses(store: Store, email: str) -> dict[str, str]:
    return {s.list_slug: s.status.value for s in subs.show(store, email).lists}


# -- addresses ------------------------------------------------------------------------


def test_address_is_trimmed_and_its_domain_lower_cased() -> None:
    assert subs.normalise_address("  Jane.Smith@Example.ORG  ") == "Jane.Smith@example.org"
    assert subs.normalise_address("jöhn@Bücher.DE") == "jöhn@bücher.de"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("jane@example.org\r\nBcc: all@example.org", "U+000D"),
        ("jane@example.org\nBcc: all@example.org", "U+000A"),
        ("jane@example.org\x00", "U+0000"),
        ("jane@example.org\t", "U+0009"),
        ("jane\u2028@example.org", "U+2028"),
        ("jane@example", "invalid address"),
        ("jane.example.org", "invalid address"),
        ("Jane <jane@example.org>", "invalid address"),
        ("   ", "empty"),
    ],
)
def test_bad_addresses_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(SubscriberError) as e:
        subs.normalise_address(raw)
    assert reason in e.value.reason


def _validator(address: str) -> str | None:
    try:
        return str(validate_email(address, check_deliverability=False).normalized)
    except EmailNotValidError:
        return None


def _ours(address: str) -> str | None:
    try:
        return subs.normalise_address(address)
    except SubscriberError:
        return None


def test_fast_path_gives_email_validator_verdicts() -> None:
    tricky = [
        "Postmaster@Example.org",
        "NEWS@example.org",
        "a..b@example.org",
        ".a@example.org",
        "a.@example.org",
        "a@localhost",
        "a@example.invalid",
        "a@-example.org",
        "a@example-.org",
        "a@exa_mple.org",
        "a@xn--bcher-kva.de",
        "a@Bücher.DE",
        "x" * 64 + "@example.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 63 + ".org",
        "a@" + "b" * 64 + ".org",
        "a@" + ".".join(["b" * 60] * 4) + ".org",
        "x" * 64 + "@" + ".".join(["b" * 60] * 3) + ".org",
        "o'brien+tag@example.org",
        "a/b=c{d}|e~@example.org",
    ]
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + ".-_+'!#@ü"
    generated = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        + "@"
        + rng.choice(["Example.ORG", "example.org", "ex-ample.co.uk", "bad_domain.org", "x.y", "ü.de"])
        for _ in range(500)
    ]
    for address in tricky + generated:
        assert _ours(address) == _validator(address), address


# -- import ---------------------------------------------------------------------------


def test_import_sample_with_accents_and_languages(store: Store, settings: Settings, tmp_path: Path) -> None:
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, SAMPLE), now=NOW)
    assert (report.added, report.updated, report.unchanged, report.suppressed_kept) == (4, 0, 0, 0)
    assert report.rejected == []
    got = {s.email: (s.name, s.language, s.attributes) for s in store.subscribers.confirmed("weekly")}
    assert got == {
        "amina.diallo@example.org": ("Amina Diallo", "fr", {"organisation": "Ministry of Social Affairs"}),
        "Carlos.Mendez@example.org": ("Carlos Méndez", "es", {"organisation": "Social Security Institute"}),
        "jane.smith@example.org": ("Jane Smith", "en", {}),
        "zoe@example.org": ("Zoë Müller", "en", {}),
    }
    record = subs.show(store, "carlos.mendez@example.org")
    (weekly,) = record.lists
    assert (weekly.status, weekly.consent_method, weekly.consent_source) == (
        "confirmed",
        "import",
        "weekly.csv",
    )
    assert weekly.consent_at is not None
    assert store.subscribers.confirmed("press") == []


def test_reimport_changes_nothing(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    subs.import_csv(settings, store, "weekly", path, now=NOW)
    before = [subs.show(store, s.email) for s in store.subscribers.confirmed("weekly")]
    report = subs.import_csv(settings, store, "weekly", path, now=NOW)
    assert (report.added, report.updated, report.unchanged, report.suppressed_kept) == (0, 0, 4, 0)
    after = [subs.show(store, s.email) for s in store.subscribers.confirmed("weekly")]
    assert after == before


def test_duplicates_in_a_file_are_merged_and_reported_with_both_lines(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    text = (
        "email,name,language,note\n"
        "ana@example.org,,fr,\n"
        " ANA@Example.org ,Ana Lima,,\n"
        "bo@example.org,Bo,,\n"
        'cy@example.org,Cy,,"a note\non two lines"\n'
        "ana@example.org,,,\n"
        "cy@example.org,,es,\n"
    )
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    assert (report.added, report.duplicates, report.rejected) == (3, 3, [])
    assert [str(w) for w in report.warnings] == [
        "weekly.csv:3: duplicate of line 2 (ANA@example.org); merged",
        "weekly.csv:7: duplicate of line 2 (ana@example.org); merged",
        "weekly.csv:8: duplicate of line 5 (cy@example.org); merged",  # line 5 spans two lines
    ]
    ana = subs.show(store, "ana@example.org")
    assert (ana.email, ana.name, ana.language) == ("ana@example.org", "Ana Lima", "fr")
    assert subs.show(store, "cy@example.org").language == "es"


def test_bad_rows_are_reported_by_line_and_the_rest_imported(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    text = (
        "email,name,language\n"
        "good1@example.org,Good One,en\n"
        "not-an-address,Nobody,en\n"
        '"evil@example.org","Eve\r\nBcc: all@example.org",en\n'
        '"evil2@example.org\nBcc: all@example.org",Eve,en\n'
        "nul@example.org,Nu\x00l,en\n"
        "\n"
        "good2@example.org,Good Two,xx-1-toolongsubtag\n"
        "good3@example.org,Good Three,fr-CH\n"
    )
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    assert [str(e) for e in report.rejected] == [
        "weekly.csv:3: invalid address 'not-an-address': An email address must have an @-sign.",
        "weekly.csv:4: name 'Eve\\r\\nBcc: all@example.org' contains the control character U+000D; "
        "line breaks and other control characters are not allowed (they could inject mail headers)",
        "weekly.csv:6: address 'evil2@example.org\\nBcc: all@example.org' contains the control character "
        "U+000A; line breaks and other control characters are not allowed (they could inject mail headers)",
        "weekly.csv:8: field 'Nu\\x00l' contains a NUL character",
        "weekly.csv:10: language 'xx-1-toolongsubtag' is not a language tag such as 'en' or 'fr-CH'",
    ]
    assert report.added == 2
    assert sorted(s.email for s in store.subscribers.confirmed("weekly")) == [
        "good1@example.org",
        "good3@example.org",
    ]


def test_missing_email_column_names_the_headers(store: Store, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(SubscriberError) as e:
        subs.import_csv(settings, store, "weekly", write(tmp_path, "mail,name\na@example.org,A\n"), now=NOW)
    assert str(e.value) == "weekly.csv:1: no 'email' column in the header; columns found: 'mail', 'name'"


def test_unknown_list_is_a_config_error(store: Store, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown list 'monthly'"):
        subs.import_csv(settings, store, "monthly", write(tmp_path, SAMPLE), now=NOW)


def _unsubscribe(store: Store, settings: Settings, email: str) -> None:
    assert subs.remove(store, "weekly", email, now=NOW) is Unsubscribe.UNSUBSCRIBED


def _bounce(store: Store, settings: Settings, email: str) -> None:
    sid = store.subscribers.find_id(email) or 0
    assert subs.set_status(
        store, sid, "weekly", SubscriptionStatus.BOUNCED, "550 5.1.1 no such user", now=NOW
    )


def _complain(store: Store, settings: Settings, email: str) -> None:
    sid = store.subscribers.find_id(email) or 0
    assert subs.set_status(store, sid, None, SubscriptionStatus.COMPLAINED, "ARF feedback report", now=NOW)


def _forget(store: Store, settings: Settings, email: str) -> None:
    assert subs.forget(store, email, now=NOW)


@pytest.mark.parametrize("suppress", [_unsubscribe, _bounce, _complain, _forget])
def test_reimport_never_resubscribes_suppressed_addresses(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    suppress: Callable[[Store, Settings, str], None],
) -> None:
    path = write(tmp_path, SAMPLE)
    subs.import_csv(settings, store, "weekly", path, now=NOW)
    suppress(store, settings, "jane.smith@example.org")
    report = subs.import_csv(settings, store, "weekly", path, now=NOW)
    assert (report.suppressed_kept, report.unchanged, report.added, report.updated) == (1, 3, 0, 0)
    confirmed = {s.email for s in store.subscribers.confirmed("weekly")}
    assert "jane.smith@example.org" not in confirmed and len(confirmed) == 3
    # nor does an import into another list bring a forgotten address back
    report = subs.import_csv(settings, store, "press", path, now=NOW)
    expected_kept = 1 if suppress is _forget else 0
    assert report.suppressed_kept == expected_kept


def test_progress_reaches_the_total(store: Store, settings: Settings, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    subs.import_csv(
        settings,
        store,
        "weekly",
        write(tmp_path, SAMPLE),
        progress=lambda d, t: calls.append((d, t)),
        now=NOW,
    )
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)


# -- export ---------------------------------------------------------------------------


def test_export_round_trip_keeps_subscribers_and_suppressions(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    subs.import_csv(settings, store, "weekly", write(tmp_path, SAMPLE), now=NOW)
    subs.remove(store, "weekly", "zoe@example.org", now=NOW)
    out = io.StringIO()
    assert subs.export_csv(store, "weekly", out) == 4
    lines = out.getvalue().splitlines()
    assert lines[0] == "email,name,language,status,consent_at,consent_method,consent_source,organisation"
    assert lines[1].startswith("amina.diallo@example.org,Amina Diallo,fr,confirmed,20")
    assert lines[1].endswith(",import,weekly.csv,Ministry of Social Affairs")

    confirmed_only = io.StringIO()
    assert subs.export_csv(store, "weekly", confirmed_only, statuses=["confirmed"]) == 3

    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        report = subs.import_csv(
            settings, other, "weekly", write(tmp_path, out.getvalue(), "export.csv"), now=NOW
        )
        assert (report.added, report.suppressed_kept, report.rejected) == (3, 1, [])

        def snapshot(s: Store) -> list[tuple[str, str, str, str, dict[str, str]]]:
            return sorted(
                (r.email, r.name, r.language, r.status.value, dict(r.attributes))
                for r in s.subscribers.export_rows("weekly")
            )

        assert snapshot(other) == snapshot(store)
    finally:
        other.close()


def test_export_neutralises_spreadsheet_formulas_and_round_trips(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """OWASP CSV injection: a cell a spreadsheet would run as a formula gets a leading '."""
    text = (
        "email,name,language,note\n"
        '-joe@example.org,"=HYPERLINK(""http://evil.example"",""x"")",en,@SUM(A1)\n'
        "ann@example.org,+Ann,en,-1\n"
        "bob@example.org,Bob - the builder,en,plain\n"
    )
    subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    out = io.StringIO()
    subs.export_csv(store, "weekly", out)
    rows = {r[0]: r for r in csv.reader(io.StringIO(out.getvalue()))}
    assert rows["'-joe@example.org"][1] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows["'-joe@example.org"][-1] == "'@SUM(A1)"
    assert rows["ann@example.org"][1] == "'+Ann" and rows["ann@example.org"][-1] == "'-1"
    assert rows["bob@example.org"][1] == "Bob - the builder"  # only a leading character counts
    # the export imported elsewhere gives back the original values
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        subs.import_csv(settings, other, "weekly", write(tmp_path, out.getvalue(), "export.csv"), now=NOW)
        names = {r.email: r.name for r in other.subscribers.export_rows("weekly")}
        assert names["-joe@example.org"] == '=HYPERLINK("http://evil.example","x")'
        assert names["ann@example.org"] == "+Ann"
    finally:
        other.close()


def test_an_over_long_field_is_reported_with_its_line_and_the_rest_imported(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    text = f"email,name\na@example.org,A\nb@example.org,{'x' * 200_000}\nc@example.org,C\n"
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    (problem,) = report.rejected
    assert str(problem).startswith("weekly.csv:3: cannot read this record: field larger than field limit")
    assert report.added == 2
    assert sorted(s.email for s in store.subscribers.confirmed("weekly")) == [
        "a@example.org",
        "c@example.org",
    ]


# -- admin operations -----------------------------------------------------------------


def test_add_remove_show(store: Store, settings: Settings) -> None:
    added = subs.add(
        settings, store, "weekly", " Ana@Example.ORG", "Ana Lima", "fr-CH", source="admin", now=NOW
    )
    assert (added.email, added.name, added.language, added.status) == (
        "Ana@example.org",
        "Ana Lima",
        "fr",
        "confirmed",
    )
    assert len(added.secret) == 32
    again = subs.add(settings, store, "weekly", "ana@example.org", now=NOW)
    assert (again.id, again.name, again.status) == (added.id, "Ana Lima", "confirmed")

    removed = subs.remove(store, "weekly", "ANA@example.org", reason="asked by phone", now=NOW)
    assert removed is Unsubscribe.UNSUBSCRIBED
    assert subs.remove(store, "weekly", "ana@example.org", now=NOW) is Unsubscribe.ALREADY  # idempotent
    assert subs.remove(store, "weekly", "nobody@example.org", now=NOW) is Unsubscribe.NOT_ON_LIST

    record = subs.show(store, "ana@example.org")
    assert record.lists[0].status is SubscriptionStatus.UNSUBSCRIBED
    assert record.lists[0].consent_method == "cli"  # the consent given stays on record
    assert [(e.event, e.detail) for e in record.events] == [
        ("confirmed", "cli: admin"),
        ("unsubscribed", "asked by phone"),
    ]
    from publisher.cli import record_text

    text = record_text(record, settings)
    assert "email:      Ana@example.org" in text
    assert "list weekly: unsubscribed (consent: " in text and " cli admin)" in text
    assert text.endswith("weekly unsubscribed (asked by phone)")
    with pytest.raises(SubscriberError, match="no subscriber with this address"):
        subs.show(store, "nobody@example.org")


def test_add_of_a_suppressed_address_needs_force(store: Store, settings: Settings) -> None:
    subs.add(settings, store, "weekly", "ana@example.org", now=NOW)
    subs.remove(store, "weekly", "ana@example.org", now=NOW)
    with pytest.raises(SubscriberError, match=r"unsubscribed from list 'weekly'.*--force"):
        subs.add(settings, store, "weekly", "ana@example.org", now=NOW)
    assert statuses(store, "ana@example.org") == {"weekly": "unsubscribed"}
    back = subs.add(
        settings, store, "weekly", "ana@example.org", force=True, source="signed form 2026-11", now=NOW
    )
    assert back.status is SubscriptionStatus.CONFIRMED
    record = subs.show(store, "ana@example.org")
    assert record.lists[0].consent_source == "signed form 2026-11"
    assert record.events[-1].detail == "cli: signed form 2026-11 (suppression lifted by force)"


def test_header_injection_through_add_is_refused(store: Store, settings: Settings) -> None:
    with pytest.raises(SubscriberError, match=re.escape("U+000D")):
        subs.add(settings, store, "weekly", "ana@example.org", "Ana\r\nBcc: all@example.org", now=NOW)
    with pytest.raises(SubscriberError, match=re.escape("U+000A")):
        subs.add(settings, store, "weekly", "ana@example.org\nBcc: all@example.org", now=NOW)
    with pytest.raises(SubscriberError, match=re.escape("U+0085")):
        subs.add(settings, store, "weekly", "ana@example.org", "Ana\x85Bcc", now=NOW)
    assert store.subscribers.find_id("ana@example.org") is None


def test_forget_erases_personal_data(store: Store, settings: Settings, tmp_path: Path) -> None:
    subs.import_csv(settings, store, "weekly", write(tmp_path, SAMPLE), now=NOW)
    subs.add(settings, store, "press", "amina.diallo@example.org", source="desk", now=NOW)
    assert subs.forget(store, "Amina.Diallo@example.org", now=NOW)  # the hash ignores case
    assert not subs.forget(store, "amina.diallo@example.org", now=NOW)
    record = subs.show(store, "amina.diallo@example.org")
    assert (record.email, record.name, record.attributes) == (None, "", {})
    assert {ls.list_slug: ls.status.value for ls in record.lists} == {
        "weekly": "unsubscribed",
        "press": "unsubscribed",
    }
    assert all(e.detail is None for e in record.events)
    out = io.StringIO()
    subs.export_csv(store, "weekly", out)
    assert "amina" not in out.getvalue().lower()
    with pytest.raises(SubscriberError, match="forgotten"):
        subs.add(settings, store, "weekly", "amina.diallo@example.org", now=NOW)
    back = subs.add(settings, store, "weekly", "amina.diallo@example.org", "Amina", force=True, now=NOW)
    assert (back.email, back.status) == ("amina.diallo@example.org", "confirmed")
    assert statuses(store, "amina.diallo@example.org") == {"press": "unsubscribed", "weekly": "confirmed"}


# -- token-driven operations ----------------------------------------------------------


def test_one_click_unsubscribe_is_idempotent_and_recorded(store: Store, settings: Settings) -> None:
    ana = subs.add(settings, store, "weekly", "ana@example.org", now=NOW)
    assert subs.subscriber_secret(store, ana.id) == ana.secret
    assert subs.subscriber_secret(store, ana.id + 999) is None
    assert subs.unsubscribe_by_id(store, ana.id, "weekly", method="one-click", source="192.0.2.7", now=NOW)
    assert not subs.unsubscribe_by_id(
        store, ana.id, "weekly", method="one-click", source="192.0.2.7", now=NOW
    )
    assert not subs.unsubscribe_by_id(store, ana.id, "press", method="web", source="192.0.2.7", now=NOW)
    events = [(e.list_slug, e.event, e.detail) for e in subs.show(store, "ana@example.org").events]
    assert events == [("weekly", "confirmed", "cli"), ("weekly", "unsubscribed", "one-click: 192.0.2.7")]
    assert store.subscribers.confirmed("weekly") == []
    with pytest.raises(SubscriberError, match="no such subscriber"):
        subs.unsubscribe_by_id(store, ana.id + 999, "weekly", source="", now=NOW)


def test_set_status_records_suppressions_only(store: Store, settings: Settings) -> None:
    ana = subs.add(settings, store, "weekly", "ana@example.org", now=NOW)
    subs.add(settings, store, "press", "ana@example.org", now=NOW)
    with pytest.raises(SubscriberError, match="suppressions only"):
        subs.set_status(store, ana.id, "weekly", SubscriptionStatus.CONFIRMED, "", now=NOW)
    assert subs.set_status(store, ana.id, None, SubscriptionStatus.BOUNCED, "550 5.1.1 user unknown", now=NOW)
    assert statuses(store, "ana@example.org") == {"press": "bounced", "weekly": "bounced"}
    assert not subs.set_status(store, ana.id, "weekly", SubscriptionStatus.BOUNCED, "again", now=NOW)
    assert not subs.set_status(
        store, ana.id, "weekly", SubscriptionStatus.UNSUBSCRIBED, "late click", now=NOW
    )
    assert subs.set_status(store, ana.id, "weekly", SubscriptionStatus.COMPLAINED, "abuse report", now=NOW)
    assert statuses(store, "ana@example.org") == {"press": "bounced", "weekly": "complained"}
    assert subs.show(store, "ana@example.org").events[-1].detail == "abuse report"


def test_preferences_update(store: Store, settings: Settings) -> None:
    ana = subs.add(settings, store, "weekly", "ana@example.org", now=NOW)
    assert subs.preferences(store, ana.id) == {"weekly": "confirmed"}
    slugs = [lst.slug for lst in settings.lists]
    new = subs.update_preferences(
        store, ana.id, {"weekly": False, "press": True}, source="192.0.2.7", lists=slugs, now=NOW
    )
    assert new == {"press": "confirmed", "weekly": "unsubscribed"}
    new = subs.update_preferences(store, ana.id, {"weekly": True}, lists=slugs, now=NOW)
    assert new == {"press": "confirmed", "weekly": "confirmed"}
    record = subs.show(store, "ana@example.org")
    consent = {ls.list_slug: (ls.consent_method, ls.consent_source) for ls in record.lists}
    assert consent == {"press": ("preferences", "192.0.2.7"), "weekly": ("preferences", "")}
    with pytest.raises(SubscriberError, match="unknown list"):
        subs.update_preferences(store, ana.id, {"monthly": True}, lists=slugs, now=NOW)
    assert (
        subs.update_preferences(store, ana.id, {"weekly": True}, now=NOW) == new
    )  # nothing changes, no event
    assert len(subs.show(store, "ana@example.org").events) == len(record.events)


def test_names_lose_bidi_controls_and_are_cut_to_200_characters(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    added = subs.add(settings, store, "weekly", "ana@example.org", "Ana \u202eLima\u2069", now=NOW)
    assert added.name == "Ana Lima"
    long_name = "Name " * 1000
    text = f'email,name,language\nbo@example.org,"{long_name}",en\ncy@example.org,Cy,\'en"><script>\'\n'
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    bo = subs.show(store, "bo@example.org")
    assert len(bo.name) <= 200 and bo.name.endswith("Name…")
    assert [str(e) for e in report.rejected] == [
        "weekly.csv:3: language '\\'en\"><script>\\'' is not a language tag such as 'en' or 'fr-CH'"
    ]


# -- files in another encoding, languages outside the catalogue (issue 8, points 2 and 6)


def test_a_latin1_file_rejects_its_non_utf8_lines_by_number_and_imports_the_rest(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "weekly.csv"
    path.write_text(
        "email,name,language,note\n"
        "ana@example.org,Ana,fr,\n"
        "rene@example.org,René Dupré,fr,\n"  # é is the single byte 0xe9 in Latin-1
        'bo@example.org,Bo,en,"first line\nsecond line: señal"\n'  # ñ (0xf1) on the record's 2nd line
        "cy@example.org,Cy,es,\n",
        encoding="latin-1",
        newline="",
    )
    assert b"Ren\xe9" in path.read_bytes()
    report = subs.import_csv(settings, store, "weekly", path, now=NOW)
    fix = "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    assert [str(e) for e in report.rejected] == [
        f"weekly.csv:3: not UTF-8 text (byte 0xe9); {fix}",
        f"weekly.csv:4: not UTF-8 text (byte 0xf1); {fix}",
    ]
    assert report.added == 2
    assert sorted(s.email for s in store.subscribers.confirmed("weekly")) == [
        "ana@example.org",
        "cy@example.org",
    ]


def test_a_header_that_is_not_utf8_refuses_the_file_and_says_how_to_fix_it(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "weekly.csv"
    path.write_bytes("email,name,société\na@example.org,A,X\n".encode("cp1252"))
    with pytest.raises(SubscriberError) as e:
        subs.import_csv(settings, store, "weekly", path, now=NOW)
    assert str(e.value) == (
        "weekly.csv:1: not UTF-8 text (byte 0xe9); save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    )


def test_a_utf8_file_with_a_byte_order_mark_imports_whole(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "weekly.csv"
    path.write_bytes("email,name\nrene@example.org,René\n".encode("utf-8-sig"))
    report = subs.import_csv(settings, store, "weekly", path, now=NOW)
    assert (report.added, report.rejected) == (1, [])
    assert subs.show(store, "rene@example.org").name == "René"


def test_a_bad_byte_deep_in_a_large_file_rejects_that_line_only(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The file is checked and decoded a piece at a time (past the first MiB, across
    multi-byte characters cut by the pieces' edges), and still read as one text."""
    names = [f"Zoë Ñúñez 🎉 {n}" for n in range(30_000)]
    lines = [b"\xef\xbb\xbfemail,name\n"] + [
        f"p{n}@example.org,{name}\n".encode() for n, name in enumerate(names)
    ]
    lines[28_001] = b"bad@example.org,Ren\xe9\n"  # Latin-1 é, past the first MiB
    path = tmp_path / "weekly.csv"
    path.write_bytes(b"".join(lines))
    assert sum(map(len, lines[:28_001])) > 1 << 20
    report = subs.import_csv(settings, store, "weekly", path, now=NOW)
    fix = "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    assert [str(e) for e in report.rejected] == [f"weekly.csv:28002: not UTF-8 text (byte 0xe9); {fix}"]
    assert report.added == 29_999
    stored = {s.email: s.name for s in store.subscribers.confirmed("weekly")}
    assert stored == {f"p{n}@example.org": name for n, name in enumerate(names) if n != 28_000}


def test_hostile_values_are_stored_exactly_or_refused_by_line(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """What PostgreSQL's COPY text format escapes (tab, newline, backslash, ``\\N``) comes back as written."""
    long_name = " ".join(["Wolfeschlegelsteinhausenbergerdorff"] * 12)  # 431 characters
    hostile = 'tab\there, "quoted", back\\slash \\N and\nnew line 🎉'
    rows = [
        ["email", "name", "language", "note\\\tkey", "big"],
        ["ana@example.org", 'Ana "\\N" O\'Brien \\', "fr", hostile, "x" * 100_000],
        ["bo@example.org", "\\N", "", "\\N", ""],
        ["cy@example.org", long_name, "es", "", ""],
        ["nul@example.org", "Nul", "", "a\x00b", ""],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, out.getvalue()), now=NOW)
    assert [str(e) for e in report.rejected] == ["weekly.csv:6: field 'a\\x00b' contains a NUL character"]
    assert report.added == 3
    ana = subs.show(store, "ana@example.org")
    assert ana.name == 'Ana "\\N" O\'Brien \\'
    assert dict(ana.attributes) == {"note\\\tkey": hostile, "big": "x" * 100_000}
    bo = subs.show(store, "bo@example.org")
    assert (bo.name, bo.language, dict(bo.attributes)) == ("\\N", "en", {"note\\\tkey": "\\N"})
    cy = subs.show(store, "cy@example.org")
    assert cy.name == " ".join(["Wolfeschlegelsteinhausenbergerdorff"] * 5) + "…"  # cut at a word
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, out.getvalue()), now=NOW)
    assert (report.added, report.updated, report.unchanged) == (0, 0, 3)


def test_a_nul_in_the_header_refuses_the_file(store: Store, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(SubscriberError) as e:
        subs.import_csv(
            settings, store, "weekly", write(tmp_path, "email,org\x00\na@example.org,ILO\n"), now=NOW
        )
    assert str(e.value) == "weekly.csv:1: a column name contains a NUL character; remove it from the header"
    assert store.subscribers.find_id("a@example.org") is None


def test_a_language_outside_the_catalogue_is_refused_with_the_offered_ones(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(SubscriberError) as e:
        subs.add(settings, store, "weekly", "ana@example.org", language="de", now=NOW)
    assert str(e.value) == "language 'de' is not offered; use one of en, es, fr"
    assert store.subscribers.find_id("ana@example.org") is None

    text = "email,language\nbo@example.org,xx\ncy@example.org,fr-CH\ndi@example.org,ES_mx\n"
    report = subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    assert [str(r) for r in report.rejected] == [
        "weekly.csv:2: language 'xx' is not offered; use one of en, es, fr"
    ]
    got = {s.email: s.language for s in store.subscribers.confirmed("weekly")}
    assert got == {"cy@example.org": "fr", "di@example.org": "es"}  # regional variants: the language


def test_a_site_language_outside_the_catalogue_gives_new_subscribers_english(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(lists=LISTS, site={"language": "de-CH"})
    assert subs.add(settings, store, "weekly", "ana@example.org", now=NOW).language == "en"


def test_subscribers_a_list_skips_for_their_language_are_counted_per_language(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(lists=[{**LISTS[0], "languages": ["fr"]}, LISTS[1]])
    text = (
        "email,language\n"
        "a@example.org,fr\nb@example.org,fr-BE\nc@example.org,en\nd@example.org,es\ne@example.org,es\n"
    )
    subs.import_csv(settings, store, "weekly", write(tmp_path, text), now=NOW)
    subs.import_csv(settings, store, "press", write(tmp_path, text), now=NOW)
    assert subs.remove(store, "weekly", "d@example.org", now=NOW) is Unsubscribe.UNSUBSCRIBED  # not counted
    assert subs.unserved_languages(settings, store, "weekly") == {"en": 1, "es": 1}
    assert subs.unserved_languages(settings, store, "press") == {}  # no languages: sends to all
    assert store.subscribers.count_confirmed("weekly", ["fr"]) == 2
