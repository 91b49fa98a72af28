"""Whether a digest template only prints a recipient's values, or also reasons about them.

Why: :func:`publisher.messages.render_issue` renders an issue once, with placeholders
where the recipient's name, address, greeting and links go, and puts each recipient's
values in by substitution. That is only right when a template prints those values as
they are. ``{% if subscriber.name %}Dear {{ subscriber.name }},{% else %}Dear
reader,{% endif %}`` sees the placeholder, which is never empty, and a nameless reader
got "Dear ,"; ``subscriber.name|length``, ``subscriber.name[0]`` and
``subscriber.name == 'Ana'`` all acted on the placeholder. Such a template must be
rendered for each recipient (slower, but correct), and this module tells which.

It reads the templates as written (:meth:`jinja2.Environment.parse`), following
``extends``, ``include`` and ``import``. A personal value counts as only printed when
it is the whole of a ``{{ }}``: ``{{ subscriber.name }}``, ``{{ subscriber.email }}``,
``{{ greeting }}``, ``{{ unsubscribe_url }}``, ``{{ preferences_url }}``, outside a
macro, a ``{% set %}`` block, a ``{% filter %}`` block and a ``{% call %}``, whose
text a template can go on to test. Any other mention of those names — a test, a
filter, a comparison, an assignment, a loop variable of that name — and any
``self.block()``, ``super()`` or ``caller()`` used other than printed (their text
may hold the values), or a template chosen at render time, means "per recipient".
"""

from __future__ import annotations

import functools

import jinja2
import jinja2.meta
from jinja2 import nodes

PERSONAL_FIELDS = frozenset({"name", "email"})  # of ``subscriber``
PERSONAL_NAMES = frozenset({"subscriber", "greeting", "unsubscribe_url", "preferences_url"})
# Their text can hold personal values: printed whole, fine; used otherwise, not.
_TEXT_OF_BLOCKS = frozenset({"self", "super", "caller"})
_WATCHED = PERSONAL_NAMES | _TEXT_OF_BLOCKS
# Inside these, a {{ }} makes a value the template can test, not output.
_CAPTURING = (nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock)


def personal_logic(env: jinja2.Environment, names: list[str]) -> str | None:
    """Where the first of ``names`` (or a template they use) does more than print a personal value.

    None when every personal value is only printed, so one render with placeholders
    serves every recipient. Otherwise a line for the log, such as
    ``email/digest.txt.j2, line 3: 'subscriber' is used in logic``.
    """
    if env.loader is None:
        return None
    seen: set[str] = set()
    queue = list(names)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        source, filename, _uptodate = env.loader.get_source(env, name)
        finding, references = _findings(env, name, source, filename)
        if finding is not None:
            return finding
        queue.extend(references)
    return None


@functools.lru_cache(maxsize=128)
def _findings(
    env: jinja2.Environment, name: str, source: str, filename: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """One template's own finding and the templates it refers to; cached by its source."""
    tree = env.parse(source, name, filename)
    references: list[str] = []
    for reference in jinja2.meta.find_referenced_templates(tree):
        if reference is None:
            return f"{name}: uses a template chosen at render time", ()
        references.append(reference)
    node = _first_use(tree, printing=True)
    if node is None:
        return None, tuple(references)
    assert isinstance(node, nodes.Name)
    return f"{name}, line {node.lineno}: {node.name!r} is used in logic, not only printed", ()


def _first_use(node: nodes.Node, *, printing: bool) -> nodes.Node | None:
    """The first watched name under ``node`` that is not a value printed whole."""
    if isinstance(node, _CAPTURING):
        printing = False
    if isinstance(node, nodes.Output) and printing:
        for printed in node.nodes:
            if _printed_whole(printed):
                continue
            found = _first_use(printed, printing=printing)
            if found is not None:
                return found
        return None
    if isinstance(node, nodes.Name) and node.name in _WATCHED:
        return node
    for child in node.iter_child_nodes():
        found = _first_use(child, printing=printing)
        if found is not None:
            return found
    return None


def _printed_whole(node: nodes.Node) -> bool:
    """``{{ subscriber.name }}``, ``{{ subscriber['email'] }}``, ``{{ greeting }}``, ``{{ super() }}`` ..."""
    if isinstance(node, nodes.Name):
        return node.name in PERSONAL_NAMES - {"subscriber"}
    if isinstance(node, nodes.Getattr):
        return _is_name(node.node, "subscriber") and node.attr in PERSONAL_FIELDS
    if isinstance(node, nodes.Getitem):
        key = node.arg
        return (
            _is_name(node.node, "subscriber")
            and isinstance(key, nodes.Const)
            and key.value in PERSONAL_FIELDS
        )
    if isinstance(node, nodes.Call) and not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs):
        target = node.node
        if isinstance(target, nodes.Getattr):  # self.intro()
            return _is_name(target.node, "self")
        return _is_name(target, "super")
    return False


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name
