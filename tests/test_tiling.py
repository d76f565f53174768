"""Tiling: grid, pyramid and store units, and real renders on a LocalCluster into on-disk stores."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import dask.config
import distributed
import numpy as np
import pytest
import torch

from engine.cli import render_frame
from engine.kernel import block_shape, render_window
from engine.model import Experiment
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from engine.smv import read_smv
from engine.statistics import TileStatistics
from engine.window import Window
from tiling import graph
from tiling.cluster import connect, register_plugin
from tiling.events import FrameDone, JobDone, JobStarted, TileDone
from tiling.graph import chunks_per_task, level2_in_tasks, render_job
from tiling.grid import TileGrid, beam_centre_pixels, roi_window
from tiling.job import JobSpec
from tiling.outputs import NanoBraggFiles, requested_outputs
from tiling.pyramid import bin2x2, children, level_chunks, level_shapes
from tiling.store import StoreMismatchError, StoreReader, TileStore
from tiling.worker import render_runs, worker_info

BASE = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100"


def experiment(extra: str) -> Experiment:
    return parse_nanobragg(shlex.split(f"{BASE} {extra}")).experiment


def full_render(exp: Experiment, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """The frame as ``braggtile nanobragg`` renders it (one window, no tiling)."""
    return render_frame(prepare_frame(exp, dtype, "cpu"), progress=False)


def mean_2x2(image: np.ndarray) -> np.ndarray:
    """The expected next pyramid level, computed here: the mean of each 2x2 block, an odd edge
    row/column (and corner) averaged over the pixels that exist."""
    x = np.asarray(image, dtype=np.float64)
    s, f = x.shape
    padded = np.full((s + s % 2, f + f % 2), np.nan)
    padded[:s, :f] = x
    return np.nanmean(padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2), (1, 3))


def assert_pyramid(store: StoreReader, frame: int) -> None:
    """Every level of ``frame`` is the 2x2 mean of the level above, stored in its dtype."""
    levels = store.levels()
    assert levels >= 2
    for level in range(1, levels):
        above, below = store.read_frame(level - 1, frame), store.read_frame(level, frame)
        expected = mean_2x2(above).astype(below.dtype)
        np.testing.assert_allclose(below, expected, rtol=1e-6, atol=0)


def assert_close(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    assert np.abs(got.astype(np.float64) - ref).max() <= 1e-6 * np.abs(ref).max()


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slow", "fast", "tile"), [(64, 64, 16), (70, 45, 16), (5, 300, 256), (9, 7, 20)]
)
def test_grid_covers_every_pixel_once_with_chunk_aligned_tiles(
    slow: int, fast: int, tile: int
) -> None:
    grid = TileGrid(slow, fast, tile, Window.full(slow, fast))
    cover = np.zeros((slow, fast), dtype=int)
    for t in grid.tiles():
        w = t.window
        assert (w.slow0, w.fast0) == (t.row * tile, t.col * tile)
        assert w.slow1 == min(w.slow0 + tile, slow) and w.fast1 == min(w.fast0 + tile, fast)
        cover[w.slow0 : w.slow1, w.fast0 : w.fast1] += 1
    assert (cover == 1).all()
    assert len(grid.tiles()) == grid.shape[0] * grid.shape[1]


def test_grid_keeps_only_tiles_meeting_the_inclusive_roi() -> None:
    exp = experiment("-detpixels_f 100 -detpixels_s 80 -roi 20 40 50 200")
    roi = roi_window(exp)
    assert roi == Window(50, 80, 20, 41)  # x 20..40 inclusive; y clipped to the detector
    grid = TileGrid.for_experiment(exp, 16)
    tiles = grid.tiles()
    assert {(t.row, t.col) for t in tiles} == {(r, c) for r in (3, 4) for c in (1, 2)}
    assert sum(grid.rendered_pixels(t) for t in tiles) == roi.pixels


def test_order_renders_the_beam_centre_tile_first() -> None:
    exp = experiment("-detpixels_f 200 -detpixels_s 160 -Xbeam 5 -Ybeam 15")
    bs, bf = beam_centre_pixels(exp)
    assert 0 <= bs < 160 and 0 <= bf < 200
    order = TileGrid.for_experiment(exp, 32).ordered(bs, bf)
    first = order[0].window
    assert first.slow0 <= bs < first.slow1 and first.fast0 <= bf < first.fast1

    def gap(w: Window) -> float:
        return float(
            np.hypot(max(w.slow0 - bs, 0, bs - w.slow1), max(w.fast0 - bf, 0, bf - w.fast1))
        )

    gaps = [gap(t.window) for t in order]
    assert gaps == sorted(gaps)


def test_pyramid_levels_halve_to_the_minimum_size() -> None:
    assert level_shapes(4096, 4096) == [
        (4096, 4096),
        (2048, 2048),
        (1024, 1024),
        (512, 512),
        (256, 256),
    ]
    assert level_shapes(600, 257) == [(600, 257), (300, 129), (150, 65)]
    assert level_shapes(100, 80) == [(100, 80)]
    image = np.arange(15, dtype=np.float64).reshape(3, 5)
    binned = bin2x2(image)
    assert binned.shape == (2, 3)
    assert binned[0, 0] == np.mean([0, 1, 5, 6]) and binned[1, 2] == 14.0
    assert binned[0, 2] == np.mean([4, 9]) and binned[1, 0] == np.mean([10, 11])
    rng = np.random.default_rng(8)
    for shape in ((6, 8), (7, 8), (6, 9), (7, 9), (1, 1), (1, 4)):
        data = rng.uniform(0, 100, size=shape).astype(np.float32)
        np.testing.assert_allclose(bin2x2(data), mean_2x2(data), rtol=1e-12)
    # chunk (r, c) of a level is binned from chunks (2r..2r+1, 2c..2c+1) above; ragged edges
    assert children((300, 129), 64, 2, 0) == [(4, 0), (4, 1)]
    shapes = level_shapes(600, 600, 100)
    assert level_chunks(shapes, 2, 64, Window(0, 10, 0, 10)) == [(0, 0)]


def test_job_fingerprint_survives_the_store_round_trip() -> None:
    job = JobSpec(experiment("-detpixels 64 -phi 3 -osc 0.5"), frames=4, tile=32, dtype="float64")
    again = JobSpec.from_dict(job.to_dict())
    assert again == job and again.fingerprint == job.fingerprint
    assert (
        JobSpec(job.experiment, frames=5, tile=32, dtype="float64").fingerprint != job.fingerprint
    )


# --- renders on a LocalCluster ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator:
    with connect(workers=2, torch_threads=1, gpu=False) as c:
        yield c


def read_store(path: Path) -> StoreReader:
    return StoreReader(str(path))


def test_ragged_tiled_render_equals_full_frame_render(client, tmp_path: Path) -> None:
    exp = experiment("-detpixels_f 150 -detpixels_s 110")
    job = JobSpec(exp, tile=32, pyramid_min=40)
    done = render_job(client, str(tmp_path / "a.zarr"), job)
    assert done.tiles_rendered == 5 * 4 and done.pixels_rendered == 150 * 110
    ref = full_render(exp)
    store = read_store(tmp_path / "a.zarr")
    assert_close(store.read_frame(0, 0), ref)
    assert [store.level(k).shape[1:] for k in range(3)] == [(110, 150), (55, 75), (28, 38)]
    assert_pyramid(store, 0)  # odd edges at level 1
    entry = store.frames()[0]
    assert entry.complete is True
    whole = TileStatistics.from_tile(store.read_frame(0, 0), Window(0, 110, 0, 150)).summary()
    assert entry.statistics.to_dict() == pytest.approx(whole.to_dict(), rel=1e-9)
    ref_stats = TileStatistics.from_tile(ref, Window(0, 110, 0, 150)).summary()
    assert (entry.statistics.max_slow, entry.statistics.max_fast) == (
        ref_stats.max_slow,
        ref_stats.max_fast,
    )


def test_roi_render_leaves_pixels_outside_at_zero(client, tmp_path: Path) -> None:
    exp = experiment("-detpixels 96 -roi 10 60 30 47")
    done = render_job(client, str(tmp_path / "roi.zarr"), JobSpec(exp, tile=16, pyramid_min=10))
    assert done.pixels_rendered == 51 * 18
    store = read_store(tmp_path / "roi.zarr")
    image = store.read_frame(0, 0)
    assert_close(image, full_render(exp))
    outside = np.ones_like(image, dtype=bool)
    outside[30:48, 10:61] = False
    assert (image[outside] == 0).all() and image[~outside].max() > 0
    stats = store.frame_statistics(0)
    assert stats is not None and stats.pixels == 51 * 18
    levels = [store.read_frame(level, 0) for level in range(4)]
    assert [lv.shape for lv in levels] == [(96, 96), (48, 48), (24, 24), (12, 12)]
    assert_pyramid(store, 0)


def test_series_frame_k_equals_a_single_render_at_phi0_plus_k_osc(client, tmp_path: Path) -> None:
    args = "-detpixels 64 -phi 10 -osc 2 -phisteps 2 -mosaic 1 -mosaic_dom 2"
    job = JobSpec(experiment(args), frames=3, tile=24, dtype="float64")
    events: list = []
    # at most one frame's 9 tiles pending: frames are fed one after another
    render_job(client, str(tmp_path / "s.zarr"), job, on_event=events.append, max_pending_tiles=9)
    store = read_store(tmp_path / "s.zarr")
    assert store.level(0).shape == (3, 64, 64) and store.level(0).dtype == np.float64
    for k in range(3):
        single = experiment(f"{args} -phi {10 + 2 * k}")
        assert_close(store.read_frame(0, k), full_render(single, torch.float64))
    assert not np.allclose(store.read_frame(0, 0), store.read_frame(0, 2))
    # events: start, every tile, each frame once, then done
    assert isinstance(events[0], JobStarted) and events[0].tiles_total == 3 * 9
    assert isinstance(events[-1], JobDone) and events[-1].tiles_rendered == 27
    tiles = [e for e in events if isinstance(e, TileDone)]
    assert [e.tiles_done for e in tiles] == list(range(1, 28))
    assert [e.frame for e in tiles] == sorted(e.frame for e in tiles)
    frames = [e for e in events if isinstance(e, FrameDone)]
    assert sorted(e.frame for e in frames) == [0, 1, 2]
    for e in frames:
        assert e.statistics == store.frame_statistics(e.frame)


def test_workers_prepare_each_frame_once_and_use_their_torch_threads(
    client, tmp_path: Path
) -> None:
    before = {
        w: client.submit(worker_info, workers=[w], pure=False).result() for w in workers(client)
    }
    job = JobSpec(experiment("-detpixels 64"), frames=2, tile=8)  # 2 x 64 tiles
    render_job(client, str(tmp_path / "c.zarr"), job)
    after = {
        w: client.submit(worker_info, workers=[w], pure=False).result() for w in workers(client)
    }
    # a worker the nanny restarted meanwhile (another test's load) counts from 0
    prepared = sum(
        after[w]["setups_prepared"] - before.get(w, {"setups_prepared": 0})["setups_prepared"]
        for w in after
    )
    assert 2 <= prepared <= 2 * len(after)  # per worker and frame, not per tile
    assert {info["torch_threads"] for info in after.values()} == {1}
    assert len({info["pid"] for info in after.values()}) == len(after)
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (mmap for every tile
    # buffer); the plugin restores buffer reuse with mallopt (tiling.allocator)
    if sys.platform.startswith("linux"):
        assert all(info["allocator_tuned"] for info in after.values())


def workers(client) -> list[str]:
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


def test_store_opens_as_an_ome_zarr_pyramid(client, tmp_path: Path) -> None:
    exp = experiment("-detpixels_f 300 -detpixels_s 280")
    path = tmp_path / "p.zarr"
    render_job(client, str(path), JobSpec(exp, tile=256))
    store = read_store(path)
    ome = store.ome
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1"]
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 2.0]
    level0, level1 = store.level(0), store.level(1)
    assert level0.shape == (1, 280, 300) and level0.chunks == (1, 256, 256)
    assert level1.shape == (1, 140, 150) and level1.chunks == (1, 140, 150)  # cut to the level
    assert level0.metadata.dimension_names == ("t", "y", "x")
    assert_pyramid(store, 0)
    meta = store.attributes
    assert Experiment.model_validate(meta.experiment) == exp and store.job.experiment == exp
    assert meta.job.model_dump() == {
        "frames": 1,
        "tile": 256,
        "dtype": "float32",
        "pyramid_min": 256,
    }
    assert meta.version
    assert meta.geometry.slow_pixels == 280 and meta.geometry.pixel_size_mm > 0
    assert set(meta.frames[0].statistics.to_dict()) == {
        "max_I",
        "max_slow",
        "max_fast",
        "mean",
        "rms",
        "rmsd",
        "pixels",
    }


def test_levels_narrower_than_a_tile_are_chunked_to_their_size(client, tmp_path: Path) -> None:
    """A level smaller than a tile in one dimension or both is chunked to its size there (no
    padding written); chunk (row, col) still covers the tile's pixels, and reads across
    chunks and the pyramid's binning read it right."""
    path = tmp_path / "wide.zarr"
    job = JobSpec(experiment("-detpixels_f 700 -detpixels_s 300"), tile=256, pyramid_min=100)
    render_job(client, str(path), job)
    store = read_store(path)
    chunks = [store.level(level).chunks for level in range(store.levels())]
    assert job.level_shapes == [(300, 700), (150, 350), (75, 175), (38, 88)]
    assert chunks == [(1, 256, 256), (1, 150, 256), (1, 75, 175), (1, 38, 88)]
    assert_pyramid(store, 0)
    level1 = store.read_frame(1, 0)
    across = Window(10, 140, 200, 330)  # both chunks of level 1
    np.testing.assert_array_equal(store.read_window(1, 0, across), level1[10:140, 200:330])
    np.testing.assert_array_equal(store.read_chunk(1, 0, 0, 1), level1[:, 256:])


