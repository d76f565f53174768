"""The store's layout is written down once: no module outside the store layer names its keys.

Scans the sources of ``service/`` and ``tiling/`` (the store layer excepted) with ``ast`` for
store keys used as keys: the attribute names, the record array, level paths, chunk keys, and
for zarr opening stores itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The store layer: the only modules that may name the layout's keys.
STORE_LAYER = {"tiling/layout.py", "tiling/store.py", "tiling/chunkio.py", "tiling/inputs.py"}
#: Keys of the layout: group attributes, their fields, the record array and its attributes.
#: ("frames", a field of the attributes, is also a job option: any access to the attributes'
#: one goes through "braggtile" first.)
KEYS = {"braggtile", "ome", "tiles", "detector", "statistics", "complete", "fields"}
#: Calls whose first argument is a key (dict look-ups, zarr nodes, chunk access).
LOOKUPS = {
    "get", "pop", "setdefault", "index", "chunks", "array", "level", "create_array",
    "create_group", "require_group", "open_array", "open_group", "update_attributes",
}  # fmt: skip
#: zarr functions that open a store.
OPENERS = {"open", "open_group", "open_array", "open_consolidated", "group", "create_array"}
#: Names of the layout's keys, for the store layer alone.
KEY_NAMES = {"ATTRS_KEY", "OME_KEY", "RECORDS", "DETECTOR", "RECORD_FIELDS", "level_path"}
#: Subscripts of these names are not store look-ups: worker stage timings (tiling.graph.STAGES)
#: share the word "statistics".
NOT_STORES = {"stages"}


def _is_key(node: ast.AST) -> str | None:
    """The store key ``node`` spells, if any: a layout key, a level path ("0", "1", ...), or a
    level path built with str()."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if node.value in KEYS or node.value.isdigit():
            return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str":
        return "str(...)"
    return None


def _base_name(node: ast.AST) -> str:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.value if not isinstance(node, ast.Call) else node.func
        if isinstance(node, ast.Attribute):
            return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def store_keys(source: str) -> list[tuple[int, str]]:
    """(line, what) of every store key used as a key in ``source``, and of every zarr call
    opening a store and import of the layout's key names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        keys: list[ast.AST] = []
        if isinstance(node, ast.Subscript) and _base_name(node.value) not in NOT_STORES:
            keys.append(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in LOOKUPS and node.args:
                keys.append(node.args[0])
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "zarr" and node.func.attr in OPENERS:
                found.append((node.lineno, f"zarr.{node.func.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("tiling.store", "tiling.layout"):
            found += [(node.lineno, a.name) for a in node.names if a.name in KEY_NAMES]
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            keys.append(node.left)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value  # a key or pattern, not prose (docstrings, descriptions)
            if not any(c.isspace() for c in text) and ("/c/" in text or text.startswith("0/")):
                found.append((node.lineno, repr(text)))
        found += [(node.lineno, key) for k in keys if (key := _is_key(k)) is not None]
    return found


def _sources() -> list[Path]:
    files = sorted((ROOT / "service").rglob("*.py")) + sorted((ROOT / "tiling").rglob("*.py"))
    return [f for f in files if f.relative_to(ROOT).as_posix() not in STORE_LAYER]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_store_key_outside_the_store_layer(path: Path) -> None:
    assert store_keys(path.read_text()) == []


@pytest.mark.parametrize(
    "line",
    [
        'group.attrs["braggtile"]',
        'entry.get("complete")',
        'entry["complete"]',
        'x["statistics"]',
        'group["tiles"][0]',
        'group["0"][frame]',
        "group[str(level)]",
        'store.chunks("0")',
        "store.chunks(str(level))",
        '"braggtile" in group.attrs',
        'zarr.open_group(path, mode="r")',
        'KEY = re.compile(r"0/c/(\\d+)")',
        "from tiling.store import ATTRS_KEY, RECORDS",
    ],
)
def test_the_scan_finds_raw_keys(line: str) -> None:
    assert store_keys(line), line


@pytest.mark.parametrize(
    "line",
    [
        'stages["statistics"] += 1.0',
        'payload = {"frame": 1, "statistics": stats}',
        'what[0] == "tiles"',
        "reader.read_frame(0, frame)",
        "store.chunks(level)",
    ],
)
def test_the_scan_passes_what_is_no_store_key(line: str) -> None:
    assert store_keys(line) == []
