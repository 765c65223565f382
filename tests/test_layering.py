"""The package's layers (docs/architecture.md): no import circle among edgekit's modules, and no
import that goes up the layer order. Every import counts, the ones inside functions too.

A module may import modules of its own package (``edgekit.data.coco`` -> ``edgekit.data.dataset``)
and modules of packages in lower layers; never a package of its own layer nor one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgekit

PACKAGE = Path(edgekit.__file__).resolve().parent

#: Lowest first; the packages of a layer do not import each other. Keep in step with the layer
#: picture in docs/architecture.md.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("edgekit", "errors", "core"),  # types, geometry, the flatbuffer reader: numpy / stdlib
    ("data", "runtime"),  # datasets and images; a .tflite model run on a frame
    ("io",),  # sources, sinks, the overlay, the systemd watchdog
    ("loop", "serve", "zoo"),  # the real-time loop; the live preview; Keras definitions
    ("app", "eval"),  # the camera app; a model scored on a dataset
    ("deploy", "export", "train"),  # bundles and flashing; .tflite export; training
    ("bench", "describe"),  # latency here and over SSH; edgekit info
    ("compress",),  # the compress recipes
    ("cli",),  # the command line
    ("__main__",),  # python -m edgekit
)
RANK = {part: rank for rank, layer in enumerate(LAYERS) for part in layer}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("edgekit", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The edgekit module ``name`` refers to (a name imported from a module is that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """The edgekit modules ``module`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from a.b import c``: the submodule a.b.c when there is one, else a name of a.b
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "edgekit":
                continue
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _part(module: str) -> str:
    """The layer unit of a module: its top-level package or module under edgekit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "edgekit"


def test_every_package_has_a_layer():
    missing = sorted({_part(m) for m in MODULES} - set(RANK))
    assert not missing, f"add {missing} to LAYERS (and to docs/architecture.md)"


def test_no_upward_or_sideways_import():
    bad = []
    for module, targets in GRAPH.items():
        here = _part(module)
        for target in sorted(targets):
            there = _part(target)
            if there == here or target == "edgekit":
                continue  # within a package; the root package (its version) is everyone's
            if RANK[there] >= RANK[here]:
                bad.append(
                    f"{module} -> {target} ({here}: layer {RANK[here]}, {there}: {RANK[there]})"
                )
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    cycles = _cycles()
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("edgekit.train.fit", "edgekit.data.load"),
        ("edgekit.runtime.model", "edgekit.runtime.decoders"),
        ("edgekit.cli.info", "edgekit.describe"),
    ],
)
def test_the_walk_sees_imports_inside_functions(module, target):
    assert target in GRAPH[module]
