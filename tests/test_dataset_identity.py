"""A dataset job gives the same pixels and the same truth however it is rendered.

One job of still frames, each with its own draws (orientation, mosaic spread, cells, cell,
wavelength, flux, distance, water), Poisson noise, a point spread, gain and read-out noise, is
rendered by real ``braggtile render`` processes three ways:

- ``--tile 128`` on 1 worker (the reference);
- ``--tile 512`` (one tile per frame) on 2 workers;
- ``--tile 128`` on 2 workers, SIGKILLed (its whole process group: the command, its scheduler
  and its workers) mid-job, then finished by running the same command again.

Each must equal the reference bit for bit: every pyramid level of the photons, the detector's
image (ADU), the frame statistics and the ground truth (the store's and the exported
``truth.jsonl`` / ``truth.expt`` files). The kill lands mid-job by construction: the tile gate
(tests/gate.py) lets a tile of the first frame be written, then holds one of the last frame,
and the kill strikes while a worker holds it.

Frame statistics are float64 sums of per-tile partials merged in tile order, so they are
bit-identical for the same tiles (any workers, any resume) but may differ in the last bits
between tile sizes (the sums are grouped differently): there, max_I, its pixel and the pixel
count must be equal, mean, rms and rmsd equal to 1e-12 (a pixel off by one photon moves the
mean by 1e-6 of it).

Every render runs its workers with one torch thread: two threads per worker on a busy
two-core host are over ten times slower.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from gate import TileGate

from engine.statistics import FrameStatistics
from tiling.exports.cli import main as export_main
from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ARGS = (
    "-cell 78 78 37 90 90 90 -N 10 -default_F 100 -lambda 1 -distance 120 -detpixels 512 "
    "-pixel 0.1 -water 2 -fluence 1e28 -mosaic 0.2 -mosaic_domains 2 -oversample 1"
)
STILLS = 6
DATASET = [
    "--stills", str(STILLS), "--seed", "7",
    "--vary", "orientation=random", "--vary", "mosaic=uniform:0.1,0.4",
    "--vary", "N=uniform:8,16", "--vary", "cell=normal:0.01", "--vary", "lambda=normal:0.005",
    "--vary", "flux=lognormal:0.3", "--vary", "distance=normal:1", "--vary", "water=uniform:0,5",
    "--noise", "--psf", "gauss:150", "--gain", "2", "--readout-noise", "3",
]  # fmt: skip
#: Tiles of a --tile 128 render: 4 x 4 per 512 x 512 frame.
TILES = STILLS * 16
#: Written before the kill (a tile of the first frame) and held while it strikes (a tile of the
#: last frame far from the beam centre, which tiles rendered before it in the same task or
#: pyramid chunk may share: the resume then meets a part-written pyramid chunk too).
WRITTEN, HELD = (0, 1, 1), (STILLS - 1, 3, 3)
TIMEOUT = 600


def command(out: Path, tile: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, *DATASET,
        "-o", str(out), "--tile", str(tile), "--workers", str(workers), "--torch-threads", "1",
        "--no-progress",
    ]  # fmt: skip


def render(out: Path, tile: int, workers: int, env: dict[str, str]) -> str:
    """Run ``braggtile render`` to the end; its summary line."""
    done = subprocess.run(
        command(out, tile, workers), cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def rendered_at(out: Path) -> dict[tuple[int, int, int], float]:
    """rendered_at of every finished tile of the store."""
    return {key: record.rendered_at for key, record in StoreReader(str(out)).records().items()}


def snapshot(out: Path, scratch: Path) -> dict[str, Any]:
    """Everything the job rendered, as a reader of the store sees it."""
    store = StoreReader(str(out))
    assert store.complete_frames() == set(range(STILLS)), out
    truths = {}
    for suffix in ("jsonl", "expt"):
        path = scratch / f"{out.stem}-truth.{suffix}"
        assert export_main([str(out), "--truth", str(path)]) == 0
        truths[suffix] = path.read_text()
    return {
        "levels": [store.level(k)[...] for k in range(store.levels())],
        "detector": np.stack([store.read_detector_frame(k) for k in range(STILLS)]),
        "statistics": {k: entry.statistics for k, entry in store.frames().items()},
        "truth": [store.frame_truth(k) for k in range(STILLS)],
        "exports": truths,
    }


def same_pixels(name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == theirs.dtype, (name, ours.dtype, theirs.dtype)
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    if not np.array_equal(ours, theirs):
        diff = ours != theirs
        where = [tuple(int(i) for i in w) for w in np.argwhere(diff)[:5]]
        raise AssertionError(f"{name}: {int(diff.sum())} pixels differ, first at {where}")


def same_statistics(run: str, ours: FrameStatistics, theirs: FrameStatistics) -> None:
    """Equal but for the last bits of the float64 moments (see the module docstring)."""
    exact = ("max_I", "max_slow", "max_fast", "pixels")
    assert [getattr(ours, f) for f in exact] == [getattr(theirs, f) for f in exact], run
    for name in ("mean", "rms", "rmsd"):
        assert math.isclose(getattr(ours, name), getattr(theirs, name), rel_tol=1e-12), run


def assert_identical(
    run: str, ours: dict[str, Any], theirs: dict[str, Any], same_tiles: bool = True
) -> None:
    """``ours`` (the render ``run``) equals the reference ``theirs`` bit for bit; with another
    tile size (``same_tiles`` False) the statistics as :func:`same_statistics` says."""
    assert len(ours["levels"]) == len(theirs["levels"]) > 1, run
    for level, (a, b) in enumerate(zip(ours["levels"], theirs["levels"], strict=True)):
        same_pixels(f"{run}: level {level}", a, b)
    same_pixels(f"{run}: detector", ours["detector"], theirs["detector"])
    if same_tiles:
        assert ours["statistics"] == theirs["statistics"], f"{run}: frame statistics"
    else:
        assert ours["statistics"].keys() == theirs["statistics"].keys(), run
        for k, stats in ours["statistics"].items():
            same_statistics(f"{run}: frame {k} statistics", stats, theirs["statistics"][k])
    assert ours["truth"] == theirs["truth"], f"{run}: the store's truth"
    for suffix, text in ours["exports"].items():
        assert text == theirs["exports"][suffix], f"{run}: truth.{suffix}"


def kill_mid_job(out: Path, gate: TileGate, env: dict[str, str]) -> dict[tuple, float]:
    """Start the --tile 128, 2-worker render; SIGKILL its process group once :data:`WRITTEN` is
    written and :data:`HELD` is held; returns the records it left."""
    gate.hold(WRITTEN, HELD)
    first = subprocess.Popen(
        command(out, 128, 2), cwd=ROOT, env={**env, **gate.env()}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.wait("held", WRITTEN)
        gate.release(WRITTEN)
        gate.wait("passed", WRITTEN)  # its chunks and record are written
        gate.wait("held", HELD)  # the job cannot end while a worker holds it
        assert first.poll() is None, "render ended before it could be killed"
        os.killpg(first.pid, signal.SIGKILL)  # the CLI, its scheduler and its worker processes
        assert first.wait(30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
    gate.clear()
    return rendered_at(out)


def test_tile_size_workers_and_a_sigkill_leave_pixels_and_truth_unchanged(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    clean = tmp_path / "t128w1.zarr"
    render(clean, 128, 1, env)
    reference = snapshot(clean, tmp_path)
    photons, detector = reference["levels"][0], reference["detector"]
    assert photons.shape == detector.shape == (STILLS, 512, 512)
    assert photons.dtype == np.float32 and detector.dtype == np.uint16
    assert all(photons[k].max() > 10 for k in range(STILLS)), "Bragg spots on every frame"
    assert len({tuple(t["A_matrix"]) for t in reference["truth"]}) == STILLS  # frames differ
    assert len({float(t["wavelength_A"]) for t in reference["truth"]}) == STILLS

    wide = tmp_path / "t512w2.zarr"
    render(wide, 512, 2, env)
    assert StoreReader(str(wide)).level(0).chunks == (1, 512, 512)
    assert_identical("--tile 512 on 2 workers", snapshot(wide, tmp_path), reference, False)

    killed = tmp_path / "killed.zarr"
    before = kill_mid_job(killed, TileGate(tmp_path / "gate"), env)
    assert WRITTEN in before and HELD not in before and 0 < len(before) < TILES
    assert StoreReader(str(killed)).complete_frames() != set(range(STILLS))
    line = render(killed, 128, 2, env)  # the same command finishes it
    match = re.search(r"(\d+) tiles rendered, (\d+) resumed", line)
    assert match, line
    assert (int(match[1]), int(match[2])) == (TILES - len(before), len(before)), line
    after = rendered_at(killed)
    assert {key: after[key] for key in before} == before, "tiles written before the kill kept"
    assert_identical("killed, then resumed", snapshot(killed, tmp_path), reference)
