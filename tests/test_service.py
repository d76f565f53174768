"""``braggtile serve`` as a real uvicorn process on a free port, driven over HTTP.

One server (2 Dask workers, eager warm-up) serves every test of the module; jobs are small.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import zarr
from gate import TileGate, wait_for_file
from PIL import Image

from service.colormaps import document

from smv_files import smv_bytes

ROOT = Path(__file__).resolve().parents[1]
ARGS = (
    "-cell 100 100 100 90 90 90 -misset 10 20 30 -N 5 -default_F 100 -lambda 1 -distance 100 "
    "-detpixels_f 700 -detpixels_s 300"
)
TILE = 128
GRID = (3, 6)  # ceil(300/128) x ceil(700/128)
#: A job long enough to be cancelled or read while it runs: 3 frames x 8 x 8 tiles.
LONG_ARGS = (
    "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -lambda 1 -distance 100 -detpixels 256 "
    "-osc 0.1 -phisteps 2"
)
LONG = {"nanobragg": LONG_ARGS, "tile": 32, "frames": 3}
TIMEOUT = httpx.Timeout(300.0, connect=30.0)
FINAL = {"successful", "failed", "dismissed"}
#: A tile of LONG's last frame that tests hold (tests/gate.py) to keep a job running.
LAST = (2, 7, 7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's --data folder."""
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def database(data: Path) -> Path:
    """The server's SQLite file (given with --database)."""
    return data / "records.db"


def ready_file(data: Path) -> Path:
    """The ``serve --ready-file`` of the service :func:`serving` runs on ``data``: its URL
    while it takes jobs (gone once a signal makes it drain)."""
    return data / "serve.ready"


