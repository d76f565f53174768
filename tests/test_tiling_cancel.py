"""render_job's cancel hook: set from another thread, the job stops and resumes later."""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path

import pytest

from engine.resolve import parse_nanobragg
from tiling.cluster import connect
from tiling.events import Event, JobStarted, TileDone
from tiling.graph import JobCancelled, render_job
from tiling.job import JobSpec
from tiling.store import TileStore

ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 128"


def test_a_cancelled_job_stops_its_tasks_and_resumes_later(tmp_path: Path) -> None:
    job = JobSpec(parse_nanobragg(shlex.split(ARGS)).experiment, frames=4, tile=8)
    total = 4 * 16 * 16
    path = str(tmp_path / "c.zarr")
    cancel = threading.Event()
    seen: list[Event] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        if isinstance(event, TileDone) and event.tiles_done == 3:
            threading.Thread(target=cancel.set).start()  # as a request thread would

    with connect(workers=1, torch_threads=1, gpu=False) as client:
        with pytest.raises(JobCancelled):
            render_job(client, path, job, on_event=on_event, cancel=cancel)
        deadline = time.monotonic() + 60  # the scheduler drops the queued tasks (asynchronously)
        while any(client.processing().values()):
            assert time.monotonic() < deadline, "tasks still running 60 s after cancel"
            time.sleep(0.1)
        stopped = len(TileStore.open_or_create(path, job)[0].records())
        assert 3 <= stopped < total
        time.sleep(1.0)
        assert len(TileStore.open_or_create(path, job)[0].records()) == stopped
        resumed: list[Event] = []
        done = render_job(client, path, job, on_event=resumed.append, cancel=threading.Event())
    started = resumed[0]
    assert isinstance(started, JobStarted) and started.tiles_done == stopped
    assert done.tiles_rendered == total - stopped
    assert len(TileStore.open_or_create(path, job)[0].records()) == total
