"""Jinja2's sandbox with bounds on what one render may make and how long it may loop.

Why: an admin can override any template, and Jinja2's :class:`SandboxedEnvironment`
keeps a template away from Python internals but not from the machine's memory or
time. ``{{ 'x' * 10**9 }}`` grew a sender past 5 GB; ``{{ '%s' % 'a' * 100000000 }}``
built 100 MB mails that every relay refused; two nested ``range(99999)`` loops made
``publisher check`` and ``digest send`` hang. Each of these now stops with a
:class:`~jinja2.sandbox.SecurityError` saying which limit was reached, which
:mod:`publisher.templating` turns into a TemplateError naming the file and line.

The limits, far above what a digest or a page needs (a digest's HTML is about 30 KB):

* :data:`MAX_VALUE`: no text or list a template makes (``*``, ``+``, ``%``,
  ``~``, a filter, a method such as ``ljust`` or ``format``) may hold more than a
  million characters or elements. Growing operations are refused *before* they
  run, from the sizes of what they combine, so the memory is never taken.
* :data:`MAX_OUTPUT`: one render writes at most ten million characters.
* :data:`MAX_STEPS`: one render runs at most a million loop iterations, counting
  the numbers every ``range()`` makes, so nested loops share one budget instead of
  each ``range()`` being capped on its own as Jinja2 does.
* :data:`MAX_SECONDS`: a render still running after 10 seconds is stopped; a backstop
  for work made of many small steps (each call, filter, operator and loop step looks
  at the clock), since no legitimate template comes near it.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_VALUE = 1_000_000  # characters of a text, elements of a list, a template may make
MAX_OUTPUT = 10_000_000  # characters one render may write
MAX_STEPS = 1_000_000  # loop iterations and range() numbers per render
MAX_SECONDS = 10.0  # wall-clock time of one render
MAX_INT_BITS = 100_000  # an integer of about 30,000 digits; Python prints at most 4,300

_SEQUENCES = (str, bytes, bytearray, list, tuple)
_WIDTHS = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


@dataclass
class _Render:
    """What one render has spent: loop steps and range() numbers, and its deadline."""

    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    steps: int = 0


_CURRENT: contextvars.ContextVar[_Render | None] = contextvars.ContextVar("publisher_render", default=None)


def _refuse(message: str) -> SecurityError:
    return SecurityError(f"{message} (templates are bounded; see 'Security notes' in the README)")


def _tick(steps: int = 0) -> None:
    """Spend ``steps`` of the render's budget and look at its clock."""
    render = _CURRENT.get()
    if render is None:  # a template used outside render() (e.g. a macro module): per-call limits only
        return
    render.steps += steps
    if render.steps > MAX_STEPS:
        raise _refuse(f"the template loops more than {MAX_STEPS:,} times in one render")
    if time.monotonic() > render.deadline:
        raise _refuse(f"the template ran for more than {MAX_SECONDS:g} seconds")


def measure(value: Any, limit: int = MAX_VALUE) -> int:
    """The size of ``value`` (characters, elements, nested ones counted), stopping past ``limit``.

    Containers are walked because one list can hold the same big text a million times
    in little memory, and printing it would not be little. The walk stops as soon as the
    count passes ``limit``, so measuring never costs more than the limit, even for a
    list that holds itself.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1
            stack.extend(item)
        elif isinstance(item, dict):
            total += 1
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += 1
        if total > limit:
            return total
    return total


def check_size(value: Any, what: str = "a value") -> Any:
    """Refuse ``value`` when it is over :data:`MAX_VALUE`; return it unchanged."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise _refuse(f"the template makes a number of more than {MAX_INT_BITS:,} bits")
    size = measure(value)
    if size > MAX_VALUE:
        raise _refuse(f"the template makes {what} over {MAX_VALUE:,} characters or list items long")
    return value


