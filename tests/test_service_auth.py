"""Bearer-token authentication of a real ``braggtile serve`` (token from ``BRAGGTILE_TOKEN``).

Proves: every ``/v1`` endpoint answers 401 (JSON, ``WWW-Authenticate: Bearer``) without the
token or with a wrong one, before revealing whether a job exists and before reading the body;
``/healthz``, ``/metrics`` and the viewer page stay open; with the token jobs run, stream and
serve their store; a token in the URL (``access_token``) or a signed ticket opens only the
event stream (a ticket only its own job's, until it expires); neither reaches the access log;
a body over ``--max-body-bytes`` is 413 naming the limit, before it is read or while it
streams in; a refused submission leaves no job behind.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service import TIMEOUT, read_events, serving, submit

from service.auth import Tickets
from service.serve import parser

TOKEN = "s3cret-t0ken"
MAX_BODY = 100_000
#: The server's --data folder (its serve.log), set by the server fixture.
DATA: list[Path] = []
TINY = {"nanobragg": "-cell 100 100 100 90 90 90 -N 3 -default_F 100 -detpixels 64", "tile": 32}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("auth")
    DATA.append(data)
    old = os.environ.get("BRAGGTILE_TOKEN")
    os.environ["BRAGGTILE_TOKEN"] = TOKEN
    try:
        cluster = ("--workers", "1", "--max-body-bytes", str(MAX_BODY))
        with serving(data, data / "jobs.db", cluster, log_level="info") as (url, _):
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
        ("POST", f"/v1/jobs/{jid}/events/ticket"),
        ("GET", "/v1/no-such-route"),
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


def test_with_the_token_jobs_run_stream_and_serve(authed: httpx.Client, job: dict) -> None:
    jid = job["id"]
    assert authed.get(f"/v1/jobs/{jid}").json()["status"] == "successful"
    tile = authed.get(f"/v1/jobs/{jid}/frames/0/tiles/1/1")
    assert tile.status_code == 200 and tile.content.startswith(b"\x93NUMPY")
    meta = authed.get(f"/v1/jobs/{jid}/zarr/zarr.json")
    assert meta.status_code == 200 and meta.json()["zarr_format"] == 3


def test_the_token_in_the_url_opens_only_the_event_stream(
    anonymous: httpx.Client, authed: httpx.Client, job: dict
) -> None:
    jid = job["id"]
    query = {"access_token": TOKEN}
    with anonymous.stream("GET", f"/v1/jobs/{jid}/events", params=query) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    assert body.count("event: tile") == 4 and "event: successful" in body
    for method, path in [
        ("GET", f"/v1/jobs/{jid}/zarr/zarr.json"),
        ("GET", f"/v1/jobs/{jid}/frames/0/export"),
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs"),
        ("DELETE", f"/v1/jobs/{jid}"),
        ("POST", f"/v1/jobs/{jid}/events/ticket"),
    ]:
        r = anonymous.request(method, path, params=query, json=TINY if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["field"] == "access_token" and "event stream" in r.json()["detail"]
    assert authed.get(f"/v1/jobs/{jid}").json()["status"] == "successful"  # not cancelled


def test_a_ticket_opens_its_jobs_stream_only(
    anonymous: httpx.Client, authed: httpx.Client, job: dict
) -> None:
    jid = job["id"]
    assert anonymous.post(f"/v1/jobs/{jid}/events/ticket").status_code == 401
    issued = authed.post(f"/v1/jobs/{jid}/events/ticket")
    assert issued.status_code == 200, issued.text
    ticket = issued.json()["ticket"]
    assert issued.json()["href"] == f"/v1/jobs/{jid}/events?ticket={ticket}"
    with anonymous.stream("GET", issued.json()["href"]) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    assert body.count("event: tile") == 4 and "event: successful" in body
    other = submit(authed, TINY)["id"]
    tampered = ticket[:-1] + ("0" if ticket[-1] != "0" else "1")
    forged = ticket.replace(jid, other, 1)  # another job's id under this job's signature
    refused = [
        f"/v1/jobs/{other}/events?ticket={ticket}",
        f"/v1/jobs/{jid}/events?ticket={tampered}",
        f"/v1/jobs/{other}/events?ticket={forged}",
        f"/v1/jobs/{jid}/zarr/zarr.json?ticket={ticket}",
        f"/v1/jobs/{jid}?ticket={ticket}",
    ]
    for url in refused:
        r = anonymous.get(url)
        assert r.status_code == 401, (url, r.text)
        assert r.json()["field"] in ("ticket", "access_token"), r.text


def test_tickets_expire_and_are_bound_to_the_key() -> None:
    tickets = Tickets(seconds=60, key=b"k" * 32)
    ticket, expires = tickets.issue("job1", now=1000.0)
    assert expires == 1060
    assert tickets.valid(ticket, "job1", now=1060.0)
    assert not tickets.valid(ticket, "job1", now=1060.5)
    assert not tickets.valid(ticket, "job2", now=1000.0)
    assert not Tickets(key=b"x" * 32).valid(ticket, "job1", now=1000.0)
    assert not tickets.valid(ticket.replace("1060", "9999"), "job1", now=1000.0)


def raw_exchange(url: str, head: str, body_part: bytes) -> tuple[int, dict]:
    """Send a request's head and only the start of its body; the status and JSON of the
    answer, which must come without the rest of the body being sent."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body_part)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        length = 0
        while line := reader.readline().strip():
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, json.loads(reader.read(length))


def test_the_token_is_checked_before_the_body_is_read(server: str, anonymous: httpx.Client) -> None:
    r = anonymous.post(
        "/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 401, r.text  # not 422: the body was never parsed
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 50000000"
    )
    status, body = raw_exchange(server, head, b'{"nanobragg": "')
    assert status == 401 and body["field"] == "Authorization"


def test_a_body_over_the_limit_is_413_naming_it(server: str, authed: httpx.Client) -> None:
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY + 1}"
    )
    status, body = raw_exchange(server, head, b'{"nanobragg": "')  # refused on its length
    assert status == 413 and body["field"] == "body" and body["limit"] == MAX_BODY, body
    assert str(MAX_BODY) in body["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        yield b'{"nanobragg": "'
        for _ in range(MAX_BODY // 10_000 + 1):
            yield b"x" * 10_000

    r = authed.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["field"] == "body" and r.json()["limit"] == MAX_BODY
    at_limit = b'{"junk": "' + b"x" * (MAX_BODY - 12) + b'"}'
    assert len(at_limit) == MAX_BODY
    r = authed.post("/v1/jobs", content=at_limit, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "junk", r.text  # read and parsed


def test_no_secret_reaches_the_log(
    server: str, anonymous: httpx.Client, authed: httpx.Client, job: dict
) -> None:
    jid = job["id"]
    ticket = authed.post(f"/v1/jobs/{jid}/events/ticket").json()["ticket"]
    for query in ({"access_token": TOKEN}, {"ticket": ticket}):
        with anonymous.stream("GET", f"/v1/jobs/{jid}/events", params=query) as r:
            assert r.status_code == 200
            r.read()
    assert anonymous.get(f"/v1/jobs/{jid}/zarr/zarr.json", params={"access_token": TOKEN})
    log = (DATA[0] / "serve.log").read_text()
    assert f"/v1/jobs/{jid}/events?access_token=REDACTED" in log, log[-3000:]
    assert f"/v1/jobs/{jid}/events?ticket=REDACTED" in log
    assert TOKEN not in log and ticket.rpartition(".")[2] not in log


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
