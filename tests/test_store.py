"""The store layer on real zarr stores on disk: what the writer writes the reader reads, the
on-disk format stays the one earlier releases wrote, and readers never write."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import zarr

from engine.resolve import parse_nanobragg
from engine.statistics import FrameStatistics, TileStatistics
from engine.window import Window
from tiling import chunkio
from tiling import store as store_module
from tiling.grid import TileGrid
from tiling.job import JobSpec
from tiling.layout import chunk_window, level_chunk_of_key
from tiling.pyramid import level_chunks
from tiling.store import StoreMismatchError, StoreReader, TileRecord, TileStore

ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100"
#: 40 x 50 pixels in 16-pixel tiles: 3 x 4 tiles, the last row and column ragged.
JOB = JobSpec(
    parse_nanobragg(shlex.split(f"{ARGS} -detpixels_f 50 -detpixels_s 40")).experiment,
    frames=2,
    tile=16,
    pyramid_min=10,
)
#: The fields of a stored tile record, in their on-disk order (earlier releases wrote these).
ON_DISK_FIELDS = [
    "count", "mean", "m2", "sumsq", "max", "max_slow", "max_fast", "rendered_at", "render_s",
]  # fmt: skip
STATISTICS_KEYS = {"max_I", "max_slow", "max_fast", "mean", "rms", "rmsd", "pixels"}


@pytest.fixture
def written(tmp_path: Path) -> tuple[str, np.ndarray, TileRecord, FrameStatistics]:
    """A store with two chunks of frame 1 (one ragged), one record and two frame entries;
    returns (path, the frame's expected pixels, the record, the frame statistics)."""
    path = str(tmp_path / "s.zarr")
    store, resumed = TileStore.open_or_create(path, JOB)
    assert not resumed
    tile = np.arange(256, dtype=np.float32).reshape(16, 16)
    edge = np.full((8, 2), 7.5, dtype=np.float32)  # chunk (2, 3): rows 32..40, columns 48..50
    store.write_chunk(0, 1, 0, 1, tile)
    store.write_chunk(0, 1, 2, 3, edge)
    record = TileRecord(
        TileStatistics.from_tile(tile, Window(0, 16, 16, 32)), rendered_at=1.7e9, render_s=0.25
    )
    store.write_record(1, 0, 1, record)
    stats = record.statistics.summary()
    store.set_frame(1, stats, complete=False)
    store.set_frame(0, stats, complete=True)
    frame = np.zeros((40, 50), dtype=np.float32)
    frame[0:16, 16:32] = tile
    frame[32:40, 48:50] = edge
    return path, frame, record, stats


def test_what_the_writer_writes_the_reader_reads(written) -> None:
    path, frame, record, stats = written
    reader = StoreReader(path)
    assert reader.job == JOB and reader.job.fingerprint == JOB.fingerprint
    assert reader.levels() == 4 and reader.level(1).shape == (2, 20, 25)
    np.testing.assert_array_equal(reader.read_frame(0, 1), frame)
    np.testing.assert_array_equal(reader.read_frame(0, 0), np.zeros((40, 50)))
    np.testing.assert_array_equal(reader.read_chunk(0, 1, 2, 3), frame[32:40, 48:50])
    across = Window(10, 36, 14, 50)  # parts of six chunks, the ragged corner included
    np.testing.assert_array_equal(reader.read_window(0, 1, across), frame[10:36, 14:50])
    assert reader.records() == {(1, 0, 1): record}
    assert reader.tile_done(1, 0, 1)
    assert not reader.tile_done(0, 0, 1) and not reader.tile_done(1, 0, 0)
    assert not reader.tile_done(2, 0, 0) and not reader.tile_done(1, 3, 0)  # out of range
    assert reader.complete_frames() == {0}
    assert reader.frame_statistics(0) == reader.frame_statistics(1) == stats
    assert {k: e.complete for k, e in reader.frames().items()} == {0: True, 1: False}


def test_a_reopened_writer_resumes_and_can_forget(written) -> None:
    path, _, record, _ = written
    store, resumed = TileStore.open_or_create(path, JOB)
    assert resumed and store.records() == {(1, 0, 1): record}
    store.forget_tile(1, 0, 1)
    store.forget_frames()
    reader = StoreReader(path)
    assert reader.records() == {} and reader.frames() == {} and reader.complete_frames() == set()
    assert reader.frame_statistics(0) is None


def test_frames_and_truths_written_together_read_as_written_one_by_one(written) -> None:
    """set_frames / write_truths (a batch of small frames) write what set_frame / write_truth
    write, and the attributes JSON kept between writes is what the model dumps."""
    path, _, _, stats = written
    store, _ = TileStore.open_or_create(path, JOB)
    store.set_frames({0: (stats, False), 1: (stats, True)})
    store.set_frame(0, stats, complete=True)  # after a batch: only its entry is new
    store.write_truths({1: {"frame": 1}, 0: {"frame": 0, "x": [1.5]}})
    reader = StoreReader(path)
    assert {k: e.complete for k, e in reader.frames().items()} == {0: True, 1: True}
    assert reader.frame_statistics(0) == reader.frame_statistics(1) == stats
    assert zarr.open_group(path, mode="r").attrs["braggtile"] == reader.attributes.to_json()
    assert reader.frame_truth(0) == {"frame": 0, "x": [1.5]}
    assert reader.frame_truth(1) == {"frame": 1} and reader.truth_frames() == {0, 1}


def test_the_on_disk_format_is_unchanged(written) -> None:
    """The raw keys, as earlier releases wrote them and other tools read them."""
    path, _, record, stats = written
    group = zarr.open_group(path, mode="r")
    attrs = group.attrs["braggtile"]
    assert set(attrs) == {
        "version",
        "fingerprint",
        "job",
        "inputs",
        "experiment",
        "geometry",
        "frames",
    }
    assert attrs["fingerprint"] == JOB.fingerprint
    assert attrs["job"] == {"frames": 2, "tile": 16, "dtype": "float32", "pyramid_min": 10}
    assert attrs["geometry"]["slow_pixels"] == 40 and attrs["geometry"]["fast_pixels"] == 50
    assert set(attrs["frames"]) == {"0", "1"}
    assert attrs["frames"]["0"]["complete"] is True and attrs["frames"]["1"]["complete"] is False
    assert set(attrs["frames"]["1"]["statistics"]) == STATISTICS_KEYS
    assert attrs["frames"]["1"]["statistics"]["max_I"] == 255.0 == stats.max_I
    assert attrs["frames"]["1"]["statistics"]["pixels"] == 256
    assert [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]] == [
        "0",
        "1",
        "2",
        "3",
    ]
    assert [group[k].shape for k in ("0", "1", "3")] == [(2, 40, 50), (2, 20, 25), (2, 5, 7)]
    assert group["0"].chunks == (1, 16, 16) and group["0"].dtype == np.float32
    records = group["tiles"]
    assert records.shape == (2, 3, 4, 10) and records.attrs["fields"] == [
        *ON_DISK_FIELDS,
        "skipped",
    ]
    assert records.chunks == (1, 2, 2, 10)  # a level-1 chunk's tiles: one file
    s = record.statistics
    expected = [s.count, s.mean, s.m2, s.sumsq, s.max, s.max_slow, s.max_fast, 1.7e9, 0.25, 0.0]
    assert records[1, 0, 1].tolist() == expected
    assert np.isnan(records[0, 0, 0]).all()


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its path relative to it."""
    return {str(f.relative_to(folder)): f.read_bytes() for f in folder.rglob("*") if f.is_file()}


def test_a_new_store_is_the_files_zarr_writes_its_root_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local store is laid out in memory and written at once: the same files, byte for byte,
    as zarr's own local store writes for the same calls (input files included); what was at
    the path is replaced (the lock beside it kept), and the root metadata is written last."""
    hkl = tmp_path / "small.hkl"
    hkl.write_text("0 0 1 10.0\n1 2 3 20.5\n")
    job = JobSpec(
        parse_nanobragg(shlex.split(f"{ARGS} -hkl {hkl} -detpixels 40")).experiment,
        frames=3,
        tile=16,
    )
    packed, contents = store_module.pack_inputs(job)
    by_zarr = tmp_path / "zarr.zarr"
    store_module._lay_out(zarr.open_group(str(by_zarr), mode="w", zarr_format=3), packed, contents)
    path = tmp_path / "s.zarr"
    TileStore.open_or_create(str(path), JOB)[0].write_chunk(0, 1, 0, 0, np.ones((16, 16)))
    (path / "stray").write_text("left by someone")
    lock = tmp_path / "s.zarr.lock"
    lock.write_text("")
    written: list[str] = []

    def write_file(name: str, payload: bytes, within: str) -> None:
        written.append(str(Path(name).relative_to(path)))
        chunkio.write_file(name, payload, within)

    monkeypatch.setattr(store_module, "write_file", write_file)
    store, resumed = TileStore.open_or_create(str(path), job, overwrite=True)
    assert not resumed and lock.exists()
    files = _files(path)
    assert files == _files(by_zarr) and "inputs/small.hkl/c/0" in files
    assert sorted(written) == sorted(files) and written[-1] == "zarr.json"
    assert StoreReader(str(path)).complete_frames() == set() and store.records() == {}


