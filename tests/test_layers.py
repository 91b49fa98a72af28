"""The layers hold: no import cycle, fronts go through the facade, stages never call a front.

The layers (issue 8, point 4):

* stages (the library): config, models, errors, text, sources, ingest, feeds, digests,
  ledger, mailer, subscriptions, store, the scheduler's triggers, runs, locks, status...
  A stage takes ``settings, store, clock`` explicitly and never imports the facade or a
  front;
* the facade: :mod:`publisher.app` (``Publisher``), one method per operation;
* fronts: the CLI, the daemon, the web app and the scheduler's runner. At runtime a
  front imports only the facade, the plain data modules (config, errors, models) and
  other fronts; imports under ``if TYPE_CHECKING:`` (annotations) are free.

Imports are read from the source with :mod:`ast`, so lazy ones (inside a function) and
type-only ones count as well: a cycle hidden in a function body still couples modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import publisher

PACKAGE_ROOT = Path(publisher.__file__).parent

FACADE = "publisher.app"
FRONTS = ("publisher.cli", "publisher.daemon", "publisher.scheduler.runner", "publisher.web")
FRONT_MAY_IMPORT = {"publisher", FACADE, "publisher.config", "publisher.errors", "publisher.models"}


@dataclass(frozen=True)
class Import:
    """One import of a package module by another, and where it stands."""

    source: str
    target: str
    line: int
    function: str | None  # the top-level function or class holding it; None at module level
    type_checking: bool

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" + (f" (in {self.function})" if self.function else "")
        return f"{where} imports {self.target}" + (" [TYPE_CHECKING]" if self.type_checking else "")


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name (a package by its own name)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module ``name`` loads: itself, or the longest known prefix (a symbol's module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> set[str]:
    if isinstance(node, ast.Import):
        found = {_resolve(alias.name, modules) for alias in node.names}
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = module if is_package else module.rpartition(".")[0]
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        # `from package import name` is the submodule when there is one, else the package.
        found = {
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _resolve(base, modules)
            for alias in node.names
        }
    return {t for t in found if t is not None and t != module}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def package_imports(root: Path = PACKAGE_ROOT) -> list[Import]:
    """Every import between the package's modules: module level, in functions, type-only."""
    modules = module_names(root)
    found: list[Import] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        found.extend(_walk(tree.body, module, path.name == "__init__.py", modules, None, False))
    return found


def _walk(
    nodes: list[ast.stmt],
    module: str,
    is_package: bool,
    modules: dict[str, Path],
    function: str | None,
    type_checking: bool,
) -> Iterator[Import]:
    """The imports in ``nodes`` and every block nested in them (functions, if, try, with...)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in sorted(_targets(node, module, is_package, modules)):
                yield Import(module, target, node.lineno, function, type_checking)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, module, is_package, modules, function, True)
            yield from _walk(node.orelse, module, is_package, modules, function, type_checking)
            continue
        inner = function
        if function is None and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            inner = node.name
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, field, None) or []:
                # except handlers and match cases are not statements but hold a body of them
                block = [child] if isinstance(child, ast.stmt) else getattr(child, "body", [])
                yield from _walk(block, module, is_package, modules, inner, type_checking)


def import_cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return cycles


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def is_front(module: str) -> bool:
    return _in(module, FRONTS)


def layer_violations(edges: list[Import]) -> list[Import]:
    """Fronts importing a stage at runtime; stages importing the facade or a front at all."""
    bad = []
    for e in edges:
        if is_front(e.source):
            if not e.type_checking and not (e.target in FRONT_MAY_IMPORT or is_front(e.target)):
                bad.append(e)
        elif e.source != FACADE and (e.target == FACADE or is_front(e.target)):
            bad.append(e)
    return bad


def test_no_import_cycle_between_publisher_modules() -> None:
    edges = package_imports()
    assert any(e.source == FACADE and e.target == "publisher.scheduler.runs" for e in edges)  # imports seen
    cycles = import_cycles(edges)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_fronts_call_the_facade_and_stages_never_call_a_front() -> None:
    violations = layer_violations(package_imports())
    assert not violations, "layer violations:\n" + "\n".join(map(str, violations))


def test_the_walker_sees_lazy_relative_type_only_imports_and_their_cycles(tmp_path: Path) -> None:
    """The two tests above can fail: a toy package with each kind of import is read right."""
    pkg = tmp_path / "publisher"
    (pkg / "web").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "app.py": "def f():\n    from publisher import ledger\n",
        "ledger.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .app import Publisher\n",
        "models.py": "",
        "store.py": "",
        "cli.py": "from publisher.models import X\n\ndef status():\n    from . import store\n",
        "web/__init__.py": "",
        "web/app.py": "from ..app import Publisher\nfrom publisher.web import static\n",
        "web/static.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    edges = package_imports(pkg)
    assert {(e.source, e.target, e.function, e.type_checking) for e in edges} == {
        ("publisher.app", "publisher.ledger", "f", False),
        ("publisher.ledger", "publisher.app", None, True),
        ("publisher.cli", "publisher.models", None, False),
        ("publisher.cli", "publisher.store", "status", False),
        ("publisher.web.app", "publisher.app", None, False),
        ("publisher.web.app", "publisher.web.static", None, False),
    }
    assert import_cycles(edges) == [["publisher.app", "publisher.ledger"]]
    assert {(v.source, v.target) for v in layer_violations(edges)} == {
        ("publisher.ledger", "publisher.app"),  # a stage importing the facade, even for types
        ("publisher.cli", "publisher.store"),  # a front importing a stage, even lazily
    }
