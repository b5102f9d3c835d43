"""The package's import graph: no cycle between modules, and the layers point one way.

``cli`` -> engine (predict, training, bench, ...) -> ``ghn``, ``graph``, ``hub``, ``io``. Read from the
source with ``ast`` (imports inside functions count too: a lazy import is still a dependency;
imports under ``if TYPE_CHECKING:`` do not: they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "ghnctl"

# package (first component below ghnctl) -> packages it must never import
FORBIDDEN = {
    "ghn": {"hub", "cli", "training", "bench", "loader", "predict", "inits"},
    "graph": {"hub", "cli", "training", "bench", "ghn", "loader", "predict", "inits"},
    "hub": {"cli", "training", "bench", "predict", "inits"},
    "io": {"cli", "training", "ghn", "graph", "hub"},
    "errors": {"cli", "training", "ghn", "graph", "hub", "io"},
    "training": {"cli"},
    "predict": {"cli", "training", "hub"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the ghnctl modules ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ghnctl"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("ghnctl"):
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # may name submodules
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        edges[name] = {t for t in _imports(path) if t in files and t != name}
    return edges


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_layer_imports_one_above_it() -> None:
    wrong = [
        f"{source} imports {target}"
        for source, targets in _graph().items()
        for target in targets
        if _layer(target) in FORBIDDEN.get(_layer(source), set())
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules() -> None:
    edges = _graph()
    # A package __init__ re-exporting its own submodules is not a cycle of the design.
    edges = {s: {t for t in ts if not (s != "ghnctl" and t.startswith(s + "."))
                 and not (t != "ghnctl" and s.startswith(t + ".") and t in _packages(edges))}
             for s, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _packages(edges: dict[str, set[str]]) -> set[str]:
    return {name for name in edges if (SRC.parent / name.replace(".", "/") / "__init__.py").is_file()}


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    edges = _graph()
    assert "ghnctl.ghn.decoding" in edges["ghnctl.ghn.model"]  # imported inside a method
    assert "ghnctl.ghn.assign" in edges["ghnctl.ghn.decoding"]  # a relative import
    assert "ghnctl.hub" in edges["ghnctl.loader"]