def _grow(estimate: int, what: str) -> None:
    if estimate > MAX_VALUE:
        raise _refuse(
            f"the template would make {what} {estimate:,} characters or list items long; "
            f"the limit is {MAX_VALUE:,}"
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- operators ---------------------------------------------------------------------


def _check_binop(op: str, left: Any, right: Any) -> None:
    if op == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(count, int):
                _grow(measure(seq) * max(count, 0), "a text or list")
        if isinstance(left, int) and isinstance(right, int):
            _bits(left.bit_length() + right.bit_length())
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            _bits(max(left.bit_length(), 1) * right)
    elif op == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _grow(measure(left) + measure(right), "a text or list")
    elif op == "%" and isinstance(left, str | bytes):
        _check_percent(left, right)


def _bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _refuse(f"the template makes a number of about {bits:,} bits; the limit is {MAX_INT_BITS:,}")


def _check_percent(template: str | bytes, args: Any) -> None:
    """``'%9999999s' % x``: refuse widths and precisions that would make a huge text."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    values = list(args) if isinstance(args, tuple) else [args]
    estimate = len(text) + sum(measure(v) for v in values)
    for match in _PERCENT_SPEC.finditer(text):
        for number in match.groups():
            if number == "*":
                estimate += sum(_int(v) for v in values)
            elif number:
                estimate += int(number)
    _grow(estimate, "a formatted text")


def _check_format(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``'{:>999999999}'.format(x)``: refuse format widths that would make a huge text."""
    estimate = len(template) + sum(measure(v) for v in itertools.chain(args, kwargs.values()))
    try:
        fields = list(Formatter().parse(template))
    except ValueError:
        return  # str.format raises the same error itself
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        if "{" in spec:  # a width taken from the arguments: count the numbers there
            estimate += sum(_int(v) for v in itertools.chain(args, kwargs.values()))
        estimate += sum(int(n) for n in _WIDTHS.findall(spec))
    _grow(estimate, "a formatted text")


# -- methods -----------------------------------------------------------------------


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _materialised(values: Any) -> Any:
    """An iterable without a length as a list, read no further than the limit."""
    if hasattr(values, "__len__"):
        return values
    taken = list(itertools.islice(values, MAX_VALUE + 1))
    _grow(len(taken), "a list")
    return taken


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    """The length of ``text.replace(old, new, count)``, without making it."""
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes) or type(old) is not type(new):
        return len(text)
    try:
        found = int(text.count(old))
    except TypeError:  # str and bytes mixed: replace() raises the same
        return len(text)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _bounded_method(obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a method call of a text or a list before it runs; the arguments to pass on."""
    if isinstance(obj, str | bytes | bytearray):
        if name in ("center", "ljust", "rjust", "zfill"):
            _grow(max(len(obj), _int(_arg(args, kwargs, 0, "width", 0))), "a padded text")
        elif name == "expandtabs":
            tabsize = _int(_arg(args, kwargs, 0, "tabsize", 8))
            tabs = obj.count("\t") if isinstance(obj, str) else obj.count(b"\t")
            _grow(len(obj) + tabs * tabsize, "a text")
        elif name == "replace":
            _grow(
                _replaced_size(
                    obj,
                    _arg(args, kwargs, 0, "old", ""),
                    _arg(args, kwargs, 1, "new", ""),
                    _arg(args, kwargs, 2, "count", -1),
                ),
                "a text",
            )
        elif name == "join" and args:
            parts = _materialised(args[0])
            _grow(measure(parts) + len(obj) * len(parts), "a joined text")
            args = (parts, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((measure(v) for v in args[0].values()), default=1)
            _grow(len(obj) * max(longest, 1), "a translated text")
    elif isinstance(obj, list | set | dict) and name in ("append", "insert", "add", "extend", "update"):
        added = args[-1] if args else kwargs
        if name in ("extend", "update") and args:
            added = _materialised(added)
            args = (added, *args[1:])
            count = len(added)
        else:
            count = 1
            check_size(added)
        _grow(len(obj) + count, "a list")
    return args


# -- filters -----------------------------------------------------------------------


def _check_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Filters whose result can be far bigger than what they are given."""
    value = args[0] if args else ""
    if name == "center":
        _grow(max(measure(value), _int(_arg(args, kwargs, 1, "width", 80))), "a centred text")
    elif name == "indent":
        width = _arg(args, kwargs, 1, "width", 4)
        per_line = len(width) if isinstance(width, str) else _int(width)
        lines = str(value).count("\n") + 1 if isinstance(value, str) else 1
        _grow(measure(value) + lines * per_line, "an indented text")
    elif name == "wordwrap":
        wrap = _arg(args, kwargs, 3, "wrapstring", None)
        _grow(measure(value) * (1 + (len(wrap) if isinstance(wrap, str) else 1)), "a wrapped text")
    elif name == "format" and isinstance(value, str):
        _check_percent(value, kwargs or tuple(args[1:]))
    elif name == "replace" and isinstance(value, str):
        _grow(
            _replaced_size(
                value,
                _arg(args, kwargs, 1, "old", ""),
                _arg(args, kwargs, 2, "new", ""),
                _arg(args, kwargs, 3, "count", None),
            ),
            "a text",
        )
    elif name == "join" and hasattr(value, "__len__"):
        _grow(measure(value) + len(str(_arg(args, kwargs, 1, "d", ""))) * len(value), "a joined text")
    elif name in ("batch", "slice"):
        count = _arg(args, kwargs, 1, "linecount" if name == "batch" else "slices", 0)
        _grow(max(measure(value), _int(count)), "a list")


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its arguments and result held to :data:`MAX_VALUE`.

    The arguments are measured too: printing or joining a list that holds one text a
    million times is where the memory would go.
    """
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context or environment comes first

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        given = args[skip:]
        for value in itertools.chain(given, kwargs.values()):
            check_size(value)
        _check_filter(name, given, kwargs)
        result = func(*args, **kwargs)
        return result if isinstance(result, Iterator) else check_size(result, f"a value (filter {name})")

    return bounded


def _loop(values: Any) -> Any:
    """What a ``{% for %}`` walks: a sized sequence is charged at once, anything else per step."""
    if hasattr(values, "__len__"):
        _tick(len(values))
        return values
    return _counted(values)


def _counted(values: Iterable[Any]) -> Iterator[Any]:
    for value in values:
        _tick(1)
        yield value


def _range(*args: int) -> range:
    """``range()`` drawing on the render's budget, so nested loops cannot multiply it."""
    numbers = range(*args)
    if len(numbers) > MAX_STEPS:
        raise _refuse(f"range() of {len(numbers):,} numbers; the limit is {MAX_STEPS:,}")
    _tick(len(numbers))
    return numbers


class _Bound(jinja2.visitor.NodeTransformer):
    """Route loops, ``~`` and literals through the checks (applied to every compiled template)."""

    def __init__(self, environment: jinja2.Environment) -> None:
        self.environment = environment

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._filter(node.iter, "_publisher_loop")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [self._filter(n, "_publisher_size") for n in node.nodes]
        return self._filter(node, "_publisher_size")

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, "_publisher_size")

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, "_publisher_size")

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(node, "_publisher_size") if node.ctx == "load" else node

    def _filter(self, node: nodes.Node, name: str) -> nodes.Expr:
        wrapped = nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
        wrapped.set_environment(self.environment)
        return wrapped