def _records(frame: int, tiles: list[tuple[int, int]]) -> dict[tuple[int, int], TileRecord]:
    """A distinct record for each of ``tiles`` of ``frame``."""
    return {
        (r, c): TileRecord(TileStatistics(count=r * 4 + c + 1), 1.7e9 + frame, 0.5 + c)
        for r, c in tiles
    }


def test_records_of_a_level1_chunk_share_one_file(tmp_path: Path) -> None:
    """The records of a level-1 chunk's 2 x 2 tiles are one file of the record folder
    (tiles/c.F.R.C.0, no folder each); writing some keeps the others, forgetting one the rest."""
    path = tmp_path / "s.zarr"
    store, _ = TileStore.open_or_create(str(path), JOB)
    records = _records(1, [(r, c) for r in range(3) for c in range(4)])  # ragged last row
    assert store.record_chunk(1, 1) == (0, 0) and store.record_chunk(2, 3) == (1, 1)
    store.write_records(1, {k: v for k, v in records.items() if k in ((0, 0), (1, 0))})
    store.write_record(1, 0, 1, records[(0, 1)])  # the chunk's other records are kept
    store.write_records(1, {k: v for k, v in records.items() if k not in ((0, 0), (1, 0))})
    chunks = ["c.1.0.0.0", "c.1.0.1.0", "c.1.1.0.0", "c.1.1.1.0"]
    assert sorted(p.name for p in (path / "tiles").iterdir()) == [*chunks, "zarr.json"]
    assert StoreReader(str(path)).records() == {(1, *k): v for k, v in records.items()}
    store.forget_tile(1, 2, 3)
    reader = StoreReader(str(path))
    assert not reader.tile_done(1, 2, 3) and reader.tile_done(1, 2, 2) and reader.tile_done(1, 1, 1)
    assert reader.records() == {(1, *k): v for k, v in records.items() if k != (2, 3)}


