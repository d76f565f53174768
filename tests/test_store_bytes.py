"""Fewer bytes per frame: detector counts stored as uint16/uint32 with Blosc bit shuffle, bit for
bit the response computed in this process; ``--no-photons`` (the counts are the store's level
0), ``--no-pyramid``; exports and the service on such stores; the bench's byte and roofline
fields."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import fabio
import h5py
import hdf5plugin  # noqa: F401 - the bitshuffle filter h5py reads NXmx data with
import httpx
import numpy as np
import pytest
import zarr
from test_export import parse_smv
from test_response_tiled import render_in_process
from test_service import TIMEOUT, read_events, serving, submit

from engine.resolve import parse_nanobragg
from engine.response import DetectorResponse, detector_image
from engine.window import Window
from tiling.bench import disk_bandwidth, roofline
from tiling.exports.cli import main as export_main
from tiling.pyramid import bin2x2
from tiling.store import StoreReader, TileStore, store_bytes

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 300"
SMALL = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 64"
NOISE = ("--noise", "--seed", "7", "--gain", "2.5", "--overload", "60000")
RESPONSE = DetectorResponse(noise=True, seed=7, gain=2.5, overload=60000)
#: Store name -> (nanoBragg arguments, render options).
STORES = {
    "both": (ARGS, ("--tile", "128", "--frames", "2", *NOISE)),
    "counts": (ARGS, ("--tile", "128", "--frames", "2", *NOISE, "--no-photons")),
    "bare": (ARGS, ("--tile", "128", "--frames", "2", *NOISE, "--no-photons", "--no-pyramid")),
    "flat": (SMALL, ("--tile", "32", "--no-pyramid")),
    "wide": (SMALL, ("--tile", "32", "--noise", "--gain", "1e3", "--overload", "70000")),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bytes")
    for name, (args, extra) in STORES.items():
        proc = render_in_process(folder / name, args, *extra)
        assert proc.returncode == 0, proc.stderr
    return {name: folder / name for name in STORES}


def _arrays(path: Path) -> set[str]:
    return {name for name, _ in zarr.open_group(str(path), mode="r").arrays()}


def _codec(path: Path, array: str) -> dict:
    meta = json.loads((path / array / "zarr.json").read_text())
    names = [c["name"] for c in meta["codecs"]]
    assert names == ["bytes", "blosc"], names
    return meta["codecs"][1]["configuration"]


def test_counts_are_bit_exact_integers_with_bit_shuffle(stores) -> None:
    both, counts = StoreReader(str(stores["both"])), StoreReader(str(stores["counts"]))
    assert both.has_photons() and not counts.has_photons()
    for k in range(2):
        photons = both.read_frame(0, k)
        expected, _ = detector_image(photons, Window(0, 300, 0, 300), RESPONSE, k, 300, 1e-4)
        adu = np.asarray(zarr.open_array(str(stores["both"] / "detector"), mode="r")[k])
        assert adu.dtype == np.uint16 and adu.max() > 40 + 2.5  # photons were counted
        np.testing.assert_array_equal(adu, expected)
        # without photons the same counts are the store's level 0, its pyramid their means
        np.testing.assert_array_equal(counts.read_frame(0, k), expected)
        np.testing.assert_array_equal(counts.read_detector_frame(k), expected)
        np.testing.assert_array_equal(counts.read_frame(1, k), bin2x2(expected).astype("f4"))
        assert counts.frame_statistics(k) == both.frame_statistics(k)  # of the photons
    for store, array in (("both", "detector"), ("counts", "detector")):
        config = _codec(stores[store], array)
        assert (config["cname"], config["shuffle"]) == ("lz4", "bitshuffle"), (store, array)
    assert _codec(stores["both"], "0")["shuffle"] == "noshuffle"  # photons: plain LZ4
    means = _codec(stores["counts"], "1")  # the counts' means: byte shuffle (few mantissa bits)
    assert (means["cname"], means["shuffle"], means["typesize"]) == ("lz4", "shuffle", 4)
    assert _arrays(stores["counts"]) == {"detector", "1", "tiles", "truth"}
    paths = [d["path"] for d in counts.ome["multiscales"][0]["datasets"]]
    assert paths == ["detector", "1"]


def test_a_resumed_counts_only_store_bins_its_pyramid_from_the_counts(stores, tmp_path) -> None:
    path = tmp_path / "counts"
    shutil.copytree(stores["counts"], path)
    TileStore.open(str(path)).forget_frames()  # as a kill after the tiles, before the pyramid
    shutil.rmtree(path / "1" / "c")
    assert StoreReader(str(path)).complete_frames() == set()
    args, extra = STORES["counts"]
    proc = render_in_process(path, args, *extra)
    assert proc.returncode == 0, proc.stderr
    assert "0 tiles rendered, 18 resumed" in proc.stdout
    store = StoreReader(str(path))
    assert store.complete_frames() == {0, 1}
    for k in range(2):
        counts = store.read_frame(0, k)
        np.testing.assert_array_equal(store.read_frame(1, k), bin2x2(counts).astype("f4"))


def test_uint32_when_the_overload_does_not_fit_uint16(stores) -> None:
    wide = StoreReader(str(stores["wide"]))
    adu = wide.read_detector_frame(0)
    assert adu.dtype == np.uint32 and adu.max() > 65535  # counts x 1000 ADU
    assert _codec(stores["wide"], "detector")["typesize"] == 4
    response = DetectorResponse(noise=True, gain=1e3, overload=70000)
    expected, _ = detector_image(wide.read_frame(0, 0), Window(0, 64, 0, 64), response, 0, 64, 1e-4)
    np.testing.assert_array_equal(adu, expected)
    assert StoreReader(str(stores["both"])).read_detector_frame(0).dtype == np.uint16


def test_no_pyramid_stores_level_0_only(stores) -> None:
    flat, bare = StoreReader(str(stores["flat"])), StoreReader(str(stores["bare"]))
    assert flat.levels() == 1 and bare.levels() == 1
    assert _arrays(stores["flat"]) == {"0", "tiles", "truth"}
    assert _arrays(stores["bare"]) == {"detector", "tiles", "truth"}
    assert flat.complete_frames() == {0} and bare.complete_frames() == {0, 1}
    assert len(bare.records()) == 2 * 3 * 3
    counts = StoreReader(str(stores["counts"]))
    for k in range(2):
        np.testing.assert_array_equal(bare.read_frame(0, k), counts.read_frame(0, k))
    # a store of level 0 only holds less than one with its pyramid
    assert store_bytes(str(stores["bare"])) < store_bytes(str(stores["counts"]))


def test_exports_of_a_counts_only_store_are_its_adu(stores, tmp_path: Path, capsys) -> None:
    bare = StoreReader(str(stores["bare"]))
    adu = [bare.read_frame(0, k) for k in range(2)]
    base = [str(stores["bare"]), "--no-progress"]
    assert export_main([*base, "--format", "nexus", "-o", str(tmp_path / "run.nxs")]) == 0
    with h5py.File(tmp_path / "run.nxs") as f:
        data = f["entry/data/data"]
        assert data.dtype == np.uint16
        np.testing.assert_array_equal(data[...], np.stack(adu))
        assert f["entry/instrument/detector/saturation_value"][()] == 65535
    cbf = str(tmp_path / "cbf" / "img_#####.cbf")
    smv = str(tmp_path / "smv" / "img_#####.img")
    assert export_main([*base, "--format", "cbf", "-o", cbf]) == 0
    assert export_main([*base, "--format", "smv", "-o", smv]) == 0
    for k in range(2):
        image = fabio.open(str(tmp_path / "cbf" / f"img_{k + 1:05d}.cbf")).data
        np.testing.assert_array_equal(image, adu[k])
        _, pixels = parse_smv(tmp_path / "smv" / f"img_{k + 1:05d}.img")
        np.testing.assert_array_equal(pixels, adu[k])
    capsys.readouterr()
    for extra, option in (
        (("--format", "float", "-o", str(tmp_path / "f_#####.bin")), "--format"),
        (("--format", "cbf", "-o", cbf, "--gain", "2"), "--gain"),
        (("--format", "cbf", "-o", cbf, "--adc-offset", "0"), "--adc-offset"),
    ):
        assert export_main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"braggtile export: error: {option}: ")
        assert "--no-photons" in err[0]


def test_store_options_that_do_not_fit_are_one_line_errors(tmp_path: Path) -> None:
    for args, extra, option in (
        (SMALL, ("--no-photons",), "--no-photons"),  # no response: nothing would be stored
        (SMALL, ("--no-pyramid", "--pyramid-min", "64"), "--no-pyramid"),
        (f"{SMALL} -floatfile f.bin", ("--noise", "--no-photons"), "--no-photons"),
    ):
        proc = render_in_process(tmp_path / "bad.zarr", args, *extra)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith(f"braggtile render: error: {option}: "), lines
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "bad.zarr" / "zarr.json").exists()


@pytest.fixture(scope="module")
def counts_job(tmp_path_factory):
    """A served job that stores only the detector's counts, no pyramid: (client, id, store)."""
    data = tmp_path_factory.mktemp("serve-counts")
    experiment = parse_nanobragg(shlex.split(SMALL)).experiment.model_dump(mode="json")
    job = {
        "experiment": experiment,
        "frames": 2,
        "tile": 32,
        "response": {"noise": True, "seed": 3, "gain": 4.0},
        "photons": False,
        "pyramid_min": 64,
    }
    with serving(data, data / "records.db", ("--workers", "1")) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            created = submit(http, {"job": job})
            assert read_events(http, created["id"])[-1]["event"] == "successful"
            store = StoreReader(str(data / "jobs" / created["id"] / "store.zarr"))
            yield http, created["id"], store


