"""Long series of small frames: whole frames per task, every frame reported, same pixels."""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator
from pathlib import Path

import dask.config
import numpy as np
import pytest
import torch
from distributed import get_task_stream

from engine.cli import render_frame
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from tiling.cluster import connect
from tiling.events import FrameDone, JobDone, TileDone
from tiling.graph import render_job
from tiling.job import JobSpec
from tiling.store import StoreReader

ARGS = "-N 3 -cell 70 80 90 90 90 90 -default_F 100 -lambda 1 -distance 60 -detpixels 64"
FRAMES = 200
GROUP = 25  # tiling.frame-group-max in these tests


@pytest.fixture(scope="module")
def client() -> Iterator:
    with connect(workers=2, torch_threads=1, gpu=False) as c:
        yield c


def _job(frames: int) -> JobSpec:
    exp = parse_nanobragg(shlex.split(f"{ARGS} -phi 0 -osc 0.5")).experiment
    return JobSpec(exp, frames=frames, tile=64, dtype="float64")


def _render(client, path: Path, job: JobSpec, group: int = GROUP) -> tuple[list, list[str]]:
    """Render ``job`` with at most ``group`` frames a task (0: tile-group tasks); its events
    and the keys of every task the cluster ran for it."""
    events: list = []
    with dask.config.set({"braggtile.tiling.frame-group-max": group}):
        with get_task_stream(client) as stream:
            render_job(client, str(path), job, on_event=events.append)
    return events, [str(task["key"]) for task in stream.data]


def test_small_frames_render_whole_frames_per_task(client, tmp_path: Path) -> None:
    job = _job(FRAMES)
    events, keys = _render(client, tmp_path / "s.zarr", job)
    ours = [key for key in keys if key.startswith("bt-")]
    # one task per GROUP frames (64 x 64, one tile each), pyramid included: no other task
    assert len(ours) == math.ceil(FRAMES / GROUP)
    assert all(key.startswith("bt-frames-") for key in ours)
    done = [e for e in events if isinstance(e, FrameDone)]
    assert sorted(e.frame for e in done) == list(range(FRAMES))
    tiles = [e for e in events if isinstance(e, TileDone)]
    assert [e.tiles_done for e in tiles] == list(range(1, FRAMES + 1))
    assert isinstance(events[-1], JobDone) and events[-1].tiles_rendered == FRAMES
    store = StoreReader(str(tmp_path / "s.zarr"))
    assert store.complete_frames() == set(range(FRAMES))
    for frame in (0, 1, 77, FRAMES - 1):
        setup = prepare_frame(job.frame_experiment(frame), torch.float64, "cpu")
        expected = render_frame(setup, progress=False)  # an in-process render (float32 out)
        got = store.read_frame(0, frame)
        assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
        assert e_statistics(done, frame) == store.frame_statistics(frame)
    for level in range(1, store.levels()):  # the pyramid of every frame is written
        assert np.all(store.level(level)[:] > 0)


def test_a_series_longer_than_the_window_goes_in_whole_groups(client, tmp_path: Path) -> None:
    """More frames than max_pending_tiles: the room a finished task frees is refilled by
    whole groups of frames (fed frame by frame, it went on in tasks of one frame)."""
    job = _job(48)
    with dask.config.set({"braggtile.tiling.frame-group-max": 4}):
        with get_task_stream(client) as stream:
            render_job(client, str(tmp_path / "w.zarr"), job, max_pending_tiles=8)
    keys = [str(task["key"]) for task in stream.data if str(task["key"]).startswith("bt-")]
    spans = [tuple(int(k) for k in key.rsplit("-", 2)[1:]) for key in keys]
    assert sorted(spans) == [(first, first + 3) for first in range(0, 48, 4)]
    assert StoreReader(str(tmp_path / "w.zarr")).complete_frames() == set(range(48))


def e_statistics(done: list[FrameDone], frame: int):
    return next(e.statistics for e in done if e.frame == frame)


def test_grouped_frames_equal_tile_group_tasks(client, tmp_path: Path) -> None:
    """The same job rendered by tile-group and pyramid tasks (grouping off) has the same
    pixels and statistics."""
    job = _job(12)
    _, keys = _render(client, tmp_path / "g.zarr", job)
    assert len([key for key in keys if key.startswith("bt-")]) < 12
    _, keys = _render(client, tmp_path / "t.zarr", job, group=0)
    assert len([key for key in keys if key.startswith("bt-tiles-")]) == 12
    grouped, single = StoreReader(str(tmp_path / "g.zarr")), StoreReader(str(tmp_path / "t.zarr"))
    for level in range(grouped.levels()):
        np.testing.assert_array_equal(grouped.level(level)[:], single.level(level)[:])
    for frame in range(12):
        assert grouped.frame_statistics(frame) == single.frame_statistics(frame)
