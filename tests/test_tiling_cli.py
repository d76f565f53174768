"""``braggtile render``: bad input; a process killed mid-run, then resumed by the same command."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import dask.config
import numpy as np
import pytest
import torch
from gate import TileGate

from engine import config
from engine.cli import render_frame
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from tiling.cli import main
from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ARGS = (
    "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 128 "
    "-phi 5 -osc 0.4 -phisteps 10 -mosaic 0.5 -mosaic_dom 4"
)
FRAMES, TILE = 2, 16
TILES = FRAMES * (128 // TILE) ** 2
#: A tile of the last frame near the beam centre: held, the render is killed mid-run.
HELD = (1, 4, 4)


def command(out: Path) -> list[str]:
    return [
        sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, "-o", str(out),
        "--tile", str(TILE), "--frames", str(FRAMES), "--workers", "2", "--no-progress",
    ]  # fmt: skip


def records(out: Path) -> dict[tuple[int, int, int], float]:
    """rendered_at of every finished tile in the store (none while it is being created)."""
    try:
        found = StoreReader(str(out)).records()
    except (FileNotFoundError, KeyError):
        return {}
    return {key: record.rendered_at for key, record in found.items()}


def test_bad_input_exits_2_without_starting_a_cluster(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.zarr")
    assert main(["--nanobragg", f"{ARGS} -lambda -1", "-o", out]) == 2
    assert "-lambda" in capsys.readouterr().err
    assert main(["--spec", str(tmp_path / "missing.json"), "-o", out]) == 2
    assert not Path(out).exists()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("tiling.whole-frame-tasks", "abc"),
        ("tiling.max-pending-tiles", -3),
        ("tiling.whole-frame-pixels", 1.5),
        ("compile.threshold", True),
    ],
)
def test_a_bad_count_setting_exits_2_naming_it(tmp_path: Path, capsys, setting, value) -> None:
    """An integer setting that is not a count >= 0 is refused in one line, naming it."""
    out = tmp_path / "x.zarr"
    argv = ["--nanobragg", ARGS, "-o", str(out), "--in-process", "--no-progress", "--frames", "4"]
    argv += ["--tile", "16"]  # frames of 8 x 8 tiles: not small, so every setting is read
    with dask.config.set({f"braggtile.{setting}": value}):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"braggtile.{setting}: must be an integer >= 0" in err, err
    with dask.config.set({f"braggtile.{setting}": "4"}):  # as a DASK_BRAGGTILE__ variable gives
        assert config.integer(setting) == 4


def test_killed_render_resumes_with_the_same_command(tmp_path: Path) -> None:
    out = tmp_path / "k.zarr"
    gate = TileGate(tmp_path / "gate")
    gate.hold(HELD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **gate.env()}
    first = subprocess.Popen(
        command(out), cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        gate.wait("held", HELD)  # mid-run: frame 0's tasks went first, the job cannot end
        assert first.poll() is None, "render ended before it could be killed"
        os.killpg(first.pid, signal.SIGKILL)  # the CLI, its scheduler and its worker processes
        first.wait(30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
    gate.clear()  # the second run renders freely
    before = records(out)
    assert 0 < len(before) < TILES and HELD not in before

    second = subprocess.run(
        command(out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    line = second.stdout.strip().splitlines()[-1]
    match = re.search(
        r"(\d+) tiles rendered, (\d+) resumed, in [\d.]+ s on 2 worker\(s\): ([\d.e+]+) pixels/s",
        line,
    )
    assert match, line
    assert (int(match[1]), int(match[2])) == (TILES - len(before), len(before))
    peak = re.search(r"client peak RSS (\d+) MiB", line)
    assert peak and int(peak[1]) < 1024

    after = records(out)
    assert len(after) == TILES
    assert all(after[key] == at for key, at in before.items())  # finished tiles not recomputed
    store = StoreReader(str(out))
    assert store.complete_frames() == set(range(FRAMES))
    for k in range(FRAMES):
        run = parse_nanobragg(shlex.split(f"{ARGS} -phi {5 + 0.4 * k}"))
        ref = render_frame(prepare_frame(run.experiment, torch.float32, "cpu"), progress=False)
        got = store.read_frame(0, k)
        assert np.abs(got - ref).max() <= 1e-6 * ref.max()
        assert store.frame_statistics(k).max_I == float(got.max())


@pytest.mark.slow
def test_seed_benchmark_4096_ragged_tiles_agree_with_one_tile_and_with_c(tmp_path: Path) -> None:
    """Done criteria on the 4096x4096 benchmark: --tile 500 (ragged) on 2 workers equals
    --tile 4096 on 1 worker to 1e-6 x max; both meet the float32 parity floor against C, also on
    a 64-pixel strip along every edge; the client stays under 1 GiB."""
    from reference import FLOORS, case_args, parity, reference_image

    name = "seed_benchmark_4096"
    ref = reference_image(name)
    args = shlex.join(case_args(name))
    images = []
    for tile, workers in ((500, 2), (4096, 1)):
        out = tmp_path / f"t{tile}.zarr"
        cmd = [
            sys.executable, "-m", "tiling", "render", "--nanobragg", args, "-o", str(out),
            "--tile", str(tile), "--workers", str(workers), "--no-progress",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr
        peak = re.search(r"client peak RSS (\d+) MiB", done.stdout)
        assert peak and int(peak[1]) < 1024, done.stdout
        images.append(StoreReader(str(out)).read_frame(0, 0))
    ragged, whole = images
    assert np.abs(ragged.astype(np.float64) - whole).max() <= 1e-6 * np.abs(whole).max()
    corr, sum_tol, _ = FLOORS["float32"]
    strips = {"all": np.s_[:, :], "top": np.s_[:64, :], "bottom": np.s_[-64:, :]}
    strips |= {"left": np.s_[:, :64], "right": np.s_[:, -64:]}
    for image in images:
        for where, sl in strips.items():
            p = parity(image[sl], ref[sl])
            assert p.correlation >= corr and abs(p.sum_ratio - 1.0) <= sum_tol, (where, p)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a host without CUDA")
def test_cuda_workers_without_cuda_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "g.zarr")
    for where in (["--workers", "1"], ["--in-process"]):
        assert main(["--nanobragg", ARGS, "-o", out, "--device", "cuda", *where]) == 2
        err = capsys.readouterr().err
        assert "--device: GPU workers requested, but CUDA is not available" in err
        assert err.count("\n") == 1
