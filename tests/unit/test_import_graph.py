"""Dependencies point one way: no import cycle between packages of `hotspare`, nor between files.

A cycle hides behind a lazy import inside a function or a `TYPE_CHECKING` block as easily as at the
top of a file, and it still couples both ends (issue 10), so every import statement counts,
wherever it sits. The graph is read from the source with `ast`, nothing is imported.

`from hotspare.store import layout` is an edge to the module `hotspare.store.layout` (what the
statement uses), not to the package's `__init__`; Python runs that `__init__` first, but does not
depend on what it defines. A package is `hotspare.<name>`; a module directly under `hotspare` is a
package of its own (`hotspare.wire`, `hotspare.timefmt`).
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import hotspare

SRC = Path(hotspare.__file__).resolve().parent.parent


@dataclass(frozen=True)
class ImportLine:
    """One import statement of one module, naming the module it makes this one depend on."""

    importer: str
    imported: str
    path: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"    {self.path.relative_to(SRC)}:{self.line}: {self.text}"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(root: Path = SRC) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "hotspare").rglob("*.py"))}


def _resolve(name: str, known: Iterable[str]) -> str | None:
    """The longest known module that `name` is or lies in (`a.b.Class` → `a.b`)."""
    modules = set(known)
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, source: str, known: Mapping[str, Path]) -> list[ImportLine]:
    """Every `hotspare` module this source imports, from any depth of its syntax tree."""
    lines = source.splitlines()
    is_package = path.name == "__init__.py"
    found: list[ImportLine] = []

    def add(node: ast.stmt, target: str) -> None:
        resolved = _resolve(target, known)
        if resolved is not None and resolved != module:
            text = " ".join(x.strip() for x in lines[node.lineno - 1:node.end_lineno])
            found.append(ImportLine(module, resolved, path, node.lineno, text))

    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(node, submodule if submodule in known else base)
    return found


def import_graph(root: Path = SRC) -> list[ImportLine]:
    known = all_modules(root)
    return [imp for name, path in known.items()
            for imp in imports_of(name, path, path.read_text(encoding="utf-8"), known)]


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def tangles(edges: Mapping[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
    return sorted(components, key=min)


def shortest_cycle(edges: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first node back to itself, inside the component."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges.get(node, ())):
            if nxt not in component:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle in strongly connected component {sorted(component)}")


def describe(edges: Mapping[str, set[str]],
             lines: Mapping[tuple[str, str], list[ImportLine]]) -> str:
    """Each tangle as one of its cycles, then every import between its members: all of them have
    to go (or turn around) for the tangle to come apart, not only those of the cycle shown."""
    out: list[str] = []
    for members in tangles(edges):
        out.append("cycle: " + " -> ".join(shortest_cycle(edges, members)))
        for a in sorted(members):
            for b in sorted(edges[a] & members):
                out.append(f"  {a} -> {b}:")
                statements = {(line.path, line.line): line for line in lines[(a, b)]}
                out.extend(str(statements[key]) for key in sorted(statements))
    return "\n".join(out)


def _check(*, by_package: bool) -> str:
    edges: dict[str, set[str]] = defaultdict(set)
    lines: dict[tuple[str, str], list[ImportLine]] = defaultdict(list)
    for imp in import_graph():
        a, b = imp.importer, imp.imported
        if by_package:
            a, b = package_of(a), package_of(b)
        if a != b:
            edges[a].add(b)
            lines[(a, b)].append(imp)
    return describe(edges, lines)


def test_no_cycle_between_packages() -> None:
    problems = _check(by_package=True)
    assert not problems, "import cycles between packages:\n" + problems


def test_no_cycle_between_files() -> None:
    problems = _check(by_package=False)
    assert not problems, "import cycles between files:\n" + problems


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Imports inside functions, under TYPE_CHECKING and relative ones all count; a name imported
    from a module is an edge to that module, a submodule imported from a package one to it."""
    package = tmp_path / "hotspare" / "pkg"
    package.mkdir(parents=True)
    for name in ("__init__", "a", "b", "c", "d"):
        (package / f"{name}.py").write_text("")
    (tmp_path / "hotspare" / "__init__.py").write_text("")
    source = (
        "from typing import TYPE_CHECKING\n"
        "from hotspare.pkg import b\n"
        "if TYPE_CHECKING:\n"
        "    from hotspare.pkg.c import Thing\n"
        "def later() -> None:\n"
        "    from . import d\n"
        "    import hotspare.pkg.a\n"
    )
    known = all_modules(tmp_path)
    found = imports_of("hotspare.pkg.a", package / "a.py", source, known)
    assert sorted(i.imported for i in found) == ["hotspare.pkg.b", "hotspare.pkg.c",
                                                 "hotspare.pkg.d"]
    edges = {"x": {"y"}, "y": {"z", "x"}, "z": {"x"}, "w": {"x"}}
    assert tangles(edges) == [{"x", "y", "z"}]
    assert shortest_cycle(edges, {"x", "y", "z"}) == ["x", "y", "x"]


def test_the_graph_covers_the_product() -> None:
    """A guard against a graph that silently reads nothing (a moved source folder, say)."""
    graph = import_graph()
    assert len(all_modules()) > 100 and len({i.importer for i in graph}) > 80
    edges = {(i.importer, i.imported) for i in graph}
    assert ("hotspare.api.app", "hotspare.web.ui") in edges, "create_app's lazy import unseen"
