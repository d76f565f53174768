"""OGC API - Processes 1.0 at ``/ogcapi`` of a real ``braggtile serve``: every document checked
against the standard's own schemas (tests/data/ogcapi, from its 1.0.0-maintenance branch),
errors as RFC 7807 problems, and OWSLib's client running a job from start to results.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft4Validator
from owslib.ogcapi.processes import Processes
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from test_service import LONG, TIMEOUT, read_events, serving

SCHEMAS = Path(__file__).resolve().parent / "data" / "ogcapi"
BASE = "https://schemas.test/ogcapi-processes-1.0/"
REGISTRY = Registry().with_resources(
    (BASE + p.name, Resource(yaml.safe_load(p.read_text()), specification=DRAFT4))
    for p in SCHEMAS.glob("*.yaml")
)
OGC_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
SMALL = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -lambda 1 -distance 100 -detpixels 64"


def check(document: Any, schema: str) -> None:
    """Fail with every violation of the OGC schema ``schema`` (a file name without .yaml)."""
    validator = Draft4Validator({"$ref": f"{BASE}{schema}.yaml"}, registry=REGISTRY)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, f"{schema}: {errors}"


def problem(r: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """The RFC 7807 body of error response ``r``, checked: status, media type, schema, type."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    check(body, "exception")
    assert body["status"] == status and body["title"] and body["detail"], body
    assert body["type"] == (OGC_EXCEPTIONS + kind if kind else "about:blank"), body
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("ogcapi")
    with serving(data, data / "jobs.db") as (url, _):
        yield url


