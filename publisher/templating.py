"""The one place Jinja2 environments are made, so every template behaves the same way.

Admins may override any template by putting a file of the same name in the folder
``[templates] path``; that folder is searched first, then the built-in ``templates/``.
``default:`` always names the built-in, so an override can extend what it replaces
(``{% extends "default:email/digest.html.j2" %}``), the Datasette/Pelican way.

Every template runs in Jinja2's sandbox (no attribute walks to Python internals):
an admin can override any of them, the web pages included, and a template is content,
not code that may run shell commands in the web or mail process. The sandbox is also
bounded (:mod:`publisher.sandbox`): no template can take the process's memory or
time with ``{{ 'x' * 10**9 }}`` or nested loops. They also use
``StrictUndefined`` (a typo is an error, not an empty string). Every
Jinja2 error becomes a :class:`~publisher.errors.TemplateError` naming the template
file and line, because the admin needs to know where to look, not a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from publisher.config import Settings
from publisher.errors import TemplateError
from publisher.i18n import format_day, translate
from publisher.media import picture
from publisher.sandbox import BoundedSandbox
from publisher.text import html_to_text

# A link to the top-level templates/ in the repository, a real folder in the wheel.
BUILTIN_TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_PREFIX = "default"


def make_environment(settings: Settings) -> BoundedSandbox:
    """An environment searching the admin's folder, then the built-ins (also as ``default:``).

    Kept per process and configuration: compiled templates are reused by every build,
    issue and page (Jinja2 still reloads a template edited on disk). Nothing changes an
    environment after it is made, so sharing one is safe.
    """
    key = (settings.templates.path, settings.site.timezone, settings.site.language)
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = _ENVIRONMENTS[key] = _build_environment(settings)
    return env


_ENVIRONMENTS: dict[tuple[Path | None, str, str], BoundedSandbox] = {}


def _build_environment(settings: Settings) -> BoundedSandbox:
    builtin = jinja2.FileSystemLoader(BUILTIN_TEMPLATES)
    search = [BUILTIN_TEMPLATES]
    if settings.templates.path is not None:
        search.insert(0, Path(settings.templates.path))
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({DEFAULT_PREFIX: builtin}, delimiter=":"),
            jinja2.FileSystemLoader(search),
        ]
    )
    env = BoundedSandbox(
        loader=loader,
        undefined=ExplainedUndefined,
        # feed.xsl.j2 is XML: an override that forgets |e must still escape.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "xsl.j2"), default_for_string=False
        ),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = settings.site.tz
    env.add_filter("date", _date_filter(tz))
    env.add_filter("plaintext", html_to_text)
    env.add_filter("picture", picture)  # item|picture: src, alt, width, height (<= 552 px) or None
    env.globals["site_language"] = settings.site.language
    return env


def templates_digest(settings: Settings, names: Iterable[str]) -> str:
    """A digest of the template files that rendering ``names`` reads, by content.

    Each name counts as the search path finds it (an override added or removed changes
    the file, so the digest), followed through ``extends``, ``include`` and ``import``
    (``default:`` names too). A name computed at render time cannot be followed: every
    template file then counts. A template that is missing or does not parse counts as
    such; rendering it fails with its file and line, not here.

    By content, not size and mtime: the files are read to find what they extend anyway,
    and a copy that keeps the mtime (``cp -p``, ``rsync -t``) still counts as changed.
    """
    env = make_environment(settings)
    loader = env.loader
    assert loader is not None  # _build_environment always sets one
    digest = hashlib.sha256()
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source, filename, _uptodate = loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            digest.update(f"{name}\0(missing)\0".encode())
            continue
        digest.update(f"{name}\0{filename}\0".encode())
        digest.update(hashlib.sha256(source.encode("utf-8")).digest())
        for ref in _references(env, source):
            todo.extend(env.list_templates() if ref is None else [ref])
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _references(env: jinja2.Environment, source: str) -> tuple[str | None, ...]:
    """The templates ``source`` extends, includes or imports (None: a name computed at
    render time); parsed once per source text, since needs_build asks at every ingest."""
    try:
        return tuple(jinja2.meta.find_referenced_templates(env.parse(source)))
    except jinja2.TemplateSyntaxError:
        return ()


class ExplainedUndefined(jinja2.StrictUndefined):
    """StrictUndefined whose error lists what does exist, instead of naming a Python class.

    ``{{ list.title }}`` fails with "list has no field 'title'; its fields: name, slug"
    rather than "'publisher.messages.ListView object' has no attribute 'title'".
    """

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        if obj is jinja2.utils.missing or name is None:
            return super()._undefined_message
        fields = _public_fields(obj)
        shown = ", ".join(fields) if fields else "none"
        return f"{type(obj).__name__.removesuffix('View')} has no field {name!r}; its fields: {shown}"


def _public_fields(obj: object) -> list[str]:
    """What a template may read of ``obj``: mapping keys, dataclass fields or public attributes."""
    if isinstance(obj, Mapping):
        return sorted(str(k) for k in obj)
    if dataclasses.is_dataclass(obj):
        return sorted(f.name for f in dataclasses.fields(obj))
    return sorted(n for n in dir(obj) if not n.startswith("_") and not callable(getattr(obj, n, None)))


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render template ``name``; any Jinja2 failure becomes a TemplateError saying where."""
    try:
        template = env.get_template(name)
    except jinja2.TemplateError as e:
        raise _wrap(e, name) from e
    return _render(template, context, name)


