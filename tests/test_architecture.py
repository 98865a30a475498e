"""The walls between the packages stay: imports point one way, and no module imports itself in a circle.

Layers, top to bottom: singer -> pipeline -> hubspot -> http -> core. A module may import its own
package and any package below it, never one above. Every import counts: type-only imports
(under TYPE_CHECKING) and imports inside functions too, since they carry real calls as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "target_hubspot_upsert"
LAYERS = ["core", "http", "hubspot", "pipeline", "singer"]  # bottom to top


def modules() -> dict[str, Path]:
    """Dotted module name (without the top package) -> file, for every module of the product."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The product modules a file imports (by dotted name without the top package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "target_hubspot_upsert" or node.module.startswith("target_hubspot_upsert."):
                base = node.module.removeprefix("target_hubspot_upsert").lstrip(".")
                names = [f"{base}.{a.name}".lstrip(".") for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("target_hubspot_upsert.") for a in node.names
                     if a.name.startswith("target_hubspot_upsert.")]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def layer(module: str) -> int | None:
    top = module.split(".", maxsplit=1)[0]
    return LAYERS.index(top) if top in LAYERS else None


def test_every_module_lives_in_a_layer():
    outside = [m for m in modules() if layer(m) is None and m != "__main__"]
    assert outside == [], f"modules outside the packages: {outside}"


def test_imports_point_down_only():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer(module) is not None and layer(target) is not None and layer(target) > layer(module)
    ]
    assert upward == [], "imports that point up a layer:\n" + "\n".join(upward)


def test_no_module_imports_itself_in_a_circle():
    edges = {m: {t for t in ts if "." in t or t in LAYERS} for m, ts in graph().items()}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt in LAYERS:  # a package's __init__: no code
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == [], "circles of imports:\n" + "\n".join(cycles)


@pytest.mark.parametrize("planted", ["from target_hubspot_upsert.singer.target import X", "import target_hubspot_upsert.pipeline.runtime"])
def test_the_check_sees_an_upward_import(tmp_path, planted):
    path = tmp_path / "m.py"
    path.write_text(f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    {planted}\n")
    found = imports_of(path, set(modules()))
    assert any(layer(t) > layer("http.transport") for t in found)
