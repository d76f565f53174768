"""Limits and file names of a real ``braggtile serve`` started with small limits.

Proves: each configured limit (frames, pixels per frame, inner steps per pixel, inline input
bytes) refuses a job over it with 413 naming the field and the limit, even for absurd step
counts (counted, never built); a job exactly at the limits runs; ``--max-running-jobs 1``
queues the second job as ``accepted`` until the first ends (held by the tile gate);
nanoBragg arguments and typed jobs may name only files of the job's ``inputs`` (no
separators, ``..`` or absolute paths, inputs or outputs alike).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service import TIMEOUT, gate, read_events, serving, submit

from service.events import MAX_EVENT_ID
from service.models import MAX_NANOBRAGG_CHARS
from service.serve import main, parser

BASE = "-cell 100 100 100 90 90 90 -N 3 -default_F 100 -oversample 1"
TINY = f"{BASE} -detpixels 32"
LIMITS = {
    "--max-frames": 2,
    "--max-pixels": 64 * 64,
    "--max-steps-per-pixel": 40,
    "--max-input-bytes": 200,
    "--max-inputs": 4,
}
#: The server's --data folder (its serve.log), set by the http fixture.
DATA: list[Path] = []
HKL = "0 0 1 100\n1 0 0 100\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's --data folder."""
    data = tmp_path_factory.mktemp("limits")
    DATA.append(data)
    return data


@pytest.fixture(scope="module")
def http(data: Path) -> Iterator[httpx.Client]:
    flags = [str(x) for kv in LIMITS.items() for x in kv]
    cluster = ("--workers", "1", "--max-running-jobs", "1", *flags)
    with serving(data, data / "jobs.db", cluster) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            yield client


OVER: list[tuple[dict[str, Any], str, int, str]] = [
    ({"nanobragg": TINY, "frames": 3}, "frames", 2, "frames"),
    ({"nanobragg": f"{BASE} -detpixels 65"}, "-detpixels", 64 * 64, "pixels per frame"),
    ({"nanobragg": f"{TINY} -phisteps 41 -osc 1"}, "nanobragg", 40, "41 phi steps"),
    (
        {"nanobragg": f"{TINY} -mosaic 1 -mosaic_dom 5 -oversample 3"},
        "nanobragg",
        40,
        "5 mosaic domains x 1 phi steps x 3^2 oversample",
    ),
    (
        {"nanobragg": f"{TINY} -hdivrange 1 -hdivsteps 7 -vdivrange 1 -vdivsteps 7 -square_div"},
        "nanobragg",
        40,
        "49 sources",
    ),
    (
        {"nanobragg": f"{TINY} -detector_thick 100 -detector_thicksteps 41"},
        "nanobragg",
        40,
        "41 sensor layers",
    ),  # fmt: skip
    (
        {"nanobragg": f"{TINY} -mosaic 1 -mosaic_dom 100000 -phisteps 100000 -osc 1"},
        "nanobragg",
        40,
        "= 10000000000,",
    ),
    (
        {
            "job": {
                "experiment": {
                    "crystal": {
                        "cell": [100, 100, 100, 90, 90, 90],
                        "default_F": 100,
                        "mosaic_spread_deg": 1,
                        "mosaic_domains": 50,
                    },
                    "detector": {"fast_pixels": 16, "slow_pixels": 16},
                }
            }
        },
        "job.experiment",
        40,
        "50 mosaic domains",
    ),  # fmt: skip
    (
        {"nanobragg": f"{TINY} -hkl P1.hkl", "inputs": {"P1.hkl": HKL * 11}},
        "inputs",
        200,
        "220 bytes",
    ),
]


@pytest.mark.parametrize("body,field,limit,words", OVER)
def test_over_a_limit_is_413_naming_it(http: httpx.Client, body, field, limit, words) -> None:
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 413, r.text
    error = r.json()
    assert (error["field"], error["limit"]) == (field, limit), error
    assert words in error["detail"] and str(limit) in error["detail"], error


def test_a_job_at_the_limits_runs(http: httpx.Client) -> None:
    body = {
        "nanobragg": f"{BASE} -detpixels 64 -phisteps 10 -osc 1 -mosaic 1 -mosaic_dom 4 -hkl a",
        "frames": 2,
        "tile": 32,
        "inputs": {"a": HKL * 10},  # 200 bytes
    }
    job = submit(http, body)
    assert read_events(http, job["id"])[-1]["event"] == "successful"


