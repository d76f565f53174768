"""Faults with real processes, killed by PID (never by name).

- A Dask worker SIGKILLed mid-render (scheduler + 2 worker processes on loopback, the service
  attached with ``--scheduler``): the job succeeds, bit-identical to an undisturbed render.
- ``braggtile serve`` SIGKILLed mid-job (with its worker processes: its whole process group,
  as a crashed host), started again on the same ``--data``: the job resumes and succeeds; the
  tiles finished before the crash are kept (their records' ``rendered_at`` unchanged), the rest
  rendered, a torn chunk (planted) of an unfinished tile is rendered again, not kept; every
  tile has exactly one ``tile`` event; pixels and frame statistics equal an undisturbed
  render of the same job bit for bit.
- SIGTERM: a submission in flight gets 503 JSON (draining), the process exits after a
  graceful shutdown, the running job stays ``running`` in the database and resumes on
  restart to the same pixels.

Every fault lands mid-job by construction: the tests hold a tile of the last frame with the
tile gate (tests/gate.py) and strike while a worker holds it, whatever the speed of tiles.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from distributed import Client
from gate import TileGate, wait_for_removal
from test_service import (
    ROOT,
    TIMEOUT,
    free_port,
    gate,
    read_events,
    ready_file,
    serving,
    submit,
)  # fmt: skip

from tiling.store import StoreReader

ARGS = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -detpixels 192 -oversample 1"
STEPS = "-phisteps 8 -osc 0.2 -mosaic 0.5 -mosaic_dom 2"
JOB = {"nanobragg": f"{ARGS} {STEPS}", "tile": 16, "frames": 2}
SIDE = 192
TOTAL = 2 * 12 * 12
CLUSTER = ("--workers", "1", "--torch-threads", "1")
#: The tile held while a fault strikes: the last frame's, near the beam centre, so that with
#: one worker thread the first frame is done and the second has barely begun.
HELD = (1, 6, 6)
#: A tile of another task of the last frame (a corner, far from the beam: its task comes after
#: HELD's), held until the service has exited, so the drained job cannot finish before its
#: render is stopped, however fast the rest of it renders.
LAST = (1, 0, 0)


def rendered_at(store: Path) -> dict[tuple[int, int, int], float]:
    """rendered_at of every finished tile of the store on disk."""
    return {key: record.rendered_at for key, record in StoreReader(str(store)).records().items()}


def hold_mid_job(http: httpx.Client, held: TileGate) -> dict[str, Any]:
    """Submit JOB with :data:`HELD` held; return it once a worker holds that tile (running)."""
    held.hold(HELD)
    job = submit(http, JOB)
    held.wait("held", HELD)
    record = http.get(f"/v1/jobs/{job['id']}").json()
    assert record["status"] == "running" and record["tiles_done"] < TOTAL, record
    return job


def assert_same_as_clean(http: httpx.Client, job_id: str, events: list[dict[str, Any]]) -> None:
    """The job's tiles, pixels and statistics against an undisturbed render on this server."""
    tiles = [(e["data"]["frame"], e["data"]["row"], e["data"]["col"]) for e in events
             if e["event"] == "tile"]  # fmt: skip
    assert len(tiles) == TOTAL and len(set(tiles)) == TOTAL, "one tile event per tile"
    assert events[-1]["event"] == "successful"
    clean = submit(http, JOB)
    clean_events = read_events(http, clean["id"])
    assert clean_events[-1]["event"] == "successful"

    def stats(evs: list[dict[str, Any]]) -> dict[int, Any]:
        return {e["data"]["frame"]: e["data"] for e in evs if e["event"] == "frame"}

    assert stats(events) == stats(clean_events)  # bit-identical statistics (JSON floats)
    for frame in range(2):
        ours = http.get(f"/v1/jobs/{job_id}/frames/{frame}/export").content
        theirs = http.get(f"/v1/jobs/{clean['id']}/frames/{frame}/export").content
        assert len(ours) == SIDE * SIDE * 4 and ours == theirs
        assert np.frombuffer(ours, "<f4").max() > 0