@pytest.mark.parametrize("tile", [13, 14])
def test_pyramid_is_exact_for_odd_tiles_and_odd_frame_edges(client, tmp_path: Path, tile) -> None:
    """Tile tasks bin level 1 from their tiles in memory: tile by tile when tiles start on even
    pixels, from the assembled chunk when they do not (an odd tile splits 2x2 blocks)."""
    path = tmp_path / f"odd{tile}.zarr"
    job = JobSpec(experiment("-detpixels_f 53 -detpixels_s 41"), tile=tile, pyramid_min=6)
    render_job(client, str(path), job)
    store = read_store(path)
    assert len(job.level_shapes) >= 3
    assert_pyramid(store, 0)


def test_tasks_of_narrow_tiles_write_level_2_as_binning_tasks_would(
    client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles narrow enough for a task to hold an even number of level-1 chunks: a task takes
    two rows of them and writes their level-2 chunks itself, bit for bit what binning tasks
    write from the stored level 1 (ragged edges included)."""
    job = JobSpec(experiment("-detpixels_f 100 -detpixels_s 72"), tile=8, pyramid_min=8)
    assert level2_in_tasks(job, "cpu") and len(job.level_shapes) == 5
    big = experiment("-detpixels 1024")
    assert level2_in_tasks(JobSpec(big, tile=128), "cpu") and level2_in_tasks(
        JobSpec(big, tile=128), "cuda"
    )
    assert not level2_in_tasks(JobSpec(big, tile=256), "cpu")  # one level-1 chunk a task
    assert not level2_in_tasks(JobSpec(big, tile=1024), "cuda")
    render_job(client, str(tmp_path / "a.zarr"), job)
    monkeypatch.setattr(graph, "level2_in_tasks", lambda job, device: False)
    render_job(client, str(tmp_path / "b.zarr"), job)
    a, b = read_store(tmp_path / "a.zarr"), read_store(tmp_path / "b.zarr")
    for level in range(len(job.level_shapes)):
        np.testing.assert_array_equal(a.level(level)[:], b.level(level)[:])
    assert a.records().keys() == b.records().keys()


def test_whole_frame_tasks_need_enough_frames_per_thread_and_small_enough_frames() -> None:
    """Frames go whole to a task with ``whole-frame-tasks`` of them per worker thread or more,
    up to ``whole-frame-pixels``; the last (frames modulo threads) still go by tile groups."""
    settings = {"braggtile.tiling.whole-frame-tasks": 4, "braggtile.tiling.whole-frame-pixels": 900}
    with dask.config.set(settings):
        assert graph.whole_frames(list(range(8)), 2, 900) == set(range(8))
        assert graph.whole_frames(list(range(3, 12)), 2, 900) == set(range(3, 11))
        assert graph.whole_frames(list(range(14)), 3, 900) == set(range(12))
        assert graph.whole_frames(list(range(7)), 2, 900) == set()  # under 4 per thread
        assert graph.whole_frames(list(range(8)), 2, 901) == set()  # frames too large
        assert graph.whole_frames(list(range(4)), 1, 900) == set(range(4))
        assert graph.whole_frames(list(range(400)), 0, 900) == set()  # no worker yet
    with dask.config.set({"braggtile.tiling.whole-frame-tasks": 0}):
        assert graph.whole_frames(list(range(100)), 2, 10) == set()


def test_whole_frame_tasks_write_what_tile_groups_and_binning_tasks_write(
    client, tmp_path: Path
) -> None:
    """With enough frames per worker thread, one task renders a whole frame and writes its
    pyramid from memory (no binning task); the frames left over go by tile groups. The store
    is the same, bit for bit, as the one tile-group and binning tasks write."""
    job = JobSpec(experiment("-detpixels_f 100 -detpixels_s 72"), frames=5, tile=16, pyramid_min=8)
    assert len(job.level_shapes) == 5 and sum(client.nthreads().values()) == 2
    stores, tasks = {}, {}
    for whole in (2, 0):
        path = tmp_path / f"w{whole}.zarr"
        with (
            dask.config.set({"braggtile.tiling.whole-frame-tasks": whole}),
            distributed.get_task_stream(client) as stream,
        ):
            render_job(client, str(path), job)
        keys = [str(t["key"]).split("-") for t in stream.data if str(t["key"]).startswith("bt-")]
        # bt-KIND-TOKEN-FRAME-...: each frame's tasks, by kind
        tasks[whole] = {f: sorted(k[1] for k in keys if int(k[3]) == f) for f in range(5)}
        stores[whole] = read_store(path)
    # frames 0-3 whole (2 a thread x 2 threads); frame 4, left over, as without whole frames
    assert all(tasks[2][f] == ["tiles"] for f in range(4))
    assert tasks[2][4] == tasks[0][4] and tasks[0][4].count("tiles") > 1 and "bin" in tasks[0][4]
    a, b = stores[2], stores[0]
    for level in range(len(job.level_shapes)):
        np.testing.assert_array_equal(a.level(level)[:], b.level(level)[:])
    ra, rb = a.records(), b.records()
    assert ra.keys() == rb.keys() and len(ra) == 5 * 5 * 7
    assert all(ra[key].statistics == rb[key].statistics for key in ra)
    for frame in range(job.frames):
        assert a.frame_statistics(frame) == b.frame_statistics(frame)
    assert a.complete_frames() == set(range(5))


def _binning_dependencies(dask_scheduler) -> dict[str, list[str]]:
    """On the scheduler: each pyramid task's key -> the keys of the tasks it waits on."""
    return {
        str(key): sorted(str(dep.key) for dep in task.dependencies)
        for key, task in dask_scheduler.tasks.items()
        if str(key).startswith("bt-bin-")
    }


def test_the_pyramid_is_submitted_with_the_tiles_and_finishes_without_the_client(
    client, tmp_path: Path
) -> None:
    """A frame's binning tasks are on the scheduler with its tile tasks, each waiting on the
    tasks that write the chunks it bins, so the workers finish the pyramid while the client is
    held (here: in its first TileDone event, until every binning task is done)."""
    job = JobSpec(experiment("-detpixels 200"), tile=16, pyramid_min=8)
    # levels 200, 100, 50 (written by the tile tasks, two rows of level-1 chunks each: 4
    # tasks), 25 (2 x 2 binning tasks), 13 and 7 (one task)
    assert level2_in_tasks(job, "cpu") and len(job.level_shapes) == 6
    seen: dict[str, list[str]] = {}

    def hold(event) -> None:
        if isinstance(event, TileDone) and not seen:
            seen.update(client.run_on_scheduler(_binning_dependencies))
            distributed.wait([distributed.Future(key, client) for key in seen])

    render_job(client, str(tmp_path / "p.zarr"), job, on_event=hold)
    # bt-bin-TOKEN-FRAME-LEVEL-ROW-COL: a chunk's task; bt-bin-TOKEN-FRAME-LEVEL: the tail's
    level3 = {k: v for k, v in seen.items() if len(k.split("-")) == 7}
    tails = [k for k in seen if k not in level3]
    assert len(level3) == 4 and len(tails) == 1
    for key, deps in level3.items():
        row = int(key.split("-")[-2])  # a level-3 chunk bins level-1 chunk rows 4 row .. + 3
        assert deps and all(d.startswith("bt-tiles-") for d in deps)
        assert {int(d.split("-")[-2]) // 4 for d in deps} == {row}
    tile_tasks = {d for deps in level3.values() for d in deps}
    assert len(tile_tasks) == 4  # every tile task feeds a level-3 chunk
    assert seen[tails[0]] == sorted(level3)
    store = read_store(tmp_path / "p.zarr")
    assert store.complete_frames() == {0}
    assert_close(store.read_frame(0, 0), full_render(job.experiment))
    assert_pyramid(store, 0)


@pytest.mark.parametrize("whole", [0, 1])
def test_resume_renders_only_the_missing_tiles(client, tmp_path: Path, whole: int) -> None:
    """A resumed job renders the tiles without records and rebuilds the pyramid, by tile
    groups and binning tasks, or (``whole``: a frame per worker thread is enough) one task
    per frame that bins its whole pyramid from the repaired tiles in memory."""
    path = str(tmp_path / "r.zarr")
    job = JobSpec(experiment("-detpixels_f 80 -detpixels_s 72"), frames=2, tile=16, pyramid_min=30)
    render_job(client, path, job)
    store, resumed = TileStore.open_or_create(path, job)
    assert resumed
    first = store.records()
    full = read_store(Path(path)).level(0)[...]
    # a crash after these tiles' chunks were (partly) written but before their records were
    lost = [(0, 1, 1), (1, 0, 0), (1, 2, 3), (1, 4, 4)]
    for f, r, c in lost:
        store.write_chunk(0, f, r, c, np.full((16, 16), -1.0))
        store.forget_tile(f, r, c)
    levels = job.level_shapes
    assert len(levels) == 3
    for level in range(1, len(levels)):  # and both frames' pyramids left half-written
        store.level(level)[:] = -1.0
    store.forget_frames()
    with (
        dask.config.set({"braggtile.tiling.whole-frame-tasks": whole}),
        distributed.get_task_stream(client) as stream,
    ):
        done = render_job(client, path, job)
    tile_tasks = [t for t in stream.data if str(t["key"]).startswith("bt-tiles-")]
    assert len(tile_tasks) == 2 if whole else len(tile_tasks) > 2  # whole: one task a frame
    assert (done.tiles_rendered, done.tiles_resumed) == (4, 2 * 25 - 4)
    again = TileStore.open_or_create(path, job)[0].records()
    assert set(again) == set(first)
    for key, record in first.items():
        if key not in lost:
            assert again[key] == record  # same render time: not recomputed
    store = read_store(Path(path))
    np.testing.assert_array_equal(store.level(0)[...], full)
    for frame in range(2):  # pyramid rebuilt from the repaired tiles
        assert_pyramid(store, frame)
    assert store.complete_frames() == {0, 1}
    # nothing left: a third run renders nothing
    assert render_job(client, path, job).tiles_rendered == 0


def test_a_store_of_another_job_is_refused_unless_overwritten(client, tmp_path: Path) -> None:
    path = str(tmp_path / "o.zarr")
    render_job(client, path, JobSpec(experiment("-detpixels 32"), tile=16))
    other = JobSpec(experiment("-detpixels 32 -phi 1"), tile=16)
    with pytest.raises(StoreMismatchError):
        render_job(client, path, other)
    done = render_job(client, path, other, overwrite=True)
    assert done.tiles_rendered == 4 and done.tiles_resumed == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_workers_render_the_same_frame(tmp_path: Path) -> None:
    exp = experiment("-detpixels_f 130 -detpixels_s 100")
    job = JobSpec(exp, tile=64)
    with connect(workers=1, gpu=True) as gpu_client:
        info = gpu_client.submit(worker_info, pure=False).result()
        assert info["gpu_index"] is not None
        render_job(gpu_client, str(tmp_path / "g.zarr"), job, device="auto")
    assert_close(read_store(tmp_path / "g.zarr").read_frame(0, 0), full_render(exp))


def test_nanobragg_output_files_are_written_per_frame_after_statistics(
    client, tmp_path: Path
) -> None:
    argv = shlex.split(
        f"{BASE} -detpixels 48 -osc 1 -phisteps 2 -floatfile {tmp_path / 'f.bin'} "
        f"-intfile {tmp_path / 'i.img'} -noisefile {tmp_path / 'n.img'} -seed 7"
    )
    run = parse_nanobragg(argv)
    outputs = requested_outputs(argv, run.outputs)
    assert outputs is not None and outputs.pgmfile is None  # C's default name not written unasked
    job = JobSpec(run.experiment, frames=2, tile=16)
    events: list = []
    writer = NanoBraggFiles(outputs, job.frames)
    render_job(client, str(tmp_path / "w.zarr"), job, frame_writer=writer, on_event=events.append)
    store = read_store(tmp_path / "w.zarr")
    for k in range(2):
        image = store.read_frame(0, k)
        floats = np.fromfile(tmp_path / f"f_{k:05d}.bin", dtype="<f4").reshape(48, 48)
        np.testing.assert_array_equal(floats, image)
        _, adu = read_smv(tmp_path / f"i_{k:05d}.img")
        assert adu.max() == 55040  # scaled by 55000/max_I from the frame statistics, +40 ADC
        # C: floorf(clamp(I * 55000 / max_I + 40, 0, 65535) + 0.5), the scale a double
        scale = 55000.0 / float(image.max())  # not numpy's float32 quotient
        expected = np.clip(image.astype(np.float64) * scale + 40.0, 0, 65535)
        np.testing.assert_array_equal(adu, np.floor((expected + 0.5).astype(np.float32)))
        _, counts = read_smv(tmp_path / f"n_{k:05d}.img")
        counts = counts.astype(np.float64) - 40.0
        assert counts.min() >= 0  # Poisson about this frame's photons
        assert abs(counts.sum() - image.sum()) < 5.0 * np.sqrt(image.sum())
    logs = [e.log for e in events if isinstance(e, FrameDone)]
    assert all("i_0000" in log for log in logs) and len(logs) == 2
    assert not (tmp_path / "image.pgm").exists()


def test_an_existing_cluster_is_used_by_address_or_environment(
    client, tmp_path: Path, monkeypatch
) -> None:
    address = client.scheduler.address
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    with connect() as remote:
        assert remote.scheduler.address == address
        done = render_job(
            remote, str(tmp_path / "e.zarr"), JobSpec(experiment("-detpixels 40"), tile=20)
        )
        assert done.tiles_rendered == 4
        infos = [
            remote.submit(worker_info, workers=[w], pure=False).result() for w in workers(remote)
        ]
    # threads: this host's cores shared by its workers
    cores = len(os.sched_getaffinity(0))
    assert {i["torch_threads"] for i in infos} == {max(1, cores // len(infos))}
    assert len(workers(client)) == 2  # the cluster outlives the client that borrowed it


def test_tasks_put_narrow_tiles_side_by_side_to_fill_a_block() -> None:
    """A task spans a compiled block's columns (512 on a CPU, 2048 on a GPU) in level-1
    chunks of 2 x 2 tiles; tiles as wide as a block keep one chunk per task."""
    assert [chunks_per_task(t, "cpu") for t in (16, 128, 200, 256, 512, 1024)] == [
        16,
        2,
        2,
        1,
        1,
        1,
    ]
    assert [chunks_per_task(t, "cuda") for t in (128, 1024)] == [8, 1]
    assert chunks_per_task(128, "auto") == chunks_per_task(128, "cpu")


def test_auto_tasks_span_a_gpu_block_where_a_worker_declares_a_gpu(client, tmp_path: Path) -> None:
    """With device "auto", tasks of a cluster with a GPU worker span a GPU's block (2048
    columns: on an H200, tiles of 128 and 256 in 512-column tasks cost 3.2x and 2.2x the
    pixel of tile 1024), those of a CPU-only cluster a CPU's (512); the pixels are the same.
    The GPU worker here declares the resource without CUDA, so it renders on its CPU."""
    job = JobSpec(experiment("-detpixels_f 1024 -detpixels_s 32"), tile=16)

    def tile_tasks(c: distributed.Client, name: str) -> int:
        with distributed.get_task_stream(c) as stream:
            render_job(c, str(tmp_path / name), job, device="auto")
        return sum(str(t["key"]).startswith("bt-tiles-") for t in stream.data)

    assert not graph.gpu_workers(client)
    assert tile_tasks(client, "cpu.zarr") == 1024 // (2 * 16 * chunks_per_task(16, "cpu")) == 2
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
        resources={"GPU": 1},
    )  # fmt: skip
    with cluster, distributed.Client(cluster) as gpu_client:
        register_plugin(gpu_client, torch_threads=1)
        assert graph.gpu_workers(gpu_client)
        assert tile_tasks(gpu_client, "gpu.zarr") == 1
    a, b = read_store(tmp_path / "cpu.zarr"), read_store(tmp_path / "gpu.zarr")
    np.testing.assert_array_equal(a.read_frame(0, 0), b.read_frame(0, 0))


def test_narrow_tiles_render_in_block_sized_runs() -> None:
    """A worker renders the tiles of each block-sized cell of the grid as one window."""
    setup = prepare_frame(experiment("-detpixels 1024"), torch.float32, "cpu")
    rows, cols = block_shape(setup)
    grid = TileGrid(1024, 1024, 128, Window.full(1024, 1024))
    tiles = [(t.row, t.col) for t in grid.tiles()]
    runs = render_runs(grid, tiles, setup)
    assert sorted(key for run in runs for key in run) == sorted(tiles)
    per_run = -(-rows // 128) * -(-cols // 128)
    assert {len(run) for run in runs} == {per_run} and len(runs) == len(tiles) // per_run
    for run in runs:  # a run is one cell of the block grid
        assert len({(r * 128 // rows, c * 128 // cols) for r, c in run}) == 1
    wide = TileGrid(1024, 1024, 1024, Window.full(1024, 1024))
    assert render_runs(wide, [(0, 0)], setup) == [[(0, 0)]]


@pytest.mark.parametrize("mode", ["on", "off"])
def test_tiles_rendered_together_equal_tiles_rendered_alone(tmp_path: Path, mode: str) -> None:
    """Tiles narrower than a block render as one window per run, then are cut apart: every
    tile of the store equals, bit for bit, that tile rendered alone (compiled and eager)."""
    exp = experiment("-N 4 -detpixels_f 300 -detpixels_s 200")
    job = JobSpec(exp, tile=48, pyramid_min=60)
    with dask.config.set({"braggtile.compile.mode": mode}):
        with connect(in_process=True) as client:
            render_job(client, str(tmp_path / "n.zarr"), job)
        setup = prepare_frame(exp, torch.float32, "cpu")
        alone = np.zeros((200, 300), dtype=np.float32)
        for tile in job.grid.tiles():
            w = tile.window
            alone[w.slow0 : w.slow1, w.fast0 : w.fast1] = render_window(setup, w).numpy()
    store = read_store(tmp_path / "n.zarr")
    assert alone.max() > 0
    np.testing.assert_array_equal(store.read_frame(0, 0), alone)
    assert_pyramid(store, 0)