def test_second_job_queues_while_the_first_runs(http: httpx.Client, data: Path) -> None:
    held, tile = gate(data), (1, 3, 3)  # the first job's last frame: it runs until released
    held.hold(tile)
    first = submit(http, {"nanobragg": f"{BASE} -detpixels 64", "tile": 16, "frames": 2})
    try:
        second = submit(http, {"nanobragg": TINY, "tile": 16})  # one frame: never held
        held.wait("held", tile)
        a, b = (http.get(f"/v1/jobs/{j['id']}").json() for j in (first, second))
        assert a["status"] == "running", a
        assert b["status"] == "accepted" and b["started"] is None, b
    finally:
        held.release(tile)
    assert read_events(http, first["id"])[-1]["event"] == "successful"
    assert read_events(http, second["id"])[-1]["event"] == "successful"
    a, b = (http.get(f"/v1/jobs/{j['id']}").json() for j in (first, second))
    assert datetime.fromisoformat(b["started"]) >= datetime.fromisoformat(a["finished"])


HKL_IN = {"P1.hkl": HKL}
BAD_FILES: list[tuple[dict[str, Any], str]] = [
    ({"nanobragg": f"{TINY} -dump ../x"}, "-dump"),
    ({"nanobragg": f"{TINY} -dump /etc/passwd"}, "-dump"),
    ({"nanobragg": f"{TINY} -floatfile /etc/x"}, "-floatfile"),
    ({"nanobragg": f"{TINY} -floatimage ../../x.bin"}, "-floatimage"),
    ({"nanobragg": f"{TINY} -intfile sub/x.img"}, "-intfile"),
    ({"nanobragg": f"{TINY} -noiseimage .."}, "-noiseimage"),
    ({"nanobragg": f"{TINY} -pgmfile ~root"}, "-pgmfile"),
    ({"nanobragg": f"{TINY} -sourcefile ../sources.txt"}, "-sourcefile"),
    ({"nanobragg": f"{TINY} -sourcefile sources.txt"}, "-sourcefile"),  # not among inputs
    ({"nanobragg": f"{TINY} -mat /etc/A.mat"}, "-mat"),
    ({"nanobragg": f"{TINY} -mat 'C:\\A.mat'"}, "-mat"),
    ({"nanobragg": f"{TINY} -hkl ./P1.hkl", "inputs": HKL_IN}, "-hkl"),
    ({"nanobragg": f"{TINY} -hkl {'/tmp'}/P1.hkl", "inputs": HKL_IN}, "-hkl"),
    ({"nanobragg": TINY, "inputs": {"..": HKL}}, "inputs..."),
    ({"nanobragg": TINY, "inputs": {"a\\b": HKL}}, "inputs.a\\b"),
    ({"job": {"experiment": {"crystal": {"hkl_file": "/etc/passwd"}}}}, "job.experiment.crystal"),
    (
        {"job": {"experiment": {"crystal": {"fdump_file": "../Fdump.bin"}}}},
        "job.experiment.crystal",
    ),
]


@pytest.mark.parametrize("body,field", BAD_FILES)
def test_only_files_of_the_inputs_are_named(http: httpx.Client, body, field) -> None:
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"].startswith(field), r.json()


def test_a_lone_file_flag_names_itself(http: httpx.Client) -> None:
    r = http.post("/v1/jobs", json={"nanobragg": f"{TINY} -hkl"})
    assert r.status_code == 422 and r.json()["field"] == "-hkl"
    assert "-dump" not in r.json()["detail"]  # not the service's own default -dump


def test_nanobragg_length_is_bounded_and_cheap(http: httpx.Client) -> None:
    over = TINY.ljust(MAX_NANOBRAGG_CHARS + 1)
    r = http.post("/v1/jobs", json={"nanobragg": over})
    assert r.status_code == 422, r.text
    assert (r.json()["field"], r.json()["limit"]) == ("nanobragg", MAX_NANOBRAGG_CHARS)
    r = http.post("/v1/jobs", json={"nanobragg": (1 << 20) * "x"})  # 1 MiB: refused unparsed
    assert r.status_code == 422 and r.json()["limit"] == MAX_NANOBRAGG_CHARS
    assert http.post("/v1/jobs", json={"nanobragg": TINY.ljust(MAX_NANOBRAGG_CHARS)}).is_success
    long_token = f"{TINY} -floatfile '{'x' * (MAX_NANOBRAGG_CHARS - len(TINY) - 20)}'"
    r = http.post("/v1/jobs", json={"nanobragg": long_token})  # one 16 kB argument: split
    assert r.status_code == 422 and (r.json()["field"], r.json()["limit"]) == ("-floatfile", 255)