@contextmanager
def serving(
    data: Path,
    database: Path,
    cluster: tuple[str, ...] = ("--workers", "2"),
    log_level: str = "warning",
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``braggtile serve`` on ``data`` until the block ends: (base URL, process); its
    output goes to ``data/serve.log``. Its workers obey the tile gate ``data / "gate"``
    (:func:`gate`)."""
    ready = ready_file(data)  # written once it listens (on a port of its choosing), cluster warm
    ready.unlink(missing_ok=True)
    log = open(data / "serve.log", "ab")  # noqa: SIM115 - closed below
    cmd = [
        sys.executable, "-m", "service.cli", "serve", "--port", "0", "--data", str(data),
        "--database", f"sqlite:///{database}", *cluster, "--warm", "eager",
        "--log-level", log_level, "--ready-file", str(ready),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), **gate(data).env()}
    proc = subprocess.Popen(
        cmd, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_file(ready, proc, 180, data / "serve.log")
        yield ready.read_text().strip(), proc
    finally:
        stop(proc)
        log.close()


def gate(data: Path) -> TileGate:
    """The tile gate of the service :func:`serving` runs on ``data``."""
    return TileGate(data / "gate")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the service (it closes its cluster), then SIGKILL to what is left of it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its session: workers that outlived it, if any
    except ProcessLookupError:
        pass
    proc.wait(30)


@pytest.fixture(scope="module")
def server(data: Path, database: Path) -> Iterator[str]:
    """Base URL of a running ``braggtile serve`` (its own data folder and SQLite database)."""
    with serving(data, database) as (url, _):
        yield url


@pytest.fixture(scope="module")
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=TIMEOUT) as client:
        yield client


def submit(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    return r.json()


def read_events(
    http: httpx.Client, job_id: str, last: int | None = None, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """SSE events of a job as {"id", "event", "data"}, to the stream's end or ``stop_after``."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if "event" in current:
                    current["data"] = json.loads(current["data"])
                    events.append(current)
                    if stop_after is not None and len(events) >= stop_after:
                        break
                current = {}
                continue
            if line.startswith(":"):
                continue  # ping
            key, _, value = line.partition(":")
            current[key] = value.removeprefix(" ")
    for e in events:
        e["id"] = int(e["id"])
    return events


@pytest.fixture(scope="module")
def finished(http: httpx.Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The 700x300 job with tile 128, and every event of its stream, read to the end."""
    job = submit(http, {"nanobragg": ARGS, "tile": TILE})
    assert job["status"] in ("accepted", "running")
    assert (job["tiles_total"], job["grid"], job["shape"]) == (18, list(GRID), [300, 700])
    return job, read_events(http, job["id"])


@pytest.fixture(scope="module")
def cli_frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, bytes]:
    """The same frame from ``braggtile nanobragg`` (whole frame): pixels and its float file."""
    out = tmp_path_factory.mktemp("cli")
    cmd = [sys.executable, "-m", "service.cli", "nanobragg", *ARGS.split()]
    cmd += ["-floatfile", "float.bin", "-nonoise", "-nopgm", "-noprogress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    raw = (out / "float.bin").read_bytes()
    return np.frombuffer(raw, dtype="<f4").reshape(300, 700), raw


def test_stream_has_one_tile_event_per_tile_then_successful(finished) -> None:
    job, events = finished
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    tiles = [(e["data"]["frame"], e["data"]["row"], e["data"]["col"]) for e in events
             if e["event"] == "tile"]  # fmt: skip
    expected = {(0, r, c) for r in range(GRID[0]) for c in range(GRID[1])}
    assert sorted(tiles) == sorted(expected)  # each exactly once
    assert events[-1]["event"] == "successful"
    assert events[-1]["data"]["status"] == "successful"
    assert all(e["event"] not in FINAL for e in events[:-1])
    last_tile = max(i for i, e in enumerate(events) if e["event"] == "tile")
    assert last_tile < len(events) - 1
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[:2] == ["accepted", "running"] and statuses[-1] == "successful"
    tile = next(e["data"] for e in events if e["event"] == "tile" and e["data"]["row"] == 2)
    assert tile["origin"][0] == 256 and tile["shape"][0] == 300 - 256
    frame = next(e["data"] for e in events if e["event"] == "frame")
    assert frame["frame"] == 0 and frame["statistics"]["pixels"] == 700 * 300


def test_finished_job_record(http: httpx.Client, finished) -> None:
    job, _ = finished
    record = http.get(f"/v1/jobs/{job['id']}").json()
    assert record["status"] == "successful" and record["jobID"] == job["id"]
    assert record["progress"] == 100.0 and record["tiles_done"] == record["tiles_total"] == 18
    assert record["started"] and record["finished"] and record["message"] is None
    assert record["levels"][0] == [300, 700] and record["geometry"]["pixel_size_mm"] == 0.1
    assert {link["rel"] for link in record["links"]} >= {"self", "events", "zarr", "preview"}


def test_tile_npy_equals_the_cli_render(http: httpx.Client, finished, cli_frame) -> None:
    job, _ = finished
    r = http.get(f"/v1/jobs/{job['id']}/frames/0/tiles/1/2", params={"format": "npy"})
    assert r.status_code == 200, r.text
    tile = np.load(io.BytesIO(r.content))
    assert tile.dtype == np.float32 and tile.shape == (TILE, TILE)
    image, _ = cli_frame
    np.testing.assert_array_equal(tile, image[TILE : 2 * TILE, 2 * TILE : 3 * TILE])
    assert tile.max() > 0


def test_export_float_is_the_cli_float_file(http: httpx.Client, finished, cli_frame) -> None:
    job, _ = finished
    r = http.get(f"/v1/jobs/{job['id']}/frames/0/export", params={"format": "float"})
    assert r.status_code == 200
    assert r.content == cli_frame[1]
    r = http.get(f"/v1/jobs/{job['id']}/frames/0/export", params={"format": "smv"})
    assert r.status_code == 200
    header = r.content[:512].decode("ascii")
    assert "SIZE1=700;" in header and "SIZE2=300;" in header
    pixels = np.frombuffer(r.content[512:], dtype="<u2").reshape(300, 700)
    assert pixels.max() == 55040  # C's autoscale: max_I -> 55000 ADU + 40 ADC offset


def test_png_tiles_levels_and_preview(http: httpx.Client, finished) -> None:
    job, _ = finished
    base = f"/v1/jobs/{job['id']}/frames/0"
    r = http.get(f"{base}/tiles/2/5", params={"format": "png", "scale": "log", "vmax": 50})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (700 - 5 * TILE, 300 - 2 * TILE)
    r = http.get(f"{base}/levels/1/tiles/1/2", params={"format": "npy"})
    level1 = np.load(io.BytesIO(r.content))
    assert level1.shape == (150 - TILE, 350 - 2 * TILE)
    r = http.get(f"{base}/preview.png", params={"level": 1, "colormap": "viridis", "scale": "sqrt"})
    picture = Image.open(io.BytesIO(r.content))
    assert picture.size == (350, 150) and picture.mode == "RGB"
    assert len(picture.getcolors(1 << 20)) > 10  # not blank


def test_png_colormaps_are_the_served_ones(http: httpx.Client, finished) -> None:
    job, _ = finished
    served = http.get("/v1/colormaps").json()
    assert served == json.loads(json.dumps(document()))
    base = f"/v1/jobs/{job['id']}/frames/0/tiles/0/0"
    values = np.load(io.BytesIO(http.get(base).content)).astype(np.float64)
    query = {"format": "png", "vmin": 0, "vmax": float(values.max()), "scale": "log"}
    for name, table in served["colormaps"].items():
        r = http.get(base, params={**query, "colormap": name})
        assert r.status_code == 200, r.text
        pixels = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        t = np.clip(values / values.max(), 0, 1)
        s = np.log(1 + 1000 * t) / np.log(1001)
        want = np.array(table)[np.floor(255 * s + 0.5).astype(int)]
        np.testing.assert_array_equal(pixels, want, err_msg=name)
    for field, value in (("colormap", "jet"), ("scale", "asinh")):
        r = http.get(base, params={**query, field: value})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["field"] == field and field in body["detail"], body
        allowed = served["colormaps"] if field == "colormap" else served["scales"]
        assert all(name in body["limit"] for name in allowed), body


def test_reconnect_replays_exactly_the_missed_events(http: httpx.Client, finished) -> None:
    job, events = finished
    for last in (0, 1, 7, len(events) - 1):
        assert read_events(http, job["id"], last=last) == events[last:]
    assert read_events(http, job["id"], last=len(events)) == []


def test_reconnect_during_a_live_job(http: httpx.Client) -> None:
    job = submit(http, {**LONG, "frames": 1})
    first = read_events(http, job["id"], stop_after=4)
    rest = read_events(http, job["id"], last=first[-1]["id"])
    assert [e["id"] for e in first + rest] == list(range(1, len(first) + len(rest) + 1))
    assert rest[-1]["event"] == "successful"
    assert first + rest == read_events(http, job["id"])
    assert sum(e["event"] == "tile" for e in first + rest) == 8 * 8


def test_live_store_reads_over_http(server: str, http: httpx.Client) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    job = submit(http, LONG)
    url = f"{server}/v1/jobs/{job['id']}/zarr"
    group = zarr.open_group(url, mode="r")  # right after submit: the job has not finished
    assert group.attrs["ome"]["version"] == "0.5"
    level0 = group["0"]
    assert level0.shape == (3, 256, 256) and level0.chunks == (1, 32, 32)
    nodes = list(Reader(parse_url(url))())
    assert [d.shape for d in nodes[0].data] == [(3, *s) for s in map(tuple, job["levels"])]
    partial = np.asarray(level0[2])  # probably mid-render: unwritten chunks read as 0
    assert partial.shape == (256, 256)

    events = read_events(http, job["id"])
    assert events[-1]["event"] == "successful"
    r = http.get(f"/v1/jobs/{job['id']}/frames/2/tiles/5/6")
    expected = np.load(io.BytesIO(r.content))
    np.testing.assert_array_equal(np.asarray(level0[2, 160:192, 192:224]), expected)
    via_ome = np.asarray(nodes[0].data[0][2, 160:192, 192:224].compute())
    np.testing.assert_array_equal(via_ome, expected)
    assert http.get(f"/v1/jobs/{job['id']}/zarr/0/c/9/0/0").status_code == 404
    head = http.head(f"/v1/jobs/{job['id']}/zarr/zarr.json")
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0


def test_cancel_dismisses_and_other_jobs_run_on(http: httpx.Client, data: Path) -> None:
    held = gate(data)
    held.hold(LAST)
    job = submit(http, LONG)
    try:
        held.wait("held", LAST)  # the job cannot finish
        r = http.delete(f"/v1/jobs/{job['id']}")
        assert r.status_code == 200 and r.json()["status"] == "dismissed"
        events = read_events(http, job["id"])
        assert events[-1]["event"] == "dismissed"
    finally:
        held.release(LAST)
    held.wait("passed", LAST)  # a task of the dismissed job wrote its tile after the dismissal
    record = http.get(f"/v1/jobs/{job['id']}").json()
    assert record["status"] == "dismissed" and record["finished"]
    assert record["tiles_done"] < record["tiles_total"]
    assert read_events(http, job["id"]) == events  # nothing after the final event
    assert http.delete(f"/v1/jobs/{job['id']}").json()["status"] == "dismissed"

    other = submit(http, {"nanobragg": ARGS, "tile": 256})
    assert read_events(http, other["id"])[-1]["event"] == "successful"
    r = http.delete(f"/v1/jobs/{other['id']}")
    assert r.status_code == 409 and "successful" in r.json()["detail"]


HKL = "0 0 1 100\n0 1 0 100\n1 0 0 100\n1 1 1 50\n"


def test_inputs_are_resolved_in_the_job_folder(http: httpx.Client) -> None:
    args = "-cell 100 100 100 90 90 90 -N 5 -hkl P1.hkl -lambda 1 -distance 100 -detpixels 64"
    job = submit(http, {"nanobragg": args, "tile": 32, "inputs": {"P1.hkl": HKL}})
    assert read_events(http, job["id"])[-1]["event"] == "successful"


def test_a_mask_travels_in_the_inputs_and_leaves_its_pixels_0(
    server: str, http: httpx.Client
) -> None:
    """A binary -mask file given as base64: its header sets the detector (64x48 pixels), its
    zero pixels stay 0 in every tile, and the frame's statistics leave them out."""
    mask = np.ones((48, 64), dtype=np.uint16)
    mask[20:25, :] = 0
    mask[:, 40] = 0
    header = {"SIZE1": 64, "SIZE2": 48, "PIXEL_SIZE": 0.2, "DISTANCE": 60, "WAVELENGTH": 1.0}
    data = "base64:" + base64.b64encode(smv_bytes(header, mask)).decode()
    args = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -mask gaps.img"
    job = submit(http, {"nanobragg": args, "tile": 32, "inputs": {"gaps.img": data}})
    assert job["shape"] == [48, 64]
    events = read_events(http, job["id"])
    assert events[-1]["event"] == "successful"
    frame = next(e["data"] for e in events if e["event"] == "frame")
    assert frame["statistics"]["pixels"] == int((mask != 0).sum())
    level0 = np.asarray(zarr.open_group(f"{server}/v1/jobs/{job['id']}/zarr", mode="r")["0"][0])
    assert (level0[mask == 0] == 0).all() and (level0[mask != 0] > 0).all()
    bad = {"nanobragg": args, "inputs": {"gaps.img": "base64:not base64!"}}
    r = http.post("/v1/jobs", json=bad)
    assert r.status_code == 422 and r.json()["field"] == "inputs.gaps.img", r.text
    r = http.post("/v1/jobs", json={"nanobragg": args.replace("-mask", "-detpixels 32 -mask"),
                                    "inputs": {"gaps.img": data}})  # fmt: skip
    assert r.status_code == 422 and r.json()["field"] == "-mask", r.text


BAD_REQUESTS: list[tuple[dict[str, Any] | str, int, str | None]] = [
    ({"nanobragg": f"{ARGS} -lambda -1"}, 422, "-lambda"),
    ({"nanobragg": f"{ARGS} -bogus 3"}, 422, "-bogus"),
    ({"nanobragg": f"{ARGS} -detpixels 0"}, 422, "-detpixels"),
    ({"nanobragg": f"{ARGS} -N"}, 422, "-N"),
    ({"nanobragg": f'{ARGS} "unclosed'}, 422, "nanobragg"),
    ({"nanobragg": f"{ARGS} -hkl /etc/passwd"}, 422, "-hkl"),
    ({"nanobragg": f"{ARGS} -hkl ../P1.hkl", "inputs": {"P1.hkl": HKL}}, 422, "-hkl"),
    ({"nanobragg": f"{ARGS} -hkl P1.hkl"}, 422, "-hkl"),
    ({"nanobragg": f"{ARGS} -hkl P1.hkl", "inputs": {"P1.hkl": "not an hkl\n"}}, 422, "hkl"),
    ({"nanobragg": f"{ARGS} -mat A.mat"}, 422, "-mat"),
    ({"nanobragg": ARGS, "inputs": {"../x.hkl": HKL}}, 422, "inputs.../x.hkl"),
    ({"nanobragg": ARGS, "inputs": {"/etc/x": HKL}}, 422, "inputs./etc/x"),
    ({"nanobragg": ARGS, "frames": 0}, 422, "frames"),
    ({"nanobragg": ARGS, "frames": 100000}, 413, "frames"),
    ({"nanobragg": ARGS, "tile": 4}, 422, "tile"),
    ({"nanobragg": ARGS, "dtype": "float16"}, 422, "dtype"),
    ({"nanobragg": "-cell 1 1 1 90 90 90 -default_F 1 -detpixels 100000"}, 413, "-detpixels"),
    ({"nanobragg": 5}, 422, "nanobragg"),
    ({"nanobragg": ARGS, "job": {}}, 422, None),
    ({}, 422, None),
    ({"nanobragg": ARGS, "colour": "red"}, 422, "colour"),
    ({"job": {"frames": 2}}, 422, "job.experiment"),
    ({"job": {"experiment": {}, "frames": "x"}}, 422, "job.frames"),
    ({"job": {"experiment": {}, "colour": 1}}, 422, "job.colour"),
    ({"job": {"experiment": {"beam": {"wavelength_A": -1}}}}, 422, "job.experiment.beam"),
    ('{"nanobragg": ', 422, None),
    ("[1, 2", 422, None),
]


@pytest.mark.parametrize("body,status,field", BAD_REQUESTS)
def test_bad_submissions_get_a_clear_4xx(http: httpx.Client, body, status, field) -> None:
    if isinstance(body, str):
        r = http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    else:
        r = http.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    error = r.json()
    assert isinstance(error["detail"], str) and error["detail"]
    if field is not None:
        assert error["field"] is not None and error["field"].startswith(field), error
        assert field.split(".")[0] in error["detail"]
    assert http.get("/healthz").status_code == 200


def test_limits_are_named_in_errors(http: httpx.Client) -> None:
    r = http.post("/v1/jobs", json={"nanobragg": ARGS, "frames": 100000})
    assert r.json()["limit"] == 1000 and "1000" in r.json()["detail"]
    r = http.post("/v1/jobs", json={"nanobragg": ARGS, "tile": 4})
    assert r.json()["limit"] == 16
    r = http.post("/v1/jobs", json={"nanobragg": ARGS, "frames": 0})
    assert r.json()["limit"] == 1


def test_bad_reads_get_a_clear_4xx(http: httpx.Client, finished) -> None:
    job, _ = finished
    base = f"/v1/jobs/{job['id']}"
    cases = [
        ("/v1/jobs/0123456789abcdef", 404),
        ("/v1/jobs/0123456789abcdef/events", 404),
        ("/v1/jobs/0123456789abcdef/frames/0/tiles/0/0", 404),
        (f"{base}/frames/1/tiles/0/0", 404),
        (f"{base}/frames/0/tiles/3/0", 404),
        (f"{base}/frames/0/tiles/0/6", 404),
        (f"{base}/frames/0/levels/3/tiles/0/0", 404),
        (f"{base}/frames/0/tiles/0/0?format=gif", 422),
        (f"{base}/frames/0/tiles/0/0?format=png&scale=cubic", 422),
        (f"{base}/frames/0/tiles/0/0?format=png&colormap=jet", 422),
        (f"{base}/frames/0/tiles/0/0?format=png&vmax=high", 422),
        (f"{base}/frames/0/export?format=tiff", 422),
        (f"{base}/frames/-1/preview.png", 422),
        (f"{base}/zarr/nothing.json", 404),
        (f"{base}/zarr/0", 404),
        (f"{base}/zarr/0/c/0/..%2F..%2F..%2Fzarr.json", 404),
        ("/v1/jobs?limit=0", 422),
        ("/v1/jobs?offset=-1", 422),
    ]
    for path, status in cases:
        r = http.get(path)
        assert r.status_code == status, (path, r.text)
        assert r.json()["detail"], path
    r = http.get("/v1/nothing")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found", "field": None, "limit": None}
    r = http.put(f"{base}")
    assert r.status_code == 405 and r.json()["detail"]
    r = http.get(f"{base}/events", headers={"Last-Event-ID": "abc"})
    assert r.status_code == 422 and r.json()["field"] == "Last-Event-ID"
    assert http.get("/healthz").json()["status"] == "ok"


def test_tile_not_rendered_yet_is_a_clear_404(http: httpx.Client, data: Path) -> None:
    held = gate(data)
    held.hold(LAST)
    job = submit(http, LONG)
    try:
        held.wait("held", LAST)
        r = http.get(f"/v1/jobs/{job['id']}/frames/2/tiles/7/7")
        assert r.status_code == 404 and "not rendered yet" in r.json()["detail"]
        assert http.delete(f"/v1/jobs/{job['id']}").json()["status"] == "dismissed"
        r = http.get(f"/v1/jobs/{job['id']}/frames/2/export")
        assert r.status_code == 404 and "not complete" in r.json()["detail"]
    finally:
        held.release(LAST)


def test_list_metrics_docs_presets(http: httpx.Client, finished) -> None:
    job, _ = finished
    page = http.get("/v1/jobs", params={"limit": 2}).json()
    assert page["total"] >= 1 and len(page["jobs"]) <= 2
    everything = http.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    created = [j["created"] for j in everything]
    assert created == sorted(created, reverse=True)
    assert job["id"] in {j["id"] for j in everything}
    done = http.get("/v1/jobs", params={"status": ["successful", "failed"], "limit": 500}).json()
    assert done["total"] >= 1 and {j["status"] for j in done["jobs"]} <= {"successful", "failed"}
    assert job["id"] in {j["id"] for j in done["jobs"]}
    assert http.get("/v1/jobs", params={"status": "finished"}).status_code == 422
    text = http.get("/metrics").text
    tiles = next(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith("braggtile_tiles_rendered_total"))  # fmt: skip
    assert tiles >= 18
    assert 'braggtile_jobs{status="successful"}' in text
    assert "braggtile_tile_seconds_bucket" in text
    assert http.get("/docs").status_code == 200
    schema = http.get("/openapi.json").json()
    assert "/v1/jobs/{job_id}/events" in schema["paths"]
    presets = http.get("/v1/presets").json()
    assert presets and all(p["nanobragg"] for p in presets)
    assert http.get("/").status_code == 200


def test_typed_job_model_in_float64(http: httpx.Client) -> None:
    from engine.resolve import parse_nanobragg

    experiment = parse_nanobragg(LONG_ARGS.split()).experiment.model_dump(mode="json")
    job = submit(http, {"job": {"experiment": experiment, "tile": 64}, "dtype": "float64"})
    assert (job["dtype"], job["tile"], job["grid"]) == ("float64", 64, [4, 4])
    assert job["nanobragg"] is None
    assert read_events(http, job["id"])[-1]["event"] == "successful"
    r = http.get(f"/v1/jobs/{job['id']}/frames/0/tiles/1/2")
    tile = np.load(io.BytesIO(r.content))
    assert tile.dtype == np.float64 and tile.shape == (64, 64) and tile.max() > 0


def test_records_and_events_are_in_the_database(http: httpx.Client, finished, database) -> None:
    import sqlalchemy as sa

    job, events = finished
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status, tiles_done FROM jobs WHERE id = :id"), {"id": job["id"]}
            ).one()
            stored = conn.execute(
                sa.text("SELECT seq, type FROM events WHERE job_id = :id ORDER BY seq"),
                {"id": job["id"]},
            ).all()
    finally:
        engine.dispose()
    assert tuple(status) == ("successful", 18)
    assert [tuple(r) for r in stored] == [(e["id"], e["event"]) for e in events]


def test_a_long_job_does_not_hold_up_a_short_one(http: httpx.Client, data: Path) -> None:
    held = gate(data)
    held.hold(LAST)  # the long job cannot finish until the test releases it
    long = submit(http, LONG)
    try:
        held.wait("held", LAST)
        short = submit(http, {"nanobragg": ARGS, "tile": 256})
        assert read_events(http, short["id"])[-1]["event"] == "successful"
        record = http.get(f"/v1/jobs/{long['id']}").json()
        assert record["status"] == "running" and record["tiles_done"] < record["tiles_total"]
        assert http.delete(f"/v1/jobs/{long['id']}").json()["status"] == "dismissed"
    finally:
        held.release(LAST)


def test_a_restarted_service_finishes_its_jobs_with_every_event_once(tmp_path: Path) -> None:
    database = tmp_path / "records.db"
    body = {"nanobragg": LONG_ARGS, "tile": 16, "frames": 3}
    with (
        serving(tmp_path, database) as (url, proc),
        httpx.Client(base_url=url, timeout=TIMEOUT) as c,
    ):
        job = submit(c, body)
        before = read_events(c, job["id"], stop_after=40)
        stop(proc)  # graceful: the job stays running in the records, tiles stay in the store
    assert before[-1]["event"] == "tile"
    with serving(tmp_path, database) as (url, _), httpx.Client(base_url=url, timeout=TIMEOUT) as c:
        events = read_events(c, job["id"])
        record = c.get(f"/v1/jobs/{job['id']}").json()
        r = c.get(f"/v1/jobs/{job['id']}/frames/2/tiles/5/6")
    assert events[: len(before)] == before
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    tiles = [(e["data"]["frame"], e["data"]["row"], e["data"]["col"]) for e in events
             if e["event"] == "tile"]  # fmt: skip
    assert len(tiles) == len(set(tiles)) == 3 * 16 * 16
    assert sum(e["event"] == "frame" for e in events) == 3
    assert events[-1]["event"] == "successful"
    assert [e["data"]["status"] for e in events if e["event"] == "status"].count("running") == 2
    assert record["status"] == "successful" and record["tiles_done"] == 3 * 16 * 16
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (16, 16)


def test_serve_attaches_to_an_existing_scheduler(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    info = tmp_path / "scheduler.json"
    common = {"cwd": tmp_path, "env": env, "start_new_session": True}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(info)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **common,
    )  # fmt: skip
    processes = [scheduler]
    try:
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip():
            assert scheduler.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **common,
            )  # fmt: skip
        )
        with (
            serving(tmp_path, tmp_path / "jobs.db", ("--scheduler", address)) as (url, _),
            httpx.Client(base_url=url, timeout=TIMEOUT) as c,
        ):
            assert c.get("/healthz").json()["workers"] == 1
            job = submit(c, {"nanobragg": ARGS, "tile": 256})
            assert read_events(c, job["id"])[-1]["event"] == "successful"
            r = c.get(f"/v1/jobs/{job['id']}/frames/0/tiles/0/1")
            assert np.load(io.BytesIO(r.content)).shape == (256, 256)
        assert scheduler.poll() is None  # the service leaves a cluster it did not start
    finally:
        for proc in reversed(processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
