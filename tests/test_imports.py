"""The project's import graph, read with `ast` (no module is imported): every import of an `ecr_ray` module, at the
top of a file or inside a function, is an arrow. The graph has no cycle; no function imports a project module (a
lazy import hides an arrow); no module of the library imports a job or the serving layer but the jobs and the
serving layer themselves. Inside a function only third-party libraries may be imported (torch, transformers, Ray,
vLLM...: heavy, or an optional extra, where start-up time matters); the standard library goes at the top too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from ecr_ray.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "ecr_ray"
TOP_LAYERS = {
    "ecr_ray.jobs": ("ecr_ray.jobs",),  # `ecr-ray <name>`: nothing in the library imports a job
    "ecr_ray.serve": ("ecr_ray.serve", "ecr_ray.jobs"),  # the serving layer: deployed by the serve and demo jobs
}
"""Package → the packages/modules allowed to import it."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def targets(mod: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The project modules one import statement loads (a `from package import module` names the module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for name in names:
        while name and name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        if name.startswith("ecr_ray") and name in known:
            out.append(name)
    return out


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """module → the project modules it imports; and every import of a project or standard-library module inside a
    function or class."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    lazy = []
    for mod, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in tree.body}
        top |= {id(n) for n in tree.body if isinstance(n, ast.If) for n in n.body}  # `if TYPE_CHECKING:`
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found = targets(mod, path, node, known)
                edges[mod].update(t for t in found if t != mod)
                root = ((node.module or "") if isinstance(node, ast.ImportFrom) else node.names[0].name).split(".")[0]
                absolute = isinstance(node, ast.Import) or not node.level
                if (found or (absolute and root in sys.stdlib_module_names)) and id(node) not in top:
                    lazy.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return edges, lazy


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reads_every_kind_of_import():
    """The reader itself: relative, absolute, `from package import module`, and imports inside functions."""
    edges, _ = graph()
    assert "ecr_ray.config" in edges["ecr_ray.reply"]  # from .config import EMOTIONS
    assert "ecr_ray.reply" in edges["ecr_ray.generator.evaluate"]  # from .. import reply
    assert "ecr_ray.llm_server" in edges["ecr_ray.labelling.label"]  # from ..llm_server import start_local
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    edges, _ = graph()
    found = cycles(edges)
    assert not found, "import cycles (modules that import each other, directly or not): " + "; ".join(
        " ⇄ ".join(c) for c in found
    )


def test_project_and_standard_library_modules_are_imported_at_the_top_of_files():
    _, lazy = graph()
    assert not lazy, "project modules imported inside functions (move them to the top of the file):\n" + "\n".join(lazy)


def test_no_upward_arrows_into_the_jobs_or_the_serving_layer():
    edges, _ = graph()
    wrong = [
        f"{src} → {dst}"
        for src, dsts in edges.items()
        for dst in dsts
        for layer, allowed in TOP_LAYERS.items()
        if (dst == layer or dst.startswith(layer + "."))
        and not any(src == a or src.startswith(a + ".") for a in allowed)
    ]
    assert not wrong, "library modules importing a job or the serving layer: " + ", ".join(sorted(wrong))
