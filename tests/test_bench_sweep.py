"""``braggtile bench --tile-sweep`` (tiling.sweep): one JSON line, per tile size its seconds,
ns per pixel and ratio to the cheapest size. Checks the shape and the arithmetic, never the
times themselves."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import InputError
from tiling.sweep import keep_stores, summarise, tile_sizes
from tiling.worker import STAGES

SMALL = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 5 -distance 100 -detpixels 96"


def test_summary_divides_the_median_job_by_the_pixels_and_ranks_against_the_cheapest():
    runs = {64: [2.0, 4.0, 3.0], 128: [1.0, 1.5]}
    result = summarise(runs, {64: 1_000_000, 128: 500_000})
    assert result["tiles"]["64"] == {
        "seconds": 3.0, "runs": [2.0, 4.0, 3.0], "ns_per_pixel": 3000.0, "ratio": 1.2
    }  # fmt: skip
    assert result["tiles"]["128"] == {
        "seconds": 1.25, "runs": [1.0, 1.5], "ns_per_pixel": 2500.0, "ratio": 1.0
    }  # fmt: skip
    assert result["spread"] == 1.2


def test_tile_sizes_are_positive_integers_each_once():
    assert tile_sizes("128,256, 128,1024") == [128, 256, 1024]
    for bad in ("0,128", "a,b", ""):
        with pytest.raises(InputError, match="--sweep-tiles"):
            tile_sizes(bad)


def test_stores_are_kept_while_the_timed_rounds_fit_in_half_the_free_space():
    assert keep_stores({128: 300, 1024: 200}, repeat=4, free_bytes=4000)
    assert not keep_stores({128: 300, 1024: 200}, repeat=4, free_bytes=3999)
    assert keep_stores({128: 0}, repeat=5, free_bytes=0)


def _bench(*args: str, tmp: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "service.cli", "bench", "--tile-sweep", *args]
    env = os.environ | ({"TMPDIR": str(tmp)} if tmp is not None else {})
    return subprocess.run(
        [*cmd, "--nanobragg", SMALL], capture_output=True, text=True, timeout=300, env=env
    )


def test_tile_sweep_prints_one_json_line_per_run_of_every_size(tmp_path: Path):
    proc = _bench("--sweep-tiles", "32,96", "--frames", "2", "--repeat", "2", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob("braggtile-sweep-*"))  # the kept stores go at the end
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    assert sum(line.startswith("bench: round") for line in lines[:-1]) == 3 * 2
    result = json.loads(lines[-1])
    assert result["tile_sweep"] is True and result["frames"] == 2 and result["repeat"] == 2
    assert result["pixels"] == 2 * 96 * 96 and result["dtype"] == "float32"
    assert result["stores_kept"] is True
    assert list(result["store_bytes"]) == ["32", "96"]
    assert min(result["store_bytes"].values()) > 2 * 96 * 96 * 4  # 2 float32 frames and more
    sizes = result["tiles"]
    assert list(sizes) == ["32", "96"]
    for entry in sizes.values():
        assert len(entry["runs"]) == 2 and min(entry["runs"]) > 0
        assert entry["seconds"] == pytest.approx(statistics.median(entry["runs"]), abs=2e-6)
        ns = entry["seconds"] / result["pixels"] * 1e9
        assert entry["ns_per_pixel"] == pytest.approx(ns, rel=1e-3, abs=1e-3)
    best = min(e["ns_per_pixel"] for e in sizes.values())
    for entry in sizes.values():
        assert entry["ratio"] == pytest.approx(entry["ns_per_pixel"] / best, rel=1e-3)
    assert min(e["ratio"] for e in sizes.values()) == 1.0
    assert result["spread"] == max(e["ratio"] for e in sizes.values())
    assert list(result["stages"]) == ["32", "96"]
    for stages in result["stages"].values():
        assert set(stages) == set(STAGES) and stages["render"] > 0


def test_tile_sweep_bad_sizes_are_a_one_line_error():
    proc = _bench("--sweep-tiles", "0,128")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--sweep-tiles" in lines[0] and ">= 1" in lines[0], proc.stderr
