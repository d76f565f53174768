"""Import structure: no cycles in engine/, tiling/, service/; the service and metadata work
never import torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from engine.resolve import parse_nanobragg
from tiling.job import JobSpec
from tiling.store import TileStore

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "tiling", "service")


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the packages (a package by its __init__)."""
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Modules of the packages that ``path`` imports anywhere: module level, inside functions
    and in ``if TYPE_CHECKING:`` blocks (a cycle there is still a cycle of the design)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # engine.model.Scan -> engine.model
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
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


def test_modules_import_without_cycles():
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    assert graph["engine.kernel"] >= {"engine.frame", "engine.physics"}  # sees real imports
    assert "engine.model" in graph["engine.frame"]  # ... and those under TYPE_CHECKING
    assert "engine.plan" in graph["engine.frame"]
    assert graph["service.app"] >= {"service.jobs", "tiling.cluster"}  # ... in every package
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_service_app_imports_neither_torch_nor_the_frame_setup():
    code = (
        "import json, sys; import service.app; "
        "print(json.dumps(sorted(m for m in sys.modules if m in ('torch', 'engine.setup'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


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