def test_records_of_an_earlier_release_keep_a_file_per_tile(tmp_path: Path) -> None:
    """A store whose records are a chunk per tile (tiles/c/F/R/C/0) resumes as it is."""
    path = tmp_path / "old.zarr"
    TileStore.open_or_create(str(path), JOB)
    group = zarr.open_group(str(path), mode="r+")
    del group["tiles"]
    fields = {"fields": [*ON_DISK_FIELDS, "skipped"], "tile": 16}
    group.create_array("tiles", shape=(2, 3, 4, 10), chunks=(1, 1, 1, 10), dtype="<f8",
                       fill_value=np.nan, attributes=fields)  # fmt: skip
    store = TileStore.open(str(path))
    records = _records(0, [(0, 0), (0, 1), (2, 3)])
    store.write_records(0, records)
    store.forget_tile(0, 0, 0)
    assert (path / "tiles" / "c" / "0" / "2" / "3" / "0").is_file()
    reader = StoreReader(str(path))
    assert reader.records() == {(0, 0, 1): records[(0, 1)], (0, 2, 3): records[(2, 3)]}
    assert reader.tile_done(0, 0, 1) and not reader.tile_done(0, 0, 0)


def test_a_store_of_an_earlier_release_opens_and_resumes(tmp_path: Path) -> None:
    """Attributes written by hand as release 0.x wrote them, with a key this one does not
    know: the reader reads them, a resumed writer keeps the unknown key."""
    path = str(tmp_path / "old.zarr")
    TileStore.open_or_create(path, JOB)
    group = zarr.open_group(path, mode="r+")
    geometry = dict(group.attrs["braggtile"]["geometry"])
    old_stats = {"max_I": 9.0, "max_slow": 3, "max_fast": 4, "mean": 0.5, "rms": 1.0,
                 "rmsd": 0.75, "pixels": 2000}  # fmt: skip
    group.update_attributes(
        {
            "braggtile": {
                "version": "0.1.0",
                "fingerprint": JOB.fingerprint,
                "job": {"frames": 2, "tile": 16, "dtype": "float32", "pyramid_min": 10},
                "inputs": {},
                "experiment": JOB.experiment.model_dump(mode="json"),
                "geometry": {**geometry, "detector_name": "kept too"},
                "frames": {"1": {"statistics": old_stats, "complete": True}},
                "annotation": "kept",
            }
        }
    )
    del group["tiles"]  # the earlier release's records: 9 fields, no "skipped"
    fields = {"fields": ON_DISK_FIELDS, "tile": 16}
    old = group.create_array("tiles", shape=(2, 3, 4, 9), chunks=(1, 1, 1, 9), dtype="<f8",
                             fill_value=np.nan, attributes=fields)  # fmt: skip
    old[0, 2, 3, :] = [4.0, 1.5, 2.0, 11.0, 3.0, 33.0, 49.0, 1.6e9, 0.5]
    reader = StoreReader(path)
    assert reader.complete_frames() == {1}
    assert reader.frame_statistics(1) == FrameStatistics(9.0, 3, 4, 0.5, 1.0, 0.75, 2000)
    (key, record), *others = reader.records().items()
    assert key == (0, 2, 3) and not others
    assert record.statistics == TileStatistics(4, 1.5, 2.0, 11.0, 3.0, 33, 49)
    assert (record.rendered_at, record.render_s) == (1.6e9, 0.5)
    store, resumed = TileStore.open_or_create(path, JOB)
    assert resumed
    store.set_frame(0, reader.frame_statistics(1), complete=True)
    attrs = zarr.open_group(path, mode="r").attrs["braggtile"]
    assert attrs["annotation"] == "kept" and attrs["version"] == "0.1.0"
    assert attrs["geometry"]["detector_name"] == "kept too"
    assert attrs["frames"]["1"]["statistics"] == old_stats
    assert attrs["frames"]["0"] == {"statistics": old_stats, "complete": True}


