#!/usr/bin/env python3
"""The import drawing's numbers for chatd/ and plugins/: files, arrows, floors, arrows back up, circles.

    python scripts/import_graph.py            # the numbers
    python scripts/import_graph.py --list     # and every arrow back up and every circle, by name

An arrow is one module importing another (each pair counted once), wherever the import sits: a lazy import inside a
function still runs, so it still ties the two modules together. Imports under ``if TYPE_CHECKING:`` never run and are
left out. An arrow *back up* goes from a module to one on a higher layer of the import-linter contract in
pyproject.toml (a module's layer is its longest matching prefix); ``lint-imports`` checks the same layers. A circle is
a set of modules that import each other round (a strongly connected component of more than one module). Floors are
the levels of the drawing once each circle is taken as one box: the longest chain of arrows, plus one.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chatd", "plugins")


def declared_layers() -> list[tuple[str, ...]]:
    """The layers of pyproject.toml's import-linter contract, lowest first, below them the ``chatd`` package itself
    (it holds only the version). A name covers the module and everything under it, except ``chatd``, which covers
    only its own ``__init__``, so a new module must be given a layer."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    # The package-wide contract; one with ``containers`` layers a package's own modules, inside one of these layers.
    (contract,) = (c for c in contracts if c["type"] == "layers" and "containers" not in c)
    layers = [tuple(name.strip() for name in re.split(r"[:|]", layer)) for layer in reversed(contract["layers"])]
    return [("chatd",), *layers]


def modules() -> dict[str, Path]:
    """Every module under PACKAGES by dotted name (a package by its own name, for its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str, is_package: bool) -> Iterable[str]:
    """Dotted names a module imports: ``from a import b`` gives ``a.b``, which is module ``a.b`` if that exists and
    otherwise the name ``b`` in module ``a`` (the caller takes the deepest module a name reaches)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".") if is_package else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def graph() -> dict[str, set[str]]:
    """Each module's arrows to other modules of PACKAGES."""
    found = modules()
    arrows: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target in _imports(tree, name, path.name == "__init__.py"):
            while target and target not in found:
                target = target.rpartition(".")[0]
            if target and target != name:
                arrows[name].add(target)
    return arrows


def layer_of(module: str, layers: list[tuple[str, ...]]) -> int:
    best, index = -1, -1
    for i, prefixes in enumerate(layers):
        for prefix in prefixes:
            covers = module == prefix or (prefix != "chatd" and module.startswith(prefix + "."))
            if covers and len(prefix) > best:
                best, index = len(prefix), i
    if index < 0:
        raise SystemExit(f"{module} is on no layer: add it to [tool.importlinter]'s layers in pyproject.toml")
    return index


def circles(arrows: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(arrows):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(arrows[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(iter(children), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(arrows[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def floors(arrows: dict[str, set[str]], loops: list[list[str]]) -> int:
    """Levels of the drawing with each circle as one box: a module that imports nothing is on floor 1."""
    box = {m: m for m in arrows}
    for loop in loops:
        for member in loop:
            box[member] = loop[0]
    edges: dict[str, set[str]] = {b: set() for b in box.values()}
    for source, targets in arrows.items():
        edges[box[source]].update(box[t] for t in targets if box[t] != box[source])
    height: dict[str, int] = {}

    def level(b: str) -> int:
        if b not in height:
            height[b] = 1 + max((level(t) for t in edges[b]), default=0)
        return height[b]

    sys.setrecursionlimit(10_000)
    return max((level(b) for b in edges), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="name every arrow back up and every circle")
    args = parser.parse_args()
    arrows = graph()
    layers = declared_layers()
    climbs = sorted((s, t) for s, ts in arrows.items() for t in ts if layer_of(t, layers) > layer_of(s, layers))
    loops = circles(arrows)
    print(f"files: {len(arrows)}")
    print(f"arrows: {sum(len(t) for t in arrows.values())}")
    print(f"floors: {floors(arrows, loops)}")
    print(f"arrows back up: {len(climbs)}")
    print(f"circles: {len(loops)}")
    if args.list:
        for source, target in climbs:
            print(f"  up: {source} -> {target}")
        for loop in loops:
            print(f"  circle: {' <-> '.join(loop)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
