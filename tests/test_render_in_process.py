"""``braggtile render --in-process``: one thread-based worker in the command's own process,
writing the same store (levels, pyramid, records, frame statistics) as worker processes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from engine.cli import render_frame
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from tiling.pyramid import bin2x2
from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 300"


def test_in_process_render_writes_the_full_store(tmp_path: Path) -> None:
    out = tmp_path / "ip.zarr"
    cmd = [
        sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, "-o", str(out),
        "--tile", "128", "--frames", "2", "--in-process", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    store = StoreReader(str(out))
    assert store.complete_frames() == {0, 1}
    codecs = store.level(0).metadata.to_dict()["codecs"]
    assert [c["name"] for c in codecs] == ["bytes", "blosc"]  # lz4 (tiling.level-codec)
    assert codecs[1]["configuration"]["cname"] == "lz4"
    assert len(store.records()) == 2 * 3 * 3  # 300 x 300 pixels in 128-pixel tiles
    run = parse_nanobragg(shlex.split(ARGS))
    ref = render_frame(prepare_frame(run.experiment, torch.float32, "cpu"), progress=False)
    for k in range(2):
        got = store.read_frame(0, k)
        bad = np.argwhere(np.abs(got - ref) > 1e-6 * ref.max())
        assert not bad.size, f"frame {k}: {len(bad)} pixels differ, tiles {_tiles(bad)}"
        assert store.frame_statistics(k).max_I == float(got.max())
        np.testing.assert_array_equal(store.read_frame(1, k), bin2x2(got).astype(np.float32))


def _tiles(pixels: np.ndarray) -> list[tuple[int, int]]:
    """The 128-pixel tiles (row, col) holding ``pixels`` ((slow, fast) rows)."""
    return sorted({(int(s) // 128, int(f) // 128) for s, f in pixels})


def test_in_process_excludes_workers_and_scheduler(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, "-o",
        str(tmp_path / "x.zarr"), "--in-process", "--workers", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--in-process" in proc.stderr
    assert not (tmp_path / "x.zarr").exists()


def _render(tmp_path: Path, name: str, *extra: str, env: dict | None = None) -> str:
    cmd = [
        sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, "-o",
        str(tmp_path / name), "--tile", "128", "--no-progress", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_small_jobs_with_no_cluster_named_render_in_process(tmp_path: Path) -> None:
    """No --workers/--scheduler/--cluster: a job within tiling.in-process-pixels renders in the
    command's process; a bigger one (here: a lowered limit) or --workers starts workers."""
    assert "in this process" in _render(tmp_path, "small.zarr")
    lowered = {"DASK_BRAGGTILE__TILING__IN_PROCESS_PIXELS": "1000"}
    workers = {**lowered, "DASK_BRAGGTILE__CLUSTER__CPU_WORKERS": "2"}
    assert "on 2 worker(s)" in _render(tmp_path, "big.zarr", env=workers)
    assert "on 1 worker(s)" in _render(tmp_path, "named.zarr", "--workers", "1")
    small = StoreReader(str(tmp_path / "small.zarr")).read_frame(0, 0)
    named = StoreReader(str(tmp_path / "named.zarr")).read_frame(0, 0)
    np.testing.assert_array_equal(small, named)
