"""The layout is the architecture: no import cycle between nmt's parts.

A part is a subpackage (nmt.data, nmt.models, ...) or a top-level module (nmt.config,
nmt.durable, ...). Every import counts, those inside functions too: a cycle hidden in a
function still makes two parts that cannot be read, tested or moved one without the other.
"""

from __future__ import annotations

import ast
import itertools
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import nmt

PACKAGE = Path(nmt.__file__).parent


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in its code, relative imports resolved; the
    names imported from a package count too (``from nmt import durable``)."""
    package = list(path.relative_to(root.parent).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def part_graph(root: Path) -> dict[str, dict[str, str]]:
    """part → {part it imports: one file and import that shows it}."""
    parts = {p.stem for p in root.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    parts.discard("__init__")
    graph: dict[str, dict[str, str]] = {part: {} for part in parts}
    for path in sorted(root.rglob("*.py")):
        source = path.relative_to(root).parts[0].removesuffix(".py")
        if source not in parts:
            continue
        for module in imported_modules(path, root):
            names = module.split(".")
            if names[0] == root.name and len(names) > 1 and names[1] in parts - {source}:
                graph[source].setdefault(names[1], f"{path.relative_to(root)} imports {module}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    try:
        TopologicalSorter({part: set(imports) for part, imports in graph.items()}).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_import_cycle_between_nmts_parts() -> None:
    graph = part_graph(PACKAGE)
    assert {"data", "models", "training", "evaluation", "serve", "durable", "cli"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "an import cycle between nmt's parts: " + "; ".join(
        graph[b][a] for a, b in itertools.pairwise(cycle)
    )


def test_the_check_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    root = tmp_path / "nmt"
    for part in ("a", "b"):
        (root / part).mkdir(parents=True)
        (root / part / "__init__.py").write_text("", encoding="utf-8")
    (root / "__init__.py").write_text("", encoding="utf-8")
    (root / "a" / "x.py").write_text("from nmt.b.y import f\n", encoding="utf-8")
    # b imports a only inside a function, and relatively.
    (root / "b" / "y.py").write_text("def f():\n    from ..a import x\n", encoding="utf-8")
    assert set(find_cycle(part_graph(root)) or []) == {"a", "b"}
    (root / "b" / "y.py").write_text("def f():\n    from . import z\n", encoding="utf-8")
    assert find_cycle(part_graph(root)) is None
