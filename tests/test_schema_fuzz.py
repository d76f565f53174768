"""Schemathesis against the OpenAPI schema of a real ``braggtile serve``: no 5xx responses.

Every operation of the schema (but the SSE stream, which stays open while its job runs) gets
generated requests, valid and invalid, within a bounded number of examples; the server runs
with small limits so any job the fuzzer manages to submit stays tiny.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from test_service import serving

LIMITS = ("--max-pixels", "4096", "--max-frames", "2", "--max-steps-per-pixel", "16")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    with serving(data, data / "jobs.db", ("--workers", "1", *LIMITS)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def api_schema(server: str):
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/events$")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:
    response = case.call(timeout=60)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400 and case.method != "HEAD":
        body = response.json()
        assert isinstance(body["detail"], str) and body["detail"], body