def test_a_reader_opens_read_only_and_never_writes(written) -> None:
    path, _, _, _ = written
    before = {p: p.stat().st_mtime_ns for p in Path(path).rglob("*") if p.is_file()}
    reader = StoreReader(path)
    reader.records(), reader.frames(), reader.read_frame(0, 1), reader.job
    assert reader.group.store.read_only
    with pytest.raises(ValueError):
        reader.level(0)[0, 0, 0] = 1.0
    after = {p: p.stat().st_mtime_ns for p in Path(path).rglob("*") if p.is_file()}
    assert after == before


def test_missing_stores_and_foreign_groups_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        StoreReader(str(tmp_path / "none.zarr"))
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").create_array(
        "x", shape=(1,), dtype="u1"
    )
    with pytest.raises(StoreMismatchError, match="not a store written by braggtile"):
        _ = StoreReader(str(tmp_path / "other.zarr")).job


def test_tiles_and_pyramid_chunks_share_one_window() -> None:
    grid = TileGrid(40, 50, 16, Window(0, 40, 0, 50))
    assert grid.shape == (3, 4)
    assert grid.window(2, 3) == chunk_window((40, 50), 16, 2, 3) == Window(32, 40, 48, 50)
    assert chunk_window((20, 25), 16, 1, 1) == Window(16, 20, 16, 25)
    # level-1 chunks cover a 2x2 footprint of level 0; only those meeting the ROI are listed
    assert level_chunks([(40, 50), (20, 25)], 1, 16, Window(0, 8, 0, 8)) == [(0, 0)]
    assert level_chunks([(40, 50), (20, 25)], 1, 16, Window(0, 40, 0, 50)) == [
        (0, 0), (0, 1), (1, 0), (1, 1),
    ]  # fmt: skip


def test_chunk_keys_are_parsed_by_the_layout() -> None:
    assert level_chunk_of_key("0/c/1/2/3") == (0, 1, 2, 3)
    assert level_chunk_of_key("2/c/0/0/0") == (2, 0, 0, 0)
    for key in ("zarr.json", "0/zarr.json", "tiles/c/0/0/0/0", "0/c/1/2", "0/c/a/2/3"):
        assert level_chunk_of_key(key) is None
