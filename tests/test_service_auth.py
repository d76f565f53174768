"""Bearer-token authentication of a real ``braggtile serve`` (token from ``BRAGGTILE_TOKEN``).

Proves: every ``/v1`` endpoint answers 401 (JSON, ``WWW-Authenticate: Bearer``) without the
token or with a wrong one, before revealing whether a job exists; ``/healthz``, ``/metrics``
and the viewer page stay open; with the token (header, or ``access_token`` for EventSource and
links) jobs run, stream and serve their store; a refused submission leaves no job behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from test_service import TIMEOUT, read_events, serving, submit

from service.serve import parser

TOKEN = "s3cret-t0ken"
TINY = {"nanobragg": "-cell 100 100 100 90 90 90 -N 3 -default_F 100 -detpixels 64", "tile": 32}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("auth")
    old = os.environ.get("BRAGGTILE_TOKEN")
    os.environ["BRAGGTILE_TOKEN"] = TOKEN
    try:
        with serving(data, data / "jobs.db", ("--workers", "1")) as (url, _):
            yield url
    finally:
        if old is None:
            os.environ.pop("BRAGGTILE_TOKEN", None)
        else:
            os.environ["BRAGGTILE_TOKEN"] = old


@pytest.fixture(scope="module")
def authed(server: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server, timeout=TIMEOUT, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def job(authed: httpx.Client) -> dict:
    job = submit(authed, TINY)
    events = read_events(authed, job["id"])
    assert events[-1]["event"] == "successful"
    return job


def test_open_endpoints_need_no_token(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").json()["status"] == "ok"
    assert anonymous.get("/metrics").status_code == 200
    page = anonymous.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert anonymous.get("/static/api.js").status_code == 200
    assert anonymous.get("/ogcapi/").json()["links"]  # OGC API landing page
    assert anonymous.get("/ogcapi/conformance").json()["conformsTo"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
def test_every_v1_endpoint_refuses_without_the_token(
    anonymous: httpx.Client, job: dict, headers: dict
) -> None:
    jid = job["id"]
    calls = [
        ("GET", "/v1/jobs"),
        ("GET", f"/v1/jobs/{jid}"),
        ("GET", "/v1/jobs/0123456789abcdef0123456789abcdef"),  # no such job: still 401
        ("DELETE", f"/v1/jobs/{jid}"),
        ("GET", f"/v1/jobs/{jid}/events"),
        ("GET", f"/v1/jobs/{jid}/frames/0/tiles/0/0"),
        ("GET", f"/v1/jobs/{jid}/frames/0/levels/0/tiles/0/0"),
        ("GET", f"/v1/jobs/{jid}/frames/0/preview.png"),
        ("GET", f"/v1/jobs/{jid}/frames/0/export"),
        ("GET", f"/v1/jobs/{jid}/zarr/zarr.json"),
        ("HEAD", f"/v1/jobs/{jid}/zarr/zarr.json"),
        ("GET", "/v1/presets"),
        ("GET", "/v1/colormaps"),
        ("GET", "/ogcapi/processes"),
        ("GET", "/ogcapi/processes/render"),
        ("POST", "/ogcapi/processes/render/execution"),
        ("GET", "/ogcapi/jobs"),
        ("GET", f"/ogcapi/jobs/{jid}"),
        ("GET", f"/ogcapi/jobs/{jid}/results"),
    ]
    for method, path in calls:
        r = anonymous.request(method, path, headers=headers)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        if method != "HEAD":
            assert r.json()["field"] == "Authorization", r.text
    wrong = anonymous.get("/v1/jobs", params={"access_token": "wrong"})
    assert wrong.status_code == 401


def test_refused_submission_creates_no_job(anonymous: httpx.Client, authed: httpx.Client) -> None:
    before = authed.get("/v1/jobs").json()["total"]
    r = anonymous.post("/v1/jobs", json=TINY)
    assert r.status_code == 401 and "token" in r.json()["detail"]
    assert authed.get("/v1/jobs").json()["total"] == before


def test_with_the_token_jobs_run_stream_and_serve(
    anonymous: httpx.Client, authed: httpx.Client, job: dict
) -> None:
    jid = job["id"]
    assert authed.get(f"/v1/jobs/{jid}").json()["status"] == "successful"
    tile = authed.get(f"/v1/jobs/{jid}/frames/0/tiles/1/1")
    assert tile.status_code == 200 and tile.content.startswith(b"\x93NUMPY")
    # clients that cannot send headers: the token as a query parameter
    query = {"access_token": TOKEN}
    meta = anonymous.get(f"/v1/jobs/{jid}/zarr/zarr.json", params=query)
    assert meta.status_code == 200 and meta.json()["zarr_format"] == 3
    export = anonymous.get(f"/v1/jobs/{jid}/frames/0/export", params=query)
    assert export.status_code == 200 and len(export.content) == 64 * 64 * 4
    with anonymous.stream("GET", f"/v1/jobs/{jid}/events", params=query) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    assert body.count("event: tile") == 4 and "event: successful" in body


def test_openapi_declares_the_bearer_scheme(anonymous: httpx.Client) -> None:
    schema = anonymous.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    get_job = schema["paths"]["/v1/jobs/{job_id}"]["get"]
    assert {"HTTPBearer": []} in get_job["security"]
    assert "401" in get_job["responses"]


def test_serve_takes_the_token_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAGGTILE_TOKEN", raising=False)
    assert parser().parse_args([]).token is None
    assert parser().parse_args(["--token", "abc"]).token == "abc"
    monkeypatch.setenv("BRAGGTILE_TOKEN", "from-env")
    assert parser().parse_args([]).token == "from-env"
    assert parser().parse_args(["--token", "flag"]).token == "flag"