class BoundedTemplate(jinja2.Template):
    """A template whose render has a budget (steps, time) and a cap on what it writes."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        ctx = self.new_context(dict(*args, **kwargs))
        token = _CURRENT.set(_Render())
        try:
            parts: list[str] = []
            size = 0
            for part in self.root_render_func(ctx):
                size += len(part)
                if size > MAX_OUTPUT:
                    raise _refuse(f"the template writes more than {MAX_OUTPUT:,} characters")
                parts.append(part)
            return "".join(parts)
        except Exception:
            self.environment.handle_exception()
        finally:
            _CURRENT.reset(token)


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox every publisher template runs in; see the module's docstring for the limits."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    template_class = BoundedTemplate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _range
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}
        self.filters["_publisher_loop"] = _loop
        self.filters["_publisher_size"] = check_size
        self.finalize = self._finalize

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Register a filter of the publisher's own, bounded like the built-in ones."""
        self.filters[name] = _bounded_filter(name, func)

    @staticmethod
    def _finalize(value: Any) -> Any:
        """Every ``{{ }}`` is measured before it is turned into text."""
        return check_size(value)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_binop(operator, left, right)
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if owner is not None and not isinstance(owner, type):
            args = _bounded_method(owner, name, args, kwargs)
        return check_size(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``format_map``, with their widths checked before they run."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__
        is_map = value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            _tick()
            mapping = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            _check_format(template, () if is_map else args, mapping)
            return wrapped(*args, **kwargs)

        return bounded

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        """Compile with loops, ``~`` and literals routed through the checks.

        Done here rather than in ``_parse``, so :meth:`parse` still gives the template
        as written (:mod:`publisher.personal` reads it).
        """
        bounded = _Bound(self).visit(source)
        return super()._generate(bounded, name, filename, defer_init=defer_init)
