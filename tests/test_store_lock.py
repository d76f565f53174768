"""One writer per store: a second render is refused; a dead holder's lock is broken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gate import TileGate

from tiling.lock import StoreLock, StoreLockedError
from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ARGS = (
    "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -misset 10 20 30 "
    "-detpixels 256 -oversample 1"
)
#: A tile of the last frame, held until the second render has been refused.
HELD = (3, 4, 4)


def test_a_second_writer_is_refused_in_the_same_process(tmp_path: Path) -> None:
    store = str(tmp_path / "s.zarr")
    with StoreLock(store):
        with pytest.raises(StoreLockedError, match=f"process {os.getpid()}"):
            StoreLock(store).__enter__()
    with StoreLock(store):  # released on exit
        pass


def test_the_lock_of_a_killed_holder_is_broken(tmp_path: Path) -> None:
    store = str(tmp_path / "k.zarr")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"from tiling.lock import StoreLock\nwith StoreLock({store!r}):\n"
         "    print('locked', flush=True)\n    input()"],
        env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=f"process {holder.pid}"):
            StoreLock(store).__enter__()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert Path(store + ".lock").exists()  # the file survives the crash, the lock does not
    with StoreLock(store):
        pass


def render(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "service.cli", "render", f"--nanobragg={ARGS}", "-o", str(out),
        "--tile", "32", "--frames", "4", "--workers", "1", "--no-progress", *extra,
    ]  # fmt: skip


def test_two_renders_into_one_store_never_interleave(tmp_path: Path) -> None:
    out = tmp_path / "two.zarr"
    gate = TileGate(tmp_path / "gate")
    gate.hold(HELD)  # the first render holds its lock until the test releases this tile
    first = subprocess.Popen(
        render(out), cwd=tmp_path, env={**ENV, **gate.env()}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        gate.wait("held", HELD)
        second = subprocess.run(
            render(out, "--overwrite"), cwd=tmp_path, env=ENV, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        gate.release(HELD)
        first_out, first_err = first.communicate(timeout=300)
    finally:
        gate.release(HELD)
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2
    assert f"being written by process {first.pid}" in second.stderr
    assert second.stderr.count("\n") == 1, second.stderr  # one line, no traceback
    assert first.returncode == 0, first_err
    reader = StoreReader(str(out))  # the overwrite never happened: every tile is there
    assert len(reader.records()) == reader.job.frames * len(reader.job.grid.tiles())
