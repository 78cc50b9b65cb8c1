"""The dependency rule of src/monarch, checked over its import graph (docs/architecture.md).

Every import counts, at module level or inside a function, including those only for type
checking: a layer may import from its own layer and the layers below it, never from above,
and no group of modules may import each other in a circle. A module may not import another
module's private (underscore) names. Run by the test command; exit status 1 on any finding.

    python scripts/check_layers.py            # check; print findings
    python scripts/check_layers.py --stats    # also print the counts (for the closing note)
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"

LAYERS: list[tuple[str, list[str]]] = [
    # (layer, module prefixes), top first; a module belongs to its longest matching prefix
    ("testing", ["monarch.testing"]),  # the pytest plugin for users' suites, over the api
    ("cli", ["monarch.cli", "monarch.__main__"]),
    ("api", ["monarch", "monarch.api"]),
    ("features", ["monarch.migrations", "monarch.backups", "monarch.project", "monarch.safety",
                  "monarch.rehearsal"]),
    ("parts", ["monarch.engines", "monarch.stores", "monarch.archive", "monarch.querysets"]),
    ("base", ["monarch.config", "monarch.engines.registry", "monarch.progress", "monarch.io",
              "monarch.secrets", "monarch.errors", "monarch.retry", "monarch.sizes",
              "monarch.history", "monarch.accounting", "monarch._version", "monarch.types",
              "monarch.legacy", "monarch.text"]),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    best, length = "", -1
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import of a monarch module."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("monarch"):
                    found.append((alias.name, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if not base.startswith("monarch"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:  # `from monarch.x import y` where y is a module
                    found.append((sub, "", node.lineno))
                else:
                    found.append((base, alias.name, node.lineno))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    paths = sorted(ROOT.joinpath("monarch").rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    known = set(modules)
    graph: dict[str, set[str]] = defaultdict(set)
    upward: list[str] = []
    private: list[str] = []
    unplaced = sorted(m for m in known if not layer_of(m))
    for module, path in modules.items():
        for imported, name, line in imports_of(path, module, known):
            target = imported if imported in known else imported.rpartition(".")[0] or imported
            if target == module or target not in known:
                continue
            if not module.startswith(target + "."):  # a package's own __init__ is no edge
                graph[module].add(target)
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if RANK.get(layer_of(target), 0) < RANK.get(layer_of(module), 0) and \
                    not module.startswith(target + "."):
                upward.append(f"{where}: {module} ({layer_of(module)}) imports {target} "
                              f"({layer_of(target)}), a layer above it")
            if name.startswith("_") and not name.startswith("__"):
                private.append(f"{where}: {module} imports private name {name} of {target}")
            elif _private_module(target) and not _inside(
                    module, _private_module(target).rpartition(".")[0]):
                private.append(f"{where}: {module} imports {target}, private to its package")
    circles = cycles(graph)
    for line in unplaced:
        print(f"module {line} belongs to no layer: add it to LAYERS in scripts/check_layers.py")
    upward = sorted(set(upward))
    private = sorted(set(private))
    for line in [*upward, *private]:
        print(line)
    for circle in circles:
        print("import circle: " + " -> ".join(circle))
    if "--stats" in argv:
        print(f"modules: {len(known)}; import circles: {len(circles)} "
              f"(modules in them: {sum(len(c) for c in circles)}); upward imports: "
              f"{len(upward)}; private-name imports: {len(private)}")
    return 1 if (circles or upward or private or unplaced) else 0


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _private_module(module: str) -> str:
    """The private module (``monarch.engines.mongo._swap``) ``module`` is or lies in, or "".
    Its package's own modules may import it; nothing outside may."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[: i + 1])
    return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
