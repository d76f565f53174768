"""Operations of a real ``braggtile serve``: /healthz, purge, retention, and full disks.

Proves: /healthz reports running and queued jobs apart, the free bytes of ``--data`` and each
worker's kind; ``DELETE /v1/jobs/ID?purge=true`` removes a queued, a running or a finished job
with its events and folder (then 404); ``--max-data-bytes`` evicts the least recently used
finished job, ``--retain-days`` every finished job unused for that long, at start-up and as
jobs finish, never a queued or running one; with the data disk full (an 8 MiB tmpfs) a running
job fails with ENOSPC and leaves no partial chunk, a new job gets 507 naming the bytes needed
and free, and the failed job can be purged; with the database's disk full a new job gets 507
with a JSON body; both recover when space returns.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate import TileGate
from small_disk import fill, free, small_disk
from test_service import TIMEOUT, gate, read_events, serving, submit

from service.retention import Finished, choose
from service.space import store_bytes

SMALL = {"nanobragg": "-cell 100 100 100 90 90 90 -N 3 -default_F 100 -detpixels 64", "tile": 32}
#: Long (about 2 s a frame on one torch thread): still running when the test looks at it.
SLOW_ARGS = (
    "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -detpixels 192 -oversample 1 "
    "-phisteps 96 -osc 0.2 -mosaic 0.5 -mosaic_dom 4"
)
ONE = ("--workers", "1", "--torch-threads", "1")
#: The tile of SMALL (frame, tile row, tile column) the tile gate holds.
HELD = (0, 1, 1)


def slow(frames: int) -> dict[str, Any]:
    return {"nanobragg": SLOW_ARGS, "tile": 16, "frames": frames}


def wait_running(http: httpx.Client, job_id: str) -> None:
    """Follow the job's events until it is running (its second status event)."""
    events = read_events(http, job_id, stop_after=2)
    assert [e["data"]["status"] for e in events] == ["accepted", "running"], events


def disk_bytes(folder: Path) -> int:
    """Bytes allocated to a folder's files and folders (du)."""
    return sum(
        os.lstat(os.path.join(root, name)).st_blocks * 512
        for root, dirs, files in os.walk(folder)
        for name in dirs + files
    )


def job_rows(database: Path, job_id: str) -> tuple[int, int]:
    """(records, events) of a job in the service's SQLite database."""
    with closing(sqlite3.connect(database)) as conn:
        jobs = conn.execute("SELECT count(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events WHERE job_id = ?", (job_id,))
        return jobs, events.fetchone()[0]


def assert_purged(http: httpx.Client, data: Path, database: Path, job_id: str) -> None:
    r = http.delete(f"/v1/jobs/{job_id}", params={"purge": "true"})
    assert r.status_code == 204, r.text
    assert http.get(f"/v1/jobs/{job_id}").status_code == 404
    assert http.get(f"/v1/jobs/{job_id}/events").status_code == 404
    assert not (data / "jobs" / job_id).exists()
    assert job_rows(database, job_id) == (0, 0)


