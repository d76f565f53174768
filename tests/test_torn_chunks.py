"""A torn chunk is never served: a real ``braggtile serve`` and a store on disk.

A tile counts as rendered only once its record is written, and records are written after their
chunks (zarr >= 3.1.3 writes each chunk file to a temporary name, then renames it). Here a crash
is staged on a finished job: one tile's chunk file truncated and its record removed. Proves: its
tile is a 404 (npy and png), its chunk key over the zarr endpoint is a 404 (so zarr readers see
the fill value, not garbage), and the other tiles are still served exactly.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import zarr
from test_service import TIMEOUT, read_events, serving, submit

from tiling.store import TileStore

ARGS = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -detpixels 64 -oversample 1"


@pytest.fixture(scope="module")
def torn(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, str, np.ndarray]]:
    """(client, job id, the frame as served before the crash was staged)."""
    data = tmp_path_factory.mktemp("torn")
    with serving(data, data / "jobs.db", ("--workers", "1")) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            job = submit(http, {"nanobragg": ARGS, "tile": 32})
            assert read_events(http, job["id"])[-1]["event"] == "successful"
            frame = np.frombuffer(http.get(f"/v1/jobs/{job['id']}/frames/0/export").content, "<f4")
            store = data / "jobs" / job["id"] / "store.zarr"
            chunk = store / "0" / "c" / "0" / "1" / "1"
            whole = chunk.read_bytes()
            chunk.write_bytes(whole[: len(whole) // 3])
            TileStore.open(str(store)).forget_tile(0, 1, 1)
            yield http, job["id"], frame.reshape(64, 64)


def test_a_tile_without_its_record_is_not_served(torn) -> None:
    http, jid, _ = torn
    for fmt in ("npy", "png"):
        r = http.get(f"/v1/jobs/{jid}/frames/0/tiles/1/1", params={"format": fmt})
        assert r.status_code == 404 and "not rendered" in r.json()["detail"], r.text
    r = http.get(f"/v1/jobs/{jid}/zarr/0/c/0/1/1")
    assert r.status_code == 404 and "not rendered" in r.json()["detail"], r.text


def test_other_tiles_are_served_exactly(torn) -> None:
    http, jid, frame = torn
    r = http.get(f"/v1/jobs/{jid}/frames/0/tiles/0/1")
    assert r.status_code == 200
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), frame[:32, 32:])
    assert http.get(f"/v1/jobs/{jid}/zarr/0/c/0/0/1").status_code == 200


def test_zarr_over_http_reads_the_fill_value_for_the_torn_tile(torn) -> None:
    http, jid, frame = torn
    base = str(http.base_url).rstrip("/")
    group = zarr.open_group(f"{base}/v1/jobs/{jid}/zarr", mode="r")
    pixels = np.asarray(group["0"][0])
    assert (pixels[32:, 32:] == 0).all()
    np.testing.assert_array_equal(pixels[:32], frame[:32])
    np.testing.assert_array_equal(pixels[32:, :32], frame[32:, :32])
