"""Items written by hand: a folder of Markdown files with YAML front matter.

This is how the sample content ships and how an editor without a CMS publishes. One
broken file must not hide the others, so a file that cannot be read becomes an
:class:`ItemError` naming it, and the rest of the folder is still read.
"""

from __future__ import annotations

import re
import stat
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from publisher.config import DirectorySourceConfig
from publisher.errors import ItemError, SourceError
from publisher.models import RawItem, SourceResult

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?(.*)\Z", re.DOTALL | re.MULTILINE)


def read_directory(cfg: DirectorySourceConfig) -> SourceResult:
    """Read every ``*.md`` below ``cfg.path`` in sorted order, skipping hidden files and folders."""
    folder = cfg.path
    if not folder.is_dir():
        raise SourceError(cfg.name, f"{folder}: no such folder; create it or fix 'path'")
    result = SourceResult()
    for path in sorted(folder.rglob("*.md")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # editor backups, .git and the like are not items
        try:
            result.items.append(read_file(cfg, path))
        except ItemError as e:
            result.errors.append(e)
    return result


def read_file(cfg: DirectorySourceConfig, path: Path) -> RawItem:
    """One Markdown file as a RawItem; raise ItemError naming the file if it is unusable."""
    where = str(path)
    data = _bounded_read(cfg, path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ItemError(where, f"not UTF-8 text (byte {e.start}); save the file as UTF-8") from e
    # As text mode read it: Windows and old Mac line ends become "\n".
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta, body = split_front_matter(where, text)
    item = RawItem(
        source=cfg.name,
        origin=where,
        published=_date_value(meta.get("date")),
        updated=_date_value(meta.get("updated")),
        label=_text(meta.get("category")) or cfg.category,
        content=body.strip(),
        content_type="markdown",
        title=_text(meta.get("title")),
        summary=_text(meta.get("summary")),
        link=_text(meta.get("link")),
        id=_text(meta.get("id")),
        language=_text(meta.get("language")),
    )
    _read_media(meta, item)
    return item


def _bounded_read(cfg: DirectorySourceConfig, path: Path) -> bytes:
    """The file's bytes, at most ``max_bytes``: a bigger file is refused, not read.

    ``max_bytes`` is what bounds a run's memory and the feeds' size; a 30 MB file
    would otherwise be read, rendered and written into every feed. The size is checked
    before opening (a FIFO or device named ``*.md`` is refused too: opening one can
    block for ever) and the read itself stops past the limit (a file still growing).
    """
    where = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ItemError(where, "not a regular file; remove it or rename it to something other than *.md")
        if info.st_size > cfg.max_bytes:
            raise ItemError(where, _too_big(cfg, f"{info.st_size} bytes"))
        with path.open("rb") as f:
            data = f.read(cfg.max_bytes + 1)
    except OSError as e:
        raise ItemError(where, f"cannot read: {e.strerror}") from e
    if len(data) > cfg.max_bytes:
        raise ItemError(where, _too_big(cfg, f"over {cfg.max_bytes} bytes"))
    return data


def _too_big(cfg: DirectorySourceConfig, size: str) -> str:
    limit = cfg.max_bytes
    return (
        f"the file is {size}, larger than max_bytes = {limit} bytes ({limit / 1024**2:.3g} MiB) "
        f"of source {cfg.name!r}; shorten it, or raise max_bytes of this source in config.toml"
    )


def _read_media(meta: dict[str, Any], item: RawItem) -> None:
    """``image: URL`` or ``image: {url, alt, width, height}``; ``enclosure: {url, type, length}``.

    A wrong shape is noted on the item (ingest warns and keeps the item without it).
    """
    image = meta.get("image")
    if isinstance(image, dict):
        item.image = _text(image.get("url"))
        item.image_alt = _text(image.get("alt"))
        item.image_width, item.image_height = _size(image.get("width")), _size(image.get("height"))
        if item.image is None:
            item.problems.append("image has no 'url:': write 'image: {url: https://..., alt: ...}'")
    elif isinstance(image, list):
        item.problems.append("image must be one URL or a mapping {url, alt, width, height}, not a list")
    else:
        item.image = _text(image)
    if "image_alt" in meta:
        item.image_alt = _text(meta.get("image_alt"))
    enclosure = meta.get("enclosure")
    if enclosure is None:
        return
    if not isinstance(enclosure, dict):
        item.problems.append(
            "enclosure dropped: write it as a mapping, e.g. "
            "'enclosure: {url: https://.../video.mp4, type: video/mp4, length: 1234567}'"
        )
        return
    item.enclosure_url = _text(enclosure.get("url"))
    item.enclosure_type = _text(enclosure.get("type"))
    item.enclosure_length = _size(enclosure.get("length"))
    if item.enclosure_url is None:
        item.problems.append("enclosure dropped: it has no 'url:'")


def _size(value: Any) -> int | str | None:
    """Whole numbers as YAML reads them; anything else as text for ingest to refuse."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _text(value)


def split_front_matter(where: str, text: str) -> tuple[dict[str, Any], str]:
    """Separate the YAML header from the Markdown body."""
    match = _FRONT_MATTER.match(text)
    if not match:
        raise ItemError(
            where, "no front matter: start the file with a '---' line, the YAML keys, then another '---' line"
        )
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        raise ItemError(where, f"front matter is not valid YAML: {_yaml_problem(e)}") from e
    except ValueError as e:  # e.g. "date: 2020-13-45" matches YAML's timestamp pattern
        raise ItemError(where, f"front matter has an impossible value: {e}") from e
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ItemError(where, "front matter must be 'key: value' lines, e.g. 'title: My news'")
    return meta, match.group(2)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    # The mark counts lines of the front matter from 0; the file has the '---' line first.
    return f"{problem} (line {mark.line + 2})" if mark is not None else str(problem)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _date_value(value: Any) -> datetime | str | None:
    """YAML reads ``2020-07-15`` as a date; ingest wants a datetime (midnight, site zone)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return _text(value)