def run(http: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Submit a job and follow it to its end: (record at submission, final event)."""
    job = submit(http, body)
    return job, read_events(http, job["id"])[-1]["event"]


def test_healthz_and_purge_of_queued_running_and_finished_jobs(tmp_path: Path) -> None:
    database = tmp_path / "jobs.db"
    with (
        serving(tmp_path, database, (*ONE, "--max-running-jobs", "1")) as (url, _),
        httpx.Client(base_url=url, timeout=TIMEOUT) as http,
    ):
        held = gate(tmp_path)
        held.hold(HELD)  # the first job cannot finish until the test releases this tile
        running = submit(http, SMALL)
        held.wait("held", HELD)
        queued = submit(http, SMALL)
        health = http.get("/healthz").json()
        assert (health["jobs_running"], health["jobs_queued"]) == (1, 1), health
        disk = os.statvfs(tmp_path)
        assert 0 < health["disk_free_bytes"] <= disk.f_blocks * disk.f_frsize
        assert health["workers"] == 1 and len(health["worker_info"]) == 1
        worker = health["worker_info"][0]
        assert worker["kind"] == "cpu" and worker["gpu_index"] is None
        assert worker["threads"] >= 1 and worker["torch_threads"] >= 1

        assert_purged(http, tmp_path, database, queued["id"])
        assert_purged(http, tmp_path, database, running["id"])
        held.release(HELD)
        health = http.get("/healthz").json()
        assert (health["jobs_running"], health["jobs_queued"]) == (0, 0), health

        done, final = run(http, SMALL)  # the service goes on
        assert final == "successful"
        assert http.delete(f"/v1/jobs/{done['id']}").status_code == 409  # finished: no cancel
        assert disk_bytes(tmp_path / "jobs" / done["id"]) <= store_bytes(done)  # an upper bound
        assert_purged(http, tmp_path, database, done["id"])
        assert http.delete(f"/v1/jobs/{done['id']}", params={"purge": "true"}).status_code == 404
        assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == []


def test_retention_by_bytes_least_recently_used_then_by_age(tmp_path: Path) -> None:
    database = tmp_path / "jobs.db"
    with (
        serving(tmp_path, database, ONE) as (url, _),
        httpx.Client(base_url=url, timeout=TIMEOUT) as http,
    ):
        kept, final = run(http, SMALL)  # no policy: kept
        assert final == "successful"
    size = disk_bytes(tmp_path / "jobs" / kept["id"])
    policy = ("--max-data-bytes", str(size * 5 // 2))  # room for two such jobs, not three
    with (
        serving(tmp_path, database, (*ONE, *policy)) as (url, _),
        httpx.Client(base_url=url, timeout=TIMEOUT) as http,
    ):
        assert http.get(f"/v1/jobs/{kept['id']}").status_code == 200  # under the limit
        first, _ = run(http, SMALL)
        assert http.get(f"/v1/jobs/{kept['id']}").status_code == 200  # used after `first`
        second, _ = run(http, SMALL)  # three jobs: the least recently used one goes
        assert http.get(f"/v1/jobs/{first['id']}").status_code == 404
        assert not (tmp_path / "jobs" / first["id"]).exists()
        assert job_rows(database, first["id"]) == (0, 0)
        for job in (kept, second):
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "successful"
    policy = ("--retain-days", "0", "--max-running-jobs", "1")
    with (
        serving(tmp_path, database, (*ONE, *policy)) as (url, _),
        httpx.Client(base_url=url, timeout=TIMEOUT) as http,
    ):
        for job in (kept, second):  # evicted at start-up
            assert http.get(f"/v1/jobs/{job['id']}").status_code == 404
        ahead, behind = submit(http, SMALL), submit(http, slow(1))
        assert read_events(http, ahead["id"])[-1]["event"] == "successful"
        # `behind` was queued or running when `ahead` finished: not evicted; `ahead` goes when
        # `behind` finishes
        assert read_events(http, behind["id"])[-1]["event"] == "successful"
        assert http.get(f"/v1/jobs/{ahead['id']}").status_code == 404
        assert http.get(f"/v1/jobs/{behind['id']}").json()["status"] == "successful"
        assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [behind["id"]]


def assert_507(r: httpx.Response, field: str) -> dict[str, Any]:
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["field"] == field, body
    assert "bytes" in body["detail"], body
    return body


@pytest.mark.parametrize("database_on_it", [False, True], ids=["database-elsewhere", "same-disk"])
def test_full_data_disk(tmp_path: Path, database_on_it: bool) -> None:
    with small_disk(tmp_path / "disk") as disk:
        database = (disk if database_on_it else tmp_path) / "jobs.db"
        with (
            serving(tmp_path, database, (*ONE, "--data", str(disk))) as (url, _),
            httpx.Client(base_url=url, timeout=TIMEOUT) as http,
        ):
            check_full_data_disk(http, gate(tmp_path), disk, database, database_on_it)


def check_full_data_disk(
    http: httpx.Client, held: TileGate, disk: Path, database: Path, same: bool
) -> None:
    held.hold(HELD)
    job = submit(http, SMALL)
    held.wait("held", HELD)  # mid-render: now the disk fills up
    filler = fill(disk)
    held.release(HELD)
    events = read_events(http, job["id"])  # the job still gets its final event
    assert events[-1]["event"] == "failed", events[-1]
    message = events[-1]["data"]["message"]
    assert "No space left on device" in message or (same and "disk is full" in message)
    assert sorted(p.name for p in disk.rglob("*.partial")) == []

    body = assert_507(http.post("/v1/jobs", json=SMALL), "--data")
    assert body["limit"] == free(disk)  # the free bytes, also named in the detail
    assert f"{free(disk)} bytes are free" in body["detail"]
    assert sorted(p.name for p in (disk / "jobs").iterdir()) == [job["id"]]  # none left
    assert http.get("/healthz").json()["disk_free_bytes"] == free(disk)

    assert http.delete(f"/v1/jobs/{job['id']}").status_code == 409  # failed: no cancel
    if same:
        filler.unlink()  # the database needs room to delete
    assert_purged(http, disk, database, job["id"])
    filler.unlink(missing_ok=True)  # space returns
    again, final = run(http, SMALL)
    assert final == "successful"


def test_full_database_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        database = disk / "jobs.db"
        with (
            serving(tmp_path, database, ONE) as (url, _),
            httpx.Client(base_url=url, timeout=TIMEOUT) as http,
        ):
            job, final = run(http, SMALL)
            assert final == "successful"
            filler = fill(disk)
            body = assert_507(http.post("/v1/jobs", json=SMALL), "--database")
            assert body["limit"] == free(disk)
            assert http.get("/v1/jobs").json()["total"] == 1  # reads go on
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "successful"
            assert http.get("/healthz").status_code == 200
            r = http.delete(f"/v1/jobs/{job['id']}", params={"purge": "true"})
            if r.status_code != 204:  # SQLite may still find room in its write-ahead log
                assert_507(r, "--database")
                assert http.get(f"/v1/jobs/{job['id']}").status_code == 200  # all or nothing
            filler.unlink()  # space returns
            again, final = run(http, SMALL)
            assert final == "successful"
            if r.status_code != 204:
                assert_purged(http, tmp_path, database, job["id"])


@pytest.mark.parametrize("flag", ["--retain-days", "--max-data-bytes"])
def test_retention_flags_refuse_negative_values(tmp_path: Path, flag: str) -> None:
    from service.serve import main

    assert main(["--data", str(tmp_path), flag, "-1"]) == 2


def test_store_bytes_counts_every_chunk_and_record_in_whole_blocks() -> None:
    job = {"tile": 32, "frames": 2, "dtype": "float32", "levels": [[64, 64], [32, 32]]}
    # per frame: 4 + 1 chunks of 32 x 32 x 4 bytes, 4 records of 72 bytes, each in a 4 KiB
    # block; then 256 KiB of metadata, all times 1.25
    assert store_bytes({**job, "grid": [2, 2]}) == (2 * (5 * 4096 + 4 * 4096) + 262144) * 1.25
    # float64: a chunk of 8 KiB is 2 blocks
    bigger = {**job, "dtype": "float64", "grid": [2, 2]}
    assert store_bytes(bigger) == (2 * (5 * 8192 + 4 * 4096) + 262144) * 1.25


def test_choose_evicts_the_old_then_the_least_recently_used() -> None:
    jobs = [Finished("a", 100.0, 10), Finished("b", 50.0, 10), Finished("c", 200.0, 10)]
    assert choose(jobs, total=40, max_bytes=None, cutoff=None) == []
    assert choose(jobs, total=40, max_bytes=30, cutoff=None) == ["b"]
    assert choose(jobs, total=40, max_bytes=15, cutoff=None) == ["b", "a", "c"]
    assert choose(jobs, total=40, max_bytes=None, cutoff=150.0) == ["b", "a"]
    assert choose(jobs, total=40, max_bytes=30, cutoff=60.0) == ["b"]  # both say b only
    assert choose(jobs, total=40, max_bytes=25, cutoff=60.0) == ["b", "a"]