def render_string(env: jinja2.Environment, source: str, context: Mapping[str, Any], *, label: str) -> str:
    """Render a template held in config (e.g. a list's subject); ``label`` names its key."""
    try:
        template = _compiled(env, source)
    except jinja2.TemplateError as e:
        raise _wrap(e, label) from e
    return _render(template, context, label)


@functools.lru_cache(maxsize=256)
def _compiled(env: jinja2.Environment, source: str) -> jinja2.Template:
    """A config template compiled once per environment: compiling a subject costs about 6 ms,
    and the archive renders one per issue and language at every build. Environments are
    shared and never changed once made (:func:`make_environment`), so the result stays
    right; a source that fails to compile is not cached and fails again."""
    return env.from_string(source)


def translator(language: str) -> Callable[..., str]:
    """The ``t(key, **values)`` function templates use for the fixed texts."""

    def t(key: str, **values: object) -> str:
        return translate(key, language, **values)

    return t


def _date_filter(tz: Any) -> Callable[..., str]:
    @jinja2.pass_context
    def date_filter(
        context: jinja2.runtime.Context,
        value: datetime | date,
        format: str = "long",
        locale: str | None = None,
    ) -> str:
        language = locale or context.get("language") or context.get("site_language") or "en"
        return format_day(value, str(language), tz=tz, fmt=format)

    return date_filter


def _render(template: jinja2.Template, context: Mapping[str, Any], name: str) -> str:
    try:
        return template.render(context)
    except jinja2.UndefinedError as e:
        error = _wrap(e, name)
        if str(e).endswith("is undefined"):  # a top-level name: say which ones exist
            names = sorted(k for k in context if not k.startswith("_"))
            error = TemplateError(f"{error}; the names a template can use here: {', '.join(names)}")
        raise error from e
    except Exception as e:  # an admin's template can raise anything (1/0, bad filter args)
        raise _wrap(e, name) from e


def _wrap(error: Exception, name: str) -> TemplateError:
    """Say which template, which line, and what went wrong, in one line."""
    if isinstance(error, jinja2.TemplateNotFound):
        tried = getattr(error, "templates", None) or [error.name]
        return TemplateError(
            f"template {', '.join(map(str, tried))} not found in the override folder or the built-in "
            f"templates ({BUILTIN_TEMPLATES})"
        )
    if isinstance(error, jinja2.TemplateSyntaxError):
        where = error.filename or error.name or name
        return TemplateError(f"{where}, line {error.lineno}: syntax error: {error.message}")
    where = _template_frame(error, name) or name
    if isinstance(error, jinja2.exceptions.SecurityError):
        return TemplateError(f"{where}: not allowed in a template: {error}")
    if isinstance(error, jinja2.UndefinedError):
        return TemplateError(f"{where}: undefined value: {error}")
    if isinstance(error, jinja2.TemplateError | TemplateError):
        return TemplateError(f"{where}: {error}")
    return TemplateError(f"{where}: {type(error).__name__}: {error}")


def _template_frame(error: BaseException, name: str) -> str | None:
    """The innermost template file and line in the traceback (Jinja2 rewrites frames to them).

    A template made from a string has no file: its frames say ``<template>``, and
    ``name`` (the config key it came from) is reported instead.
    """
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename.endswith(".j2") or frame.filename == "<template>":
            filename = name if frame.filename == "<template>" else frame.filename
            found = f"{filename}, line {frame.lineno}"
    return found
