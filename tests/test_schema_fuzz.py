"""Property-based requests against a real ``braggtile serve``: never a 5xx, never a traceback.

Every operation of the app's OpenAPI document (collected from the app, and checked against the
live server's ``/openapi.json``, so new routes are covered without editing this file) gets
random values for each of its path, query, header and body fields: lengths from empty to past
the limits, Unicode (invalid UTF-8 in URLs, lone surrogates in JSON), numbers from negative to
past 2^64, NaN and infinities. Job ids are drawn from real jobs (finished, running, queued) as
well as random text, so requests reach the code behind the 404. Every answer is below 500,
every error is the service's JSON body, and the server's log never shows a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_service import LONG_ARGS, TIMEOUT, read_events, serving

from service.app import create_app
from service.settings import Settings

TOKEN = "fuzz-t0ken"
LIMITS = (
    "--max-pixels", "65536", "--max-frames", "3", "--max-steps-per-pixel", "64",
    "--max-inputs", "8", "--max-body-bytes", "200000", "--max-running-jobs", "1",
)  # fmt: skip
TINY = "-cell 100 100 100 90 90 90 -N 3 -default_F 100 -detpixels 32 -oversample 1"
#: Operations the schema leaves out on purpose but a client may still call.
HIDDEN = [("HEAD", "/v1/jobs/{job_id}/zarr/{key}", "get")]
EXAMPLES = 40


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in the app's OpenAPI document."""
    schema = create_app(Settings()).openapi()
    ops = [
        (method.upper(), path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
    ]
    ops += [(m, path, schema["paths"][path][like]) for m, path, like in HIDDEN]
    return sorted(ops, key=lambda o: o[0] == "DELETE")  # cancel the jobs after reading them


OPERATIONS = operations()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    cluster = ("--workers", "1", "--token", TOKEN, *LIMITS)
    with serving(data, data / "jobs.db", cluster) as (url, _):
        yield url, data / "serve.log"


@pytest.fixture(scope="module")
def http(server: tuple[str, Path]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server[0], timeout=TIMEOUT, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def job_ids(http: httpx.Client) -> list[str]:
    """A finished job, a running one and one queued behind it (one job runs at a time)."""
    finished = http.post("/v1/jobs", json={"nanobragg": TINY, "tile": 16}).json()["id"]
    assert read_events(http, finished)[-1]["event"] == "successful"
    running = {"nanobragg": LONG_ARGS.replace("-phisteps 2", ""), "tile": 16, "frames": 3}
    ids = [finished] + [http.post("/v1/jobs", json=running).json()["id"] for _ in range(2)]
    statuses = [http.get(f"/v1/jobs/{i}").json()["status"] for i in ids]
    assert statuses[0] == "successful" and statuses[2] == "accepted", statuses
    return ids


# --- values ---------------------------------------------------------------------------------


def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` three times in four, else ``odd`` (so requests get past the first check)."""
    return st.integers(0, 3).flatmap(lambda i: odd if i == 0 else usual)


NUMBERS = [0, 1, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**40, -(2**63)]
ODD_TEXT = ["", " ", "..", "../../etc/passwd", "a" * 300, "é" * 200, "\x00", "%", "\ud800"]
TEXT = st.one_of(
    st.text(max_size=30),
    st.text(min_size=200, max_size=600),
    st.sampled_from(ODD_TEXT),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF).map(lambda c: f"x{c}y"),
)
INT_TEXT = st.one_of(
    st.integers(0, 3).map(str),
    st.sampled_from(NUMBERS).map(str),
    st.integers().map(str),
    st.sampled_from(["1e3", "0x10", "1_0", "nan", "inf", "-inf", "1.5", "٣", "9" * 30]),
)
FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "1e-400", "0"]),
    INT_TEXT,
)
HEADER_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f")),
    st.sampled_from(NUMBERS).map(str),
    st.text("0123456789", min_size=19, max_size=80),
).map(lambda text: text.strip(" \t").encode("latin-1"))  # bytes as on the wire
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6
    + ["application/json; charset=utf-16", "text/plain", "multipart/form-data; boundary=x", "x"]
)
KEYS = ["zarr.json", "0/zarr.json", "0/c/0/0/0", "0/c/0/1/1", "1/c/0/0/0", "0/c/9/9/9"]
JSON = st.recursive(
    st.none() | st.booleans() | st.sampled_from(NUMBERS) | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def nanobragg_text() -> st.SearchStrategy[str]:
    """Tiny valid jobs, valid ones with random trailing words, and text of any length."""
    words = st.lists(st.sampled_from(["-N", "-detpixels", "-hkl", "-floatfile", "'", '"', "\\"])
                     | TEXT | INT_TEXT, max_size=6)  # fmt: skip
    return st.one_of(
        st.just(TINY),
        words.map(lambda w: TINY + " " + " ".join(w)),
        TEXT.map(lambda name: f"{TINY} -floatfile {name!r}"),
        TEXT,
        st.sampled_from([16384, 16385]).map(lambda n: ("-N 3 " * n)[:n]),
    )


#: Body fields a submission that gets accepted has, and the odd values they are tried with.
PLAUSIBLE = {
    "nanobragg": (st.sampled_from([TINY, f"{TINY} -N 2"]), nanobragg_text()),
    "tile": (st.sampled_from([16, 32]), st.sampled_from(NUMBERS)),
    "frames": (st.sampled_from([1, 2]), st.sampled_from(NUMBERS)),
    "inputs": (st.just({}), st.dictionaries(TEXT, TEXT, max_size=12)),
}


def body_value(name: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A JSON value for body field ``name``: usually one a job could have, else anything."""
    if name in PLAUSIBLE:
        usual, odd = PLAUSIBLE[name]
        return mostly(usual, st.one_of(odd, JSON))
    return param_json(schema)


def param_json(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kinds = {s.get("type") for s in schema.get("anyOf", [schema])}
    enum = [v for s in schema.get("anyOf", [schema]) for v in s.get("enum", [])]
    if enum:
        return mostly(st.sampled_from(enum), JSON)
    if kinds & {"integer", "number"}:
        return st.one_of(st.sampled_from(NUMBERS), st.floats(), JSON)
    return JSON


def body_of(schema: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """A request body: a JSON object of the schema's fields with random values, or junk."""
    props = schema.get("properties", {})
    fields = st.fixed_dictionaries({}, optional={k: body_value(k, v) for k, v in props.items()})
    as_json = fields.map(lambda d: json.dumps(d).encode())  # \\ud800 escapes stay legal JSON
    junk = st.one_of(st.binary(max_size=64), JSON.map(lambda v: json.dumps(v).encode()))
    deep = st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n)
    return mostly(as_json, st.one_of(junk, deep))


def param_value(param: dict[str, Any], job_ids: list[str]) -> st.SearchStrategy[str]:
    """Text for one path, query or header parameter."""
    name, schema = param["name"], param.get("schema", {})
    if param["in"] == "header":
        return HEADER_TEXT
    if name == "job_id":
        return mostly(st.sampled_from(job_ids), TEXT)
    if name == "key":
        return mostly(st.sampled_from(KEYS), st.one_of(TEXT, TEXT.map(lambda t: f"0/c/{t}")))
    kinds = {s.get("type") for s in schema.get("anyOf", [schema])}
    enum = [v for s in schema.get("anyOf", [schema]) for v in s.get("enum", [])]
    enum += [v for s in schema.get("anyOf", [schema]) for v in s.get("items", {}).get("enum", [])]
    if enum:
        return mostly(st.sampled_from(enum), TEXT)
    if "integer" in kinds:
        return mostly(st.integers(0, 2).map(str), st.one_of(INT_TEXT, TEXT))
    if "number" in kinds:
        return mostly(st.sampled_from(["0", "1", "100", "0.5"]), st.one_of(FLOAT_TEXT, TEXT))
    return TEXT


def encode(text: str, safe: str = "") -> str:
    """Percent-encoded UTF-8 (a lone surrogate becomes bytes that are not UTF-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


# --- requests -------------------------------------------------------------------------------


@st.composite
def requests_for(draw, path: str, op: dict[str, Any], job_ids: list[str]) -> dict[str, Any]:
    """url, query, headers and body of one request to operation ``op`` at ``path``."""
    url, query, headers = path, [], {"Authorization": f"Bearer {TOKEN}"}
    for param in op.get("parameters", []):
        if param["in"] != "path" and draw(st.booleans()):
            continue  # optional parameters: sometimes absent
        value = draw(param_value(param, job_ids))
        if param["in"] == "path":
            url = url.replace(
                "{" + param["name"] + "}", encode(value, "/" * (param["name"] == "key"))
            )
        elif param["in"] == "query":
            query.append(f"{encode(param['name'])}={encode(value)}")
        else:
            headers[param["name"]] = value
    if draw(st.integers(0, 9)) == 0:
        headers["Authorization"] = draw(HEADER_TEXT)
    body = None
    if "requestBody" in op:
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = OPENAPI_SCHEMAS[ref.rsplit("/", 1)[1]]
        body = draw(body_of(schema))
        headers["Content-Type"] = draw(CONTENT_TYPES)
    return {"url": url + ("?" + "&".join(query) if query else ""), "headers": headers, "body": body}


OPENAPI_SCHEMAS = create_app(Settings()).openapi()["components"]["schemas"]


def call(client: httpx.Client, method: str, request: dict[str, Any]) -> httpx.Response:
    """Send ``request``; an event stream is read to its end only for a finished job."""
    with client.stream(
        method, request["url"], headers=request["headers"], content=request["body"]
    ) as response:
        streaming = response.headers.get("content-type", "").startswith("text/event-stream")
        if not streaming:
            response.read()
        return response


def test_the_live_schema_has_these_operations(http: httpx.Client) -> None:
    live = http.get("/openapi.json").json()["paths"]
    assert {(m.upper(), p) for p, item in live.items() for m in item} == {
        (m, p) for m, p, _ in OPERATIONS if (m, p, "get") not in HIDDEN
    }


@pytest.mark.parametrize(
    ("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_random_requests_get_no_server_error(
    http: httpx.Client,
    server: tuple[str, Path],
    job_ids: list[str],
    method: str,
    path: str,
    op: dict,
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests_for(path, op, job_ids))
    def check(request: dict[str, Any]) -> None:
        response = call(http, method, request)
        assert response.status_code < 500, (method, request, response.status_code)
        if response.status_code >= 400 and method != "HEAD":
            body = response.json()
            assert isinstance(body["detail"], str) and body["detail"], body

    check()
    log = server[1].read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
