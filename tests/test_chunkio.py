"""Direct whole-chunk writes and reads (tiling.chunkio) give what zarr itself reads and writes,
for every level codec, edge chunks included; fsspec stores go through zarr."""

from __future__ import annotations

import errno
import shutil

import dask.config
import numpy as np
import pytest
import zarr
from small_disk import fill, small_disk

from engine.errors import UserInputError
from tiling.chunkio import ChunkIO
from tiling.store import LEVEL_CODECS, level_compressors


@pytest.mark.parametrize("codec", sorted(LEVEL_CODECS))
def test_direct_chunks_round_trip_through_zarr(tmp_path, codec):
    rng = np.random.default_rng(7)
    with dask.config.set({"braggtile.tiling.level-codec": codec}):
        compressors = level_compressors()
    root = str(tmp_path / "s.zarr")
    group = zarr.open_group(root, mode="w", zarr_format=3)
    array = group.create_array(
        "0", shape=(2, 70, 50), chunks=(1, 32, 32), dtype="float32", fill_value=0.0,
        compressors=compressors,
    )  # fmt: skip
    io = ChunkIO(root, "0", array)
    assert io.codecs is not None  # the direct path, not zarr's
    expected = np.zeros(array.shape, dtype=np.float32)
    for row in range(3):
        for col in range(2):
            region = io.region((1, row, col))
            data = rng.uniform(0, 1e4, size=[s.stop - s.start for s in region]).astype("f4")
            data[0, :3, :3] = 0.0
            io.write((1, row, col), data)
            expected[region] = data
    reread = zarr.open_array(root + "/0", mode="r")
    np.testing.assert_array_equal(reread[...], expected)  # zarr reads the direct chunks
    array[0, 32:64, 0:32] = expected[1, 32:64, 0:32]  # zarr writes, ChunkIO reads
    np.testing.assert_array_equal(io.read((0, 1, 0))[0], expected[1, 32:64, 0:32])
    np.testing.assert_array_equal(io.read((1, 2, 1)), expected[1:2, 64:70, 32:50])  # edge
    np.testing.assert_array_equal(io.read((0, 2, 1)), np.zeros((1, 6, 18), "f4"))  # never written
    assert not [p for p in (tmp_path / "s.zarr").rglob("*.partial")]


def test_fsspec_stores_fall_back_to_zarr():
    group = zarr.open_group("memory://chunkio-test", mode="w", zarr_format=3)
    array = group.create_array("0", shape=(1, 8, 8), chunks=(1, 4, 4), dtype="float32")
    io = ChunkIO(None, "0", array)
    assert io.codecs is None
    io.write((0, 1, 1), np.full((1, 4, 4), 3.0, "f4"))
    assert float(array[0, 4:, 4:].sum()) == 48.0 and float(array[0, :4].sum()) == 0.0
    np.testing.assert_array_equal(io.read((0, 1, 1)), np.full((1, 4, 4), 3.0, "f4"))


def test_unknown_level_codec_is_a_clear_error():
    with dask.config.set({"braggtile.tiling.level-codec": "snappy"}):
        with pytest.raises(UserInputError, match="level-codec.*lz4"):
            level_compressors()


def _uncompressed(root: str) -> ChunkIO:
    group = zarr.open_group(root, mode="w", zarr_format=3)
    array = group.create_array(
        "0", shape=(1, 64, 64), chunks=(1, 32, 32), dtype="float32", fill_value=0.0,
        compressors=None,
    )  # fmt: skip
    io = ChunkIO(root, "0", array)
    assert io.codecs is not None  # the direct path, not zarr's
    return io


def test_a_full_disk_leaves_no_partial_chunk(tmp_path):
    data = np.arange(32 * 32, dtype=np.float32).reshape(1, 32, 32)
    with small_disk(tmp_path / "disk") as disk:
        root = str(disk / "s.zarr")
        io = _uncompressed(root)
        io.write((0, 0, 0), data)
        fill(disk)
        with pytest.raises(OSError) as err:
            io.write((0, 1, 1), data + 1)
        assert err.value.errno == errno.ENOSPC
        assert sorted(p.name for p in disk.rglob("*.partial")) == []
        np.testing.assert_array_equal(io.read((0, 0, 0)), data)  # the chunk written before
        np.testing.assert_array_equal(io.read((0, 1, 1)), np.zeros_like(data))  # never written


def test_a_removed_store_is_not_created_again(tmp_path):
    """A worker finishing a tile after its job was purged must not bring the store back."""
    root = tmp_path / "s.zarr"
    io = _uncompressed(str(root))
    shutil.rmtree(root)
    with pytest.raises(FileNotFoundError):
        io.write((0, 0, 0), np.ones((1, 32, 32), dtype=np.float32))
    assert not root.exists()