def test_serve_killed_mid_job_resumes_and_keeps_finished_tiles(tmp_path: Path) -> None:
    database = tmp_path / "jobs.db"
    held = gate(tmp_path)
    with serving(tmp_path, database, CLUSTER) as (url, proc):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            job = hold_mid_job(http, held)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        os.killpg(proc.pid, signal.SIGKILL)  # its workers too: the host crashed
    held.clear()  # the restarted service renders freely
    store = tmp_path / "jobs" / job["id"] / "store.zarr"
    kept = rendered_at(store)
    assert 0 < len(kept) < TOTAL
    # a torn chunk, as a crash mid-write would leave it, for a tile without a record
    torn = next((f, r, c) for f in range(2) for r in range(12) for c in range(12)
                if (f, r, c) not in kept)  # fmt: skip
    whole = (store / "0" / "c" / "/".join(map(str, next(iter(kept))))).read_bytes()
    torn_path = store / "0" / "c" / "/".join(map(str, torn))
    torn_path.parent.mkdir(parents=True, exist_ok=True)
    torn_path.write_bytes(whole[: len(whole) // 2])
    restarted = time.time()
    with serving(tmp_path, database, CLUSTER) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            events = read_events(http, job["id"])
            after = rendered_at(store)
            assert len(after) == TOTAL
            assert {k: after[k] for k in kept} == kept, (
                "finished tiles are kept, not rendered again"
            )
            assert all(t >= restarted for k, t in after.items() if k not in kept)
            assert_same_as_clean(http, job["id"], events)  # the torn chunk was not kept


def test_sigterm_drains_then_the_job_resumes(tmp_path: Path) -> None:
    database = tmp_path / "jobs.db"
    held = gate(tmp_path)
    held.hold(LAST)
    with serving(tmp_path, database, CLUSTER) as (url, proc):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            job = hold_mid_job(http, held)
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps(JOB).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            head = (
                f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
            sock.sendall(head)
            # the server asks for the body once the endpoint reads it: the request is in flight
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
            os.kill(proc.pid, signal.SIGTERM)
            wait_for_removal(ready_file(tmp_path), 60)  # drained: no new jobs from here on
            held.release(HELD)  # the held task ends; LAST's task keeps the job unfinished
            sock.sendall(body)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        status_line, _, rest = reply.partition(b"\r\n")
        assert b" 503 " in status_line, reply
        error = json.loads(rest.split(b"\r\n\r\n", 1)[1])
        assert "shutting down" in error["detail"]
        # uvicorn ends a graceful shutdown by re-raising the signal: exit status -SIGTERM
        assert proc.wait(120) in (0, -signal.SIGTERM)
        with sqlite3.connect(database) as db:
            rows = db.execute("select id, status from jobs").fetchall()
        assert rows == [(job["id"], "running")], "one job, persisted as running (no new job)"
    kept = rendered_at(tmp_path / "jobs" / job["id"] / "store.zarr")
    assert 0 < len(kept) < TOTAL
    held.clear()
    with serving(tmp_path, database, CLUSTER) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            events = read_events(http, job["id"])
            assert_same_as_clean(http, job["id"], events)


def test_worker_killed_mid_render_the_job_completes_identically(tmp_path: Path) -> None:
    """A Dask worker (no nanny: its own PID) SIGKILLed mid-render on a scheduler + 2 worker
    cluster: its tasks run elsewhere, the job succeeds, bit-identical to an undisturbed one."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_BRAGGTILE__WORKER__TORCH_THREADS": "1"}
    env.update(TileGate(tmp_path / "gate").env())
    procs: list[subprocess.Popen] = []

    def start(argv: list[str]) -> subprocess.Popen:
        log = open(tmp_path / f"{len(procs)}-{argv[1]}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        procs.append(proc)
        return proc

    dask = str(Path(sys.executable).parent / "dask")
    try:
        start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
               "--dashboard-address", ":0"])  # fmt: skip
        workers = [
            start(
                [
                    dask,
                    "worker",
                    address,
                    "--no-nanny",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    ":0",
                ]
            )  # fmt: skip
            for _ in range(2)
        ]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=180)
        held = TileGate(tmp_path / "gate")  # the scheduler's workers were started with it
        with serving(tmp_path, tmp_path / "jobs.db", ("--scheduler", address)) as (url, _):
            with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
                job = hold_mid_job(http, held)
                victim = next(w for w in workers if w.pid == held.holder(HELD))
                held.clear()  # its task, run again elsewhere, passes
                os.kill(victim.pid, signal.SIGKILL)  # with the held task in hand
                assert victim.wait(30) == -signal.SIGKILL
                events = read_events(http, job["id"])
                assert events[-1]["event"] == "successful", events[-1]
                assert_same_as_clean(http, job["id"], events)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