@pytest.fixture(scope="module")
def ogc(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server + "/ogcapi", timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def v1(server: str) -> Iterator[httpx.Client]:
    """The service's own API (the same jobs)."""
    with httpx.Client(base_url=server, timeout=TIMEOUT) as client:
        yield client


def test_landing_conformance_and_process_follow_the_schemas(ogc: httpx.Client) -> None:
    landing = ogc.get("/").json()
    check(landing, "landingPage")
    rels = {link["rel"].rsplit("/", 1)[-1]: link["href"] for link in landing["links"]}
    assert {"service-desc", "conformance", "processes", "job-list"} <= set(rels)
    conformance = ogc.get(rels["conformance"].removeprefix("/ogcapi")).json()
    check(conformance, "confClasses")
    assert (
        "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in conformance["conformsTo"]
    )
    processes = ogc.get("/processes").json()
    check(processes, "processList")
    assert [p["id"] for p in processes["processes"]] == ["render"]
    render = ogc.get("/processes/render").json()
    check(render, "process")
    assert render["jobControlOptions"] == ["async-execute"]
    fields = {"nanobragg", "job", "frames", "tile", "dtype", "inputs"}
    assert fields | {"stills", "variations", "seed", "frames_table"} == set(render["inputs"])
    assert render["inputs"]["frames"]["schema"] == {"type": "integer", "minimum": 1}
    assert render["inputs"]["dtype"]["schema"]["enum"] == ["float32", "float64"]


def test_execute_status_list_and_results_follow_the_schemas(
    ogc: httpx.Client, v1: httpx.Client
) -> None:
    body = {"inputs": {"nanobragg": SMALL, "tile": {"value": 32}}, "response": "document"}
    r = ogc.post("/processes/render/execution", json=body, headers={"Prefer": "respond-async"})
    assert r.status_code == 201, r.text
    info = r.json()
    check(info, "statusInfo")
    assert r.headers["location"] == f"/ogcapi/jobs/{info['jobID']}"
    assert r.headers["preference-applied"] == "respond-async"
    assert info["status"] in ("accepted", "running") and info["processID"] == "render"
    assert v1.get(f"/v1/jobs/{info['jobID']}").json()["tile"] == 32  # the same job
    assert read_events(v1, info["jobID"])[-1]["event"] == "successful"
    done = ogc.get(r.headers["location"].removeprefix("/ogcapi")).json()
    check(done, "statusInfo")
    assert done["status"] == "successful" and done["progress"] == 100
    results_link = next(link["href"] for link in done["links"] if link["rel"].endswith("results"))
    results = ogc.get(results_link.removeprefix("/ogcapi")).json()
    check(results, "results")
    assert set(results) == {"store", "preview"}


def test_job_list_pages_newest_first(ogc: httpx.Client, v1: httpx.Client) -> None:
    ids = []
    for _ in range(2):
        r = ogc.post("/processes/render/execution", json={"inputs": {"nanobragg": SMALL}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["jobID"])
    for job_id in ids:
        read_events(v1, job_id)
    first = ogc.get("/jobs", params={"limit": 1, "status": "successful"}).json()
    check(first, "jobList")
    assert [j["jobID"] for j in first["jobs"]] == ids[1:]
    after = next(link["href"] for link in first["links"] if link["rel"] == "next")
    second = ogc.get(after.removeprefix("/ogcapi")).json()
    check(second, "jobList")
    assert [j["jobID"] for j in second["jobs"]] == ids[:1]


def test_errors_are_problems(ogc: httpx.Client, v1: httpx.Client) -> None:
    problem(ogc.get("/processes/nothing"), 404, "no-such-process")
    problem(ogc.get("/jobs/0123456789abcdef"), 404, "no-such-job")
    problem(ogc.get("/jobs/0123456789abcdef/results"), 404, "no-such-job")
    execute = "/processes/render/execution"
    body = problem(ogc.post(execute, json={"inputs": {"nanobragg": SMALL, "frames": 0}}), 422)
    assert body["field"] == "inputs.frames" and body["limit"] == 1, body
    body = problem(
        ogc.post(execute, json={"inputs": {"nanobragg": SMALL, "tile": 32, "job": {}}}), 422
    )
    assert "exactly one" in body["detail"], body
    body = problem(
        ogc.post(execute, json={"inputs": {"nanobragg": SMALL}, "outputs": {"x": {}}}), 422
    )
    assert body["field"] == "outputs.x", body
    body = problem(ogc.post(execute, json={"inputs": {}, "subscriber": {}}), 422)
    assert body["field"] == "subscriber", body
    problem(ogc.get("/jobs", params={"limit": 0}), 422)
    r = ogc.post(execute, json={"inputs": LONG})
    assert r.status_code == 201, r.text  # without Prefer too: render only runs asynchronously
    job_id = r.json()["jobID"]
    problem(ogc.get(f"/jobs/{job_id}/results"), 404, "result-not-ready")
    assert v1.delete(f"/v1/jobs/{job_id}").json()["status"] == "dismissed"
    body = problem(ogc.get(f"/jobs/{job_id}/results"), 404)
    assert "dismissed" in body["detail"]


def test_owslib_runs_a_job_to_its_results(server: str, v1: httpx.Client) -> None:
    client = Processes(server + "/ogcapi")
    assert [p["id"] for p in client.processes()] == ["render"]
    render = client.process("render")
    assert "nanobragg" in render["inputs"] and "store" in render["outputs"]
    info = client.execute("render", {"nanobragg": SMALL, "tile": 32}, async_=True)
    location = client.response_headers["Location"]
    assert location == f"/ogcapi/jobs/{info['jobID']}" and info["status"] in ("accepted", "running")
    polls = [client._request(path=f"jobs/{info['jobID']}")["status"]]  # OWSLib has no job API
    assert read_events(v1, info["jobID"])[-1]["event"] == "successful"  # the job ended
    polls.append(client._request(path=f"jobs/{info['jobID']}")["status"])
    assert polls[0] in ("accepted", "running", "successful") and polls[-1] == "successful"
    results = client._request(path=f"jobs/{info['jobID']}/results")
    store = v1.get(results["store"]["href"] + "/zarr.json")
    assert store.status_code == 200 and store.json()["node_type"] == "group"
    preview = v1.get(results["preview"]["href"])
    assert preview.headers["content-type"] == "image/png" and len(preview.content) > 100
