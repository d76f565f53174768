"""``GET /v1/jobs/{id}/export`` of a real ``braggtile serve``: an NXmx file or a zip of CBF,
SMV or float frames, read back with h5py, fabio, an SMV parser and numpy and compared with the
job's store (photons x gain + adc); bad parameters are a 4xx naming the field and its limit;
the service's peak memory stays bounded while it streams a 40-frame job."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fabio
import h5py
import httpx
import numpy as np
import pytest
from test_export import parse_smv
from test_service import TIMEOUT, read_events, serving, submit

from tiling.store import StoreReader

ARGS = "-N 1 -cell 100 100 100 90 90 90 -default_F 1 -lambda 1 -distance 100 -phi 2 -osc 0.5"
SMALL = {"nanobragg": f"{ARGS} -detpixels 64", "tile": 32, "frames": 3}
#: 40 frames of 512 x 512: 20 MB of SMV, 40 MB of float files.
LARGE = {"nanobragg": f"{ARGS} -detpixels 512 -phisteps 1", "tile": 256, "frames": 40}


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[tuple[httpx.Client, Path, int]]:
    """(client, data folder, server pid) of a running ``braggtile serve``."""
    data = tmp_path_factory.mktemp("serve-export")
    with serving(data, data / "records.db") as (url, proc):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            yield client, data, proc.pid


def finished_job(http: httpx.Client, body: dict[str, Any]) -> str:
    job = submit(http, body)
    assert read_events(http, job["id"])[-1]["event"] == "successful"
    return job["id"]


@pytest.fixture(scope="module")
def small(service) -> tuple[str, StoreReader]:
    http, data, _ = service
    job_id = finished_job(http, SMALL)
    return job_id, StoreReader(str(data / "jobs" / job_id / "store.zarr"))


def photons(store: StoreReader, frame: int) -> np.ndarray:
    return store.read_frame(0, frame).astype(np.float64)


def test_nexus_download(service, small, tmp_path: Path) -> None:
    http, _, _ = service
    job_id, store = small
    r = http.get(f"/v1/jobs/{job_id}/export", params={"format": "nexus", "gain": 4, "adc": 9})
    assert r.status_code == 200, r.text
    assert f'filename="{job_id}.nxs"' in r.headers["content-disposition"]
    (tmp_path / "run.nxs").write_bytes(r.content)
    with h5py.File(tmp_path / "run.nxs", "r") as f:
        data = f["entry/data/data"]
        assert data.shape == (3, 64, 64) and data.chunks == (1, 64, 64)
        for k in range(3):
            expected = np.floor(np.clip(photons(store, k) * 4 + 9, 0, 65535) + 0.5)
            np.testing.assert_array_equal(data[k], expected)
        np.testing.assert_allclose(f["entry/sample/transformations/omega"][()], [2, 2.5, 3])


def zip_of(http: httpx.Client, job_id: str, **params: Any) -> zipfile.ZipFile:
    r = http.get(f"/v1/jobs/{job_id}/export", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(r.content))


def test_smv_cbf_float_zips(service, small, tmp_path: Path) -> None:
    http, _, _ = service
    job_id, store = small
    smv = zip_of(http, job_id, format="smv", frames="1:3", gain=2, adc=0)
    assert smv.namelist() == [f"{job_id}_00002.img", f"{job_id}_00003.img"]
    for k, name in zip((1, 2), smv.namelist(), strict=True):
        (tmp_path / name).write_bytes(smv.read(name))
        _, adu = parse_smv(tmp_path / name)
        expected = np.floor(np.float32(np.clip(photons(store, k) * 2, 0, 65535) + 0.5))
        np.testing.assert_array_equal(adu, expected)
    cbf = zip_of(http, job_id, format="cbf", gain=3)
    assert len(cbf.namelist()) == 3
    for k, name in enumerate(cbf.namelist()):
        (tmp_path / name).write_bytes(cbf.read(name))
        image = fabio.open(str(tmp_path / name)).data
        np.testing.assert_array_equal(image, np.floor(photons(store, k) * 3 + 40 + 0.5))
    floats = zip_of(http, job_id, format="float", frames="2")
    raw = np.frombuffer(floats.read(f"{job_id}_00003.bin"), "<f4").reshape(64, 64)
    np.testing.assert_array_equal(raw, store.read_frame(0, 2))


@pytest.mark.parametrize(
    ("params", "field", "limit"),
    [
        ({"frames": "1:9"}, "frames", 3),
        ({"frames": "x"}, "frames", None),
        ({"gain": 0}, "gain", 0),
        ({"gain": 1e10}, "gain", 1e9),
        ({"adc": -2e9}, "adc", -1e9),
        ({"format": "tiff"}, "format", None),
    ],
)
def test_bad_parameters_are_a_4xx_naming_the_field(
    service, small, params: dict[str, Any], field: str, limit: Any
) -> None:
    http, _, _ = service
    r = http.get(f"/v1/jobs/{small[0]}/export", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field and (limit is None or body["limit"] == limit), body


def test_unknown_job_is_404(service) -> None:
    http, _, _ = service
    r = http.get("/v1/jobs/nope/export")
    assert r.status_code == 404 and r.json()["detail"]


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set size) of process ``pid``, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def streamed_bytes(http: httpx.Client, job_id: str, **params: Any) -> int:
    """How many bytes an export streams (read piece by piece, never held whole)."""
    size = 0
    with http.stream("GET", f"/v1/jobs/{job_id}/export", params=params) as r:
        assert r.status_code == 200
        for part in r.iter_bytes():
            size += len(part)
    return size


def test_streaming_a_long_job_keeps_the_service_memory_bounded(service) -> None:
    http, _, pid = service
    job_id = finished_job(http, LARGE)
    start = peak_rss_mib(pid)
    for fmt in ("nexus", "float"):  # first use: h5py, hdf5plugin and zipfile load
        assert streamed_bytes(http, job_id, format=fmt, frames="0:2") > 0
    warm = peak_rss_mib(pid)
    size = streamed_bytes(http, job_id, format="float")
    assert size > 20e6  # 40 MB of float32 photons, deflated
    grown = peak_rss_mib(pid) - warm
    assert grown < 0.5 * size / 2**20, f"{grown:.1f} MiB more for a {size / 2**20:.1f} MiB zip"
    for fmt in ("smv", "nexus"):
        assert streamed_bytes(http, job_id, format=fmt) > 0
    assert peak_rss_mib(pid) - start < 200
