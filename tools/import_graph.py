"""Print the import graph of the first-party packages and fail on a cycle between modules or packages.

    python tools/import_graph.py                 # module graph, then "no cycle" or the cycles; exit 1 on a cycle
    python tools/import_graph.py --packages      # the same graph collapsed to packages (elements.partition, eval.study, ...)
    python tools/import_graph.py --private       # also list private names (``_x``) imported from another module

Every ``import`` counts, also the ones inside functions: a lazy import hides a cycle from the
interpreter but not from a reader. Importing ``a.b.c`` is an edge to ``a.b.c`` only (not to the
package ``a.b``), as in pydeps and import-linter, so a package ``__init__`` that re-exports its
submodules is not a cycle. Pure ``ast``; nothing is imported.

Two checks, both must pass: no cycle between modules, and no cycle between packages. For the
second, each module counts as part of its sub-package (``elements.decoders.pixel`` is
``elements.decoders``, ``eval.study.cli`` is ``eval.study``), while a module directly inside a
top-level package stays a node of its own (``elements.types``, ``elements.devices``): the top-level
package is the project, which every sub-package sits inside, not one component among them. So
``decoders`` importing ``partition`` while ``partition`` imports ``decoders`` fails, even when no
single module cycle results.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("elements", "eval")


def module_files(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """``{"elements.partition.cli": path, ...}`` for every ``.py`` file of the packages."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """Absolute module name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """(edges ``{module: {imported first-party modules}}``, private imports ``[(module, from, name)]``)."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:  # "from pkg import submodule"
                        targets.append(sub)
                    else:
                        targets.append(base)
                        if alias.name.startswith("_") and not alias.name.startswith("__") and base != module:
                            private.append((module, base, alias.name))
            for t in targets:
                while t and t not in modules:  # "import a.b.c" of a name inside a module: its module
                    t = t.rpartition(".")[0]
                if t and t != module:
                    edges[module].add(t)
    return edges, sorted(set(private))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def package_of(module: str, modules: dict[str, Path]) -> str:
    """The sub-package ``module`` belongs to (``elements.decoders``), or ``module`` itself when it sits
    directly in a top-level package (``elements.types``; the top-level ``__init__`` is ``elements``)."""
    folder = module.split(".") if modules[module].name == "__init__.py" else module.split(".")[:-1]
    return ".".join(folder[:2]) if len(folder) >= 2 else module


def collapse(edges: dict[str, set[str]], modules: dict[str, Path]) -> dict[str, set[str]]:
    """The graph between packages (see :func:`package_of`); edges inside one package are dropped."""

    def package(m: str) -> str:
        return package_of(m, modules)

    out: dict[str, set[str]] = {}
    for m, targets in edges.items():
        out.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--packages", action="store_true", help="print the graph collapsed to packages")
    p.add_argument("--private", action="store_true", help="also list private names imported from other modules")
    args = p.parse_args(argv)
    modules = module_files()
    edges, private = imports(modules)
    shown = collapse(edges, modules) if args.packages else edges
    for m in sorted(shown):
        print(f"{m} -> {', '.join(sorted(shown[m])) or '(nothing)'}")
    if args.private:
        for module, base, name in private:
            print(f"private import: {module} imports {name} from {base}")
    packages = collapse(edges, modules)
    found = cycles(edges)
    found_packages = cycles(packages)
    for c in found:
        print("cycle: " + " <-> ".join(c), file=sys.stderr)
    for c in found_packages:
        print("package cycle: " + " <-> ".join(c), file=sys.stderr)
    print(
        f"{len(found)} module cycles among {len(modules)} modules, "
        f"{len(found_packages)} package cycles among {len(packages)} packages and top-level modules",
        file=sys.stderr,
    )
    if found or found_packages:
        return 1
    print("no cycle", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
