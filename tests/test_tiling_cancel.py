"""render_job's cancel hook: set from another thread, the job stops and resumes later."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

import dask.config
import pytest
from gate import TileGate

from engine.resolve import parse_nanobragg
from tiling.cluster import connect
from tiling.events import Event, JobStarted
from tiling.gate import GATE_ENV
from tiling.graph import JobCancelled, render_job
from tiling.grid import beam_centre_pixels
from tiling.job import JobSpec
from tiling.store import TileStore

ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 128"
#: Tile rows of one task of frame 0: tiles of 8 pixels are narrower than a compiled block, so
#: a task spans level-1 chunks (2 x 2 tiles) side by side, here the whole width of the grid.
ROWS = (4, 5)


def test_a_cancelled_job_stops_its_tasks_and_resumes_later(tmp_path: Path, monkeypatch) -> None:
    job = JobSpec(parse_nanobragg(shlex.split(ARGS)).experiment, frames=4, tile=8)
    # the task's tiles, nearest the beam centre first (the order its worker reaches them)
    order = job.grid.ordered(*beam_centre_pixels(job.experiment))
    group = [(0, t.row, t.col) for t in order if t.row in ROWS]
    assert len(group) == 2 * 16
    total = 4 * 16 * 16
    path = str(tmp_path / "c.zarr")
    cancel = threading.Event()
    gate = TileGate(tmp_path / "gate")
    monkeypatch.setenv(GATE_ENV, str(gate.folder))  # the cluster's worker inherits it
    gate.hold(*group)

    def cancel_when_held() -> None:  # as a request thread would, while the task is in hand
        gate.wait("held", group[0])
        cancel.set()

    with (
        dask.config.set({"braggtile.tiling.whole-frame-tasks": 0}),  # tasks of 2 tile rows
        connect(workers=1, torch_threads=1, gpu=False) as client,
    ):
        threading.Thread(target=cancel_when_held, daemon=True).start()
        with pytest.raises(JobCancelled):
            render_job(client, path, job, cancel=cancel)
        stopped = set(TileStore.open_or_create(path, job)[0].records())
        assert 0 < len(stopped) < total and not stopped & set(group)
        gate.release(*group)
        for tile in group:  # the one task in hand when cancelled writes its tiles, no other
            gate.wait("passed", tile)
        # a task submitted now runs after whatever the one worker thread still had queued: had
        # the cancel not dropped the job's queued tasks, their tiles would be recorded by then
        client.submit(len, [], pure=False).result()
        kept = set(TileStore.open_or_create(path, job)[0].records())
        assert kept == stopped | set(group)
        resumed: list[Event] = []
        done = render_job(client, path, job, on_event=resumed.append, cancel=threading.Event())
    started = resumed[0]
    assert isinstance(started, JobStarted) and started.tiles_done == len(kept)
    assert done.tiles_rendered == total - len(kept)
    assert len(TileStore.open_or_create(path, job)[0].records()) == total
