"""A dataset job over HTTP (``braggtile serve`` as a real process): the request takes stills,
variations, seed and a frames table as the CLI does, and serves each frame's ground truth and
the job's truth.expt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service import TIMEOUT, gate, read_events, serving, submit
from test_truth import LOAD_EXPT, dxtbx, needs_dxtbx

from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-cell 50 60 70 90 90 90 -N 2 -default_F 10 -lambda 1.2 -distance 100 -detpixels 48"
VARY = {"orientation": "random", "mosaic": "uniform:0.1,0.3", "distance": "normal:2"}
BODY = {"nanobragg": ARGS, "tile": 48, "frames": 3, "stills": True, "variations": VARY, "seed": 5}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-dataset")


@pytest.fixture(scope="module")
def http(data: Path) -> Iterator[httpx.Client]:
    with serving(data, data / "records.db", cluster=("--workers", "1")) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            yield client


@pytest.fixture(scope="module")
def job(http: httpx.Client) -> dict:
    record = submit(http, BODY)
    assert record["frames"] == 3
    events = read_events(http, record["id"])
    assert events[-1]["event"] == "successful", events[-1]
    return record


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory) -> Path:
    """The same dataset job rendered by ``braggtile render``."""
    out = tmp_path_factory.mktemp("cli-dataset") / "s.zarr"
    vary = [a for key, dist in VARY.items() for a in ("--vary", f"{key}={dist}")]
    cmd = [
        sys.executable, "-m", "service.cli", "render", "--nanobragg", ARGS, "-o", str(out),
        "--tile", "48", "--stills", "3", *vary, "--seed", "5", "--in-process", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, timeout=300)
    return out


def test_frame_truths_are_the_cli_jobs(http: httpx.Client, job: dict, cli_store: Path) -> None:
    cli = StoreReader(str(cli_store))
    truths = []
    for k in range(3):
        r = http.get(f"/v1/jobs/{job['id']}/frames/{k}/truth")
        assert r.status_code == 200, r.text
        truths.append(r.json())
        assert r.json() == cli.frame_truth(k)
    assert len({json.dumps(t["A_matrix"]) for t in truths}) == 3  # every still its own
    assert all(0.1 <= t["mosaic_spread_deg"] <= 0.3 for t in truths)
    r = http.get(f"/v1/jobs/{job['id']}/frames/3/truth")
    assert r.status_code == 404 and r.json()["field"] == "frame"


def test_truth_expt_has_an_experiment_per_frame(http: httpx.Client, job: dict, tmp_path) -> None:
    r = http.get(f"/v1/jobs/{job['id']}/truth.expt")
    assert r.status_code == 200, r.text
    expt = r.json()
    assert expt["__id__"] == "ExperimentList" and len(expt["experiment"]) == 3
    assert len(expt["crystal"]) == 3 and expt["scan"] == []  # stills without oscillation


@needs_dxtbx
def test_served_truth_expt_loads_in_dxtbx(http: httpx.Client, job: dict, tmp_path) -> None:
    path = tmp_path / "truth.expt"
    path.write_bytes(http.get(f"/v1/jobs/{job['id']}/truth.expt").content)
    assert len(dxtbx(LOAD_EXPT, str(path))) == 3


def test_frames_table_of_a_typed_job(http: httpx.Client) -> None:
    experiment = {
        "crystal": {"cell": [50, 60, 70, 90, 90, 90], "default_F": 10},
        "detector": {"fast_pixels": 32, "slow_pixels": 32},
    }
    table = [{"misset": [1, 2, 3]}, {"misset": [4, 5, 6], "lambda": 0.9}]
    record = submit(http, {"job": {"experiment": experiment, "frames_table": table}, "tile": 32})
    assert record["frames"] == 2
    assert read_events(http, record["id"])[-1]["event"] == "successful"
    r = http.get(f"/v1/jobs/{record['id']}/frames/1/truth")
    assert r.json()["misset_deg"] == [4, 5, 6] and r.json()["wavelength_A"] == 0.9


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"variations": {"colour": "random"}}, "variations"),
        ({"variations": {"mosaic": "uniform:2,1"}}, "variations"),
        ({"seed": -1}, "seed"),
        ({"frames_table": [{"N": [0, 1, 1]}]}, "frames_table.0"),
        ({"frames": 2, "frames_table": [{"phi": 1}]}, "frames_table"),
    ],
)
def test_bad_dataset_requests_are_4xx_naming_the_field(http, extra, field) -> None:
    r = http.post("/v1/jobs", json={"nanobragg": ARGS, **extra})
    assert r.status_code in (400, 422), r.text
    body = r.json()
    assert body["field"].startswith(field) and body["detail"]


def test_a_running_job_serves_the_truth_of_its_planned_frames(http, data: Path) -> None:
    """The truth of a frame is written when the frame is planned, before its tiles finish."""
    held = (1, 0, 0)
    tiles = gate(data)
    tiles.hold(held)
    try:
        record = submit(http, {**BODY, "frames": 2, "seed": 8})
        tiles.wait("held", held)
        r = http.get(f"/v1/jobs/{record['id']}/frames/1/truth")
        assert r.status_code == 200, r.text
        assert r.json()["frame"] == 1 and r.json()["values"]["umat"]
        assert http.get(f"/v1/jobs/{record['id']}").json()["status"] == "running"
    finally:
        tiles.release(held)
    assert read_events(http, record["id"])[-1]["event"] == "successful"


def test_a_dataset_frame_over_the_step_limit_is_refused(http: httpx.Client) -> None:
    """Drawn values set each frame's work: cells drawn large enough for C's automatic
    oversampling to pass its limit are refused before any render."""
    body = {"nanobragg": ARGS, "stills": True, "variations": {"N": "uniform:5000,5000"}}
    r = http.post("/v1/jobs", json=body)
    assert r.status_code in (400, 413, 422), r.text
    assert "oversample" in r.json()["detail"]
