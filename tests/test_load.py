"""A bounded load test on loopback: a real ``braggtile serve`` (2 Dask workers).

20 jobs submitted concurrently and 50 concurrent SSE clients (2-3 per job, connected before
the jobs run). Proves: every job succeeds; every client receives every tile event of its job
exactly once, then ``successful``; and ``GET /v1/jobs/{id}``, polled throughout, always
answers 200. Prints the figures (with the status latency percentiles, which are measured here
but not asserted: speed belongs in a benchmark) as one JSON line (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_service import serving

JOBS, CLIENTS, POLLERS = 20, 50, 4
SIDE, TILE = 128, 16
TILES = (SIDE // TILE) ** 2
ARGS = f"-cell 100 100 100 90 90 90 -N 3 -default_F 100 -oversample 1 -detpixels {SIDE}"

pytestmark = pytest.mark.load


async def follow(http: httpx.AsyncClient, job_id: str) -> list[tuple[str, Any]]:
    """Every (event, data) of a job's SSE stream, to its end."""
    events: list[tuple[str, Any]] = []
    current: dict[str, str] = {}
    async with http.stream("GET", f"/v1/jobs/{job_id}/events") as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if not line:
                if "event" in current:
                    events.append((current["event"], json.loads(current["data"])))
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value.removeprefix(" ")
    return events


async def poll(http: httpx.AsyncClient, ids: list[str], done: asyncio.Event) -> list[float]:
    """GET /v1/jobs/{id} round the jobs until ``done``; the latency of each, seconds."""
    latencies: list[float] = []
    i = 0
    while not done.is_set():
        start = time.perf_counter()
        r = await http.get(f"/v1/jobs/{ids[i % len(ids)]}")
        latencies.append(time.perf_counter() - start)
        assert r.status_code == 200
        i += 1
        await asyncio.sleep(0.01)
    return latencies


async def load(url: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CLIENTS + POLLERS + JOBS + 10)
    timeout = httpx.Timeout(600.0, connect=30.0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
        start = time.perf_counter()
        bodies = [{"nanobragg": f"{ARGS} -seed {i}", "tile": TILE} for i in range(JOBS)]
        replies = await asyncio.gather(*(http.post("/v1/jobs", json=b) for b in bodies))
        assert all(r.status_code == 201 for r in replies), [r.text for r in replies]
        ids = [r.json()["id"] for r in replies]
        done = asyncio.Event()
        pollers = [asyncio.create_task(poll(http, ids, done)) for _ in range(POLLERS)]
        streams = await asyncio.gather(*(follow(http, ids[i % JOBS]) for i in range(CLIENTS)))
        done.set()
        latencies = [x for xs in await asyncio.gather(*pollers) for x in xs]
        wall = time.perf_counter() - start
        records = [(await http.get(f"/v1/jobs/{i}")).json() for i in ids]
    for i, events in enumerate(streams):
        tiles = [(d["frame"], d["row"], d["col"]) for e, d in events if e == "tile"]
        assert len(tiles) == TILES and len(set(tiles)) == TILES, f"client {i}: {len(tiles)}"
        assert events[-1][0] == "successful", events[-1]
    assert all(r["status"] == "successful" for r in records)
    lat = np.array(latencies)
    return {
        "jobs": JOBS,
        "sse_clients": CLIENTS,
        "tiles_per_job": TILES,
        "tile_events_received": sum(e == "tile" for events in streams for e, _ in events),
        "status_requests": len(lat),
        "status_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 1),
        "status_p95_ms": round(float(np.percentile(lat, 95)) * 1e3, 1),
        "status_max_ms": round(float(lat.max()) * 1e3, 1),
        "wall_s": round(wall, 1),
    }


def test_twenty_jobs_fifty_streams_and_status_latency(tmp_path: Path) -> None:
    with serving(tmp_path, tmp_path / "jobs.db") as (url, _):
        figures = asyncio.run(load(url))
    print("\nload:", json.dumps(figures))
    assert figures["status_requests"] >= POLLERS  # each poller asked at least once (each 200)
    assert figures["tile_events_received"] == CLIENTS * TILES