def test_inputs_are_bounded_in_count_and_name_length(http: httpx.Client) -> None:
    five = {f"f{i}.hkl": "" for i in range(5)}
    r = http.post("/v1/jobs", json={"nanobragg": TINY, "inputs": five})
    assert r.status_code == 413 and (r.json()["field"], r.json()["limit"]) == ("inputs", 4)
    for name in ("a" * 256, "é" * 128, "a" * 300):  # bytes of UTF-8: 256, 256, 300
        r = http.post("/v1/jobs", json={"nanobragg": TINY, "inputs": {name: HKL}})
        assert r.status_code == 422, r.text
        assert r.json()["limit"] == 255 and r.json()["field"] == f"inputs.{name}"
    r = http.post(
        "/v1/jobs", json={"nanobragg": f"{TINY} -hkl {'é' * 127}", "inputs": {"é" * 127: HKL}}
    )
    assert r.status_code == 201, r.text  # 254 bytes: a legal name


@pytest.mark.parametrize(
    "body,field",
    [
        ({"nanobragg": "-cell 100 100 100 90 90 90 \ud800"}, "nanobragg"),
        ({"nanobragg": TINY, "inputs": {"\udfff.hkl": "0 0 1 1"}}, "inputs"),
        ({"nanobragg": TINY, "inputs": {"a.hkl": "0 0 1 \ud800"}}, "inputs"),
        ({"job": {"experiment": {"crystal": {"hkl_file": "\ud800"}}}}, "job"),
        ({"nanobragg": TINY, "inputs": {"\ud800": 5}}, "inputs."),  # not a string: typed
    ],
)
def test_lone_surrogates_are_422_naming_the_field(http: httpx.Client, body, field) -> None:
    r = http.post(  # json.dumps escapes a lone surrogate as \\udXXX: legal JSON
        "/v1/jobs", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field or field.endswith(".") and r.json()["field"].startswith(field)


def test_keys_ids_and_numbers_past_their_bounds_are_4xx_naming_them(http: httpx.Client) -> None:
    jid = submit(http, {"nanobragg": TINY, "tile": 16})["id"]
    assert read_events(http, jid)[-1]["event"] == "successful"
    r = http.get(f"/v1/jobs/{jid}/zarr/0/{'x' * 300}")
    assert r.status_code == 422 and (r.json()["field"], r.json()["limit"]) == ("key", 255)
    r = http.get(f"/v1/jobs/{jid}/zarr/{'x/' * 600}zarr.json")
    assert r.status_code == 422 and (r.json()["field"], r.json()["limit"]) == ("key", 1024)
    for headers, params, field in [
        ({"Last-Event-ID": str(2**63)}, {}, "Last-Event-ID"),
        ({"Last-Event-ID": "-1"}, {}, "Last-Event-ID"),
        ({}, {"after": str(2**63)}, "after"),
    ]:
        r = http.get(f"/v1/jobs/{jid}/events", headers=headers, params=params)
        assert r.status_code == 422, r.text
        assert (r.json()["field"], r.json()["limit"]) == (field, MAX_EVENT_ID), r.json()
    assert read_events(http, jid, last=MAX_EVENT_ID) == []  # the largest id: a stream that ends
    r = http.get(f"/v1/jobs/{jid}/frames/{2**40}/tiles/0/0")
    assert r.status_code == 422 and r.json()["field"] == "frame"
    for path, field in [
        ("preview.png?vmin=nan", "vmin"),
        ("tiles/0/0?format=png&vmax=inf", "vmax"),
        ("export?format=smv&adc=-inf", "adc"),
        ("export?format=smv&scale=inf", "scale"),
    ]:
        r = http.get(f"/v1/jobs/{jid}/frames/0/{path}")
        assert r.status_code == 422 and r.json()["field"] == field, (path, r.text)


def test_the_server_logged_no_traceback(http: httpx.Client) -> None:
    log = (DATA[0] / "serve.log").read_text()
    assert "Traceback" not in log, log


def test_serve_limit_flags() -> None:
    args = parser().parse_args(["--max-steps-per-pixel", "7", "--max-frames", "3"])
    assert (args.max_steps_per_pixel, args.max_frames, args.max_pixels) == (7, 3, None)


def test_serve_refuses_a_bad_limit_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--max-steps-per-pixel", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("braggtile serve: error: --max-steps-per-pixel")
