"""Import structure: no cycles inside engine/, and metadata work never imports torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from engine.resolve import parse_nanobragg
from tiling.job import JobSpec
from tiling.store import TileStore

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except inside ``if TYPE_CHECKING:`` blocks (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _engine_imports(path: Path) -> set[str]:
    """engine.* modules imported anywhere in the file (module level or inside functions)."""
    modules = {p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "engine" and len(parts) > 1 and parts[1] in modules:
                found.add(parts[1])
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_engine_modules_import_without_cycles():
    graph = {p.stem: _engine_imports(p) - {p.stem} for p in ENGINE.glob("*.py")}
    graph.pop("__init__")
    assert graph["kernel"] >= {"frame", "physics"}  # the walk sees real imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_model_schema_and_store_metadata_do_not_import_torch(tmp_path):
    exp = parse_nanobragg("-cell 100 100 100 90 90 90 -default_F 1 -detpixels 64".split())
    job = JobSpec(exp.experiment, frames=2, tile=32)
    TileStore.open_or_create(str(tmp_path / "job.zarr"), job)
    code = f"""
import json, sys
import engine, engine.config, engine.model
from tiling.store import TileStore
schema = engine.model.Experiment.model_json_schema()
store = TileStore.open_for_worker({str(tmp_path / "job.zarr")!r}, {job.fingerprint!r})
print(json.dumps({{
    "schema": sorted(schema["properties"]),
    "frames": store.job.frames,
    "records": len(store.records()),
    "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "distributed"}}),
}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert "detector" in result["schema"] and result["frames"] == 2
    assert result["records"] == 0
    assert result["heavy"] == []