def test_service_serves_a_counts_only_store(counts_job) -> None:
    http, job_id, store = counts_job
    assert not store.has_photons() and store.levels() == 1
    record = http.get(f"/v1/jobs/{job_id}").json()
    assert record["photons"] is False and record["levels"] == [[64, 64]]
    frames = f"/v1/jobs/{job_id}/frames"
    r = http.get(f"{frames}/1/tiles/1/0", params={"format": "npy"})
    assert r.status_code == 200, r.text
    tile = np.load(io.BytesIO(r.content))
    assert tile.dtype == np.uint16
    np.testing.assert_array_equal(tile, store.read_frame(0, 1)[32:64, 0:32])
    assert http.get(f"{frames}/1/tiles/1/0", params={"format": "png"}).status_code == 200
    assert http.get(f"{frames}/0/preview.png").status_code == 200
    assert http.get(f"{frames}/0/levels/1/tiles/0/0").status_code == 404  # no pyramid
    meta = http.get(f"/v1/jobs/{job_id}/zarr/zarr.json").json()
    assert meta["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] == "detector"
    chunk = http.get(f"/v1/jobs/{job_id}/zarr/detector/c/0/0/1")
    assert chunk.status_code == 200 and len(chunk.content) > 0
    assert http.get(f"/v1/jobs/{job_id}/zarr/0/zarr.json").status_code == 404
    r = http.get(f"{frames}/0/export", params={"format": "float"})
    assert r.status_code == 422 and r.json()["field"] == "format"
    r = http.get(f"/v1/jobs/{job_id}/export", params={"format": "float"})
    assert r.status_code == 422 and r.json()["field"] == "format"
    r = http.get(f"/v1/jobs/{job_id}/export", params={"format": "nexus", "gain": 2})
    assert r.status_code == 422 and r.json()["field"] == "gain"


def test_service_nexus_of_a_counts_only_store(counts_job, tmp_path: Path) -> None:
    http, job_id, store = counts_job
    r = http.get(f"/v1/jobs/{job_id}/export", params={"format": "nexus"})
    assert r.status_code == 200, r.text
    (tmp_path / "run.nxs").write_bytes(r.content)
    with h5py.File(tmp_path / "run.nxs") as f:
        expected = np.stack([store.read_detector_frame(k) for k in range(2)])
        np.testing.assert_array_equal(f["entry/data/data"][...], expected)


def test_typed_job_without_photons_or_response_is_a_422(counts_job) -> None:
    http, _, _ = counts_job
    experiment = parse_nanobragg(shlex.split(SMALL)).experiment.model_dump(mode="json")
    r = http.post("/v1/jobs", json={"job": {"experiment": experiment, "photons": False}})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "job.photons"


def _bench(*extra: str, probe: str = "4", repeat: str = "2") -> dict:
    cmd = [
        sys.executable, "-m", "service.cli", "bench", "--tiled", "--in-process", "--tile", "128",
        "--frames", "2", "--repeat", repeat, "--disk-probe-mb", probe, *extra, "--nanobragg", ARGS,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_reports_bytes_disk_and_roofline(stores) -> None:
    result = _bench(*NOISE, "--no-photons", "--no-pyramid", "--keep-stores")
    assert (result["noise"], result["detector"], result["photons"]) == (True, True, False)
    assert result["levels"] == 1 and result["frames"] == 2
    # the bench's store holds the bytes of the same job rendered by braggtile render
    assert result["store_bytes"] == store_bytes(str(stores["bare"]))
    assert result["bytes_per_frame"] == round(result["store_bytes"] / 2)
    assert result["disk_mb_per_s"] > 0
    disk = result["store_bytes"] / (result["disk_mb_per_s"] * 1e6)
    assert result["disk_seconds"] == pytest.approx(disk, rel=1e-3, abs=2e-6)
    kernel = result["kernel_warm_seconds"] * 2
    assert result["kernel_frames_seconds"] == pytest.approx(kernel, abs=2e-6)
    top = max(result["kernel_frames_seconds"], result["disk_seconds"])
    assert result["roofline_seconds"] == pytest.approx(top, abs=1e-6)
    share = result["roofline_seconds"] / result["warm_job_seconds"]
    assert result["roofline_share"] == pytest.approx(share, rel=1e-3, abs=1e-4)


def test_bench_bytes_follow_the_store_options() -> None:
    plain = _bench(probe="1", repeat="1")
    assert (plain["noise"], plain["photons"], plain["levels"]) == (False, True, 2)
    # 300 x 300 float32 photons per frame (random mantissas: LZ4 keeps nearly all of them)
    assert plain["bytes_per_frame"] > 300 * 300 * 4 * 0.8
    both = _bench(*NOISE, probe="1", repeat="1")
    assert both["bytes_per_frame"] > plain["bytes_per_frame"]  # the counts come on top
    assert both["bytes_per_frame"] - plain["bytes_per_frame"] < 300 * 300 * 2 / 4


def test_roofline_arithmetic_and_disk_probe(tmp_path: Path) -> None:
    fields = roofline(4_000_000, 2, 100.0, 0.01, 0.05)
    assert fields["bytes_per_frame"] == 2_000_000 and fields["disk_seconds"] == 0.04
    assert fields["kernel_frames_seconds"] == 0.02 and fields["roofline_seconds"] == 0.04
    assert fields["roofline_share"] == 0.8
    assert disk_bandwidth(tmp_path, 2) > 0
    assert list(tmp_path.iterdir()) == []  # the probe file is removed
