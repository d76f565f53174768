"""The same job gives bit-identical pixels and frame statistics however its tiles complete."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from engine.resolve import parse_nanobragg
from tiling.cluster import connect
from tiling.graph import render_job
from tiling.job import JobSpec
from tiling.store import StoreReader, TileStore

ARGS = (
    "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -misset 10 20 30 "
    "-detpixels_f 96 -detpixels_s 80"
)
JOB = JobSpec(experiment=parse_nanobragg(shlex.split(ARGS)).experiment, frames=2, tile=16)


def frame_statistics(path: Path) -> dict:
    return {k: entry.statistics for k, entry in StoreReader(str(path)).frames().items()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "c.zarr"
    with connect(workers=1) as client:
        render_job(client, str(path), JOB)
    return path


def test_statistics_do_not_depend_on_completion_order(clean: Path, tmp_path: Path) -> None:
    path = tmp_path / "two.zarr"
    with connect(workers=2) as client:  # two workers finish tiles in another order than one
        render_job(client, str(path), JOB)
    assert frame_statistics(path) == frame_statistics(clean)
    a, b = (StoreReader(str(p)).level(0)[...] for p in (path, clean))
    np.testing.assert_array_equal(a, b)


def test_a_resumed_render_has_the_statistics_of_a_clean_one(clean: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.zarr"
    with connect(workers=2) as client:
        render_job(client, str(path), JOB)
        store, _ = TileStore.open_or_create(str(path), JOB)
        for frame in range(JOB.frames):  # every other tile lost in a crash
            for row, col in np.ndindex(*JOB.grid.shape):
                if (row + col + frame) % 2:
                    store.forget_tile(frame, row, col)
        store.forget_frames()
        done = render_job(client, str(path), JOB)
    assert done.tiles_rendered == done.tiles_resumed == JOB.frames * 30 // 2
    assert frame_statistics(path) == frame_statistics(clean)
