"""``braggtile render`` stopped mid-job by SIGINT or SIGTERM: it cancels its tasks, closes its
cluster, says how to resume and exits 130 or 143; the same command then resumes the job."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed
import pytest

from tiling.gate import GATE_ENV, tile_name

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -lambda 1 -distance 100 -detpixels 64"
RENDER = ["--tile", "16", "--frames", "2", "--workers", "1", "--no-progress", f"--nanobragg={ARGS}"]
#: Seconds the render may take to reach the held tile, and to end after the signal.
DEADLINE_S = 120


def render(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "service.cli", "render", "-o", str(folder / "run.zarr"), *RENDER]
    env = {**env, "PYTHONFAULTHANDLER": "1"}  # SIGABRT prints every thread's stack
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip


def wait_held(proc: subprocess.Popen, held: Path) -> None:
    """Until a worker waits at the gate on the held tile (the job is then mid-render)."""
    deadline = time.monotonic() + DEADLINE_S
    while not held.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the render never reached the held tile"
        time.sleep(0.01)


def communicate(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:  # say where it hangs
        os.kill(proc.pid, signal.SIGABRT)
        _, err = proc.communicate(timeout=60)
        pytest.fail(f"render still running {DEADLINE_S} s after its signal:\n{err.decode()}")
    return out.decode(), err.decode()


@pytest.mark.parametrize(
    ("sig", "status", "what"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_stops_the_render_and_the_same_command_resumes(
    tmp_path: Path, sig: int, status: int, what: str
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), GATE_ENV: str(gate)}
    (gate / tile_name("hold", 1, 3, 3)).touch()  # frame 1 cannot finish before the signal
    proc = render(tmp_path, env)
    wait_held(proc, gate / tile_name("held", 1, 3, 3))
    os.kill(proc.pid, sig)
    out, err = communicate(proc)
    assert proc.returncode == status, err
    assert f"{what}; run the same command again to resume" in err
    assert "Traceback" not in err

    (gate / tile_name("hold", 1, 3, 3)).unlink()
    proc = render(tmp_path, env)
    out, err = communicate(proc)
    assert proc.returncode == 0, err
    summary = re.search(r"(\d+) tiles rendered, (\d+) resumed", out)
    assert summary, out
    rendered, resumed = map(int, summary.groups())
    assert resumed > 0 and rendered > 0 and rendered + resumed == 2 * 16


def test_a_signal_stops_a_render_still_waiting_for_workers(tmp_path: Path) -> None:
    """Before its job runs (here: a scheduler with no workers, awaited for ever), SIGTERM
    stops the wait at once, with the same message and status."""
    with (
        distributed.LocalCluster(
            n_workers=0, processes=False, protocol="tcp", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "service.cli", "render", "-o", str(tmp_path / "w.zarr"),
               "--scheduler", cluster.scheduler_address, *RENDER[:4], *RENDER[6:]]  # fmt: skip
        proc = subprocess.Popen(cmd, env={**env, "PYTHONFAULTHANDLER": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

        def clients(dask_scheduler) -> int:
            return len(dask_scheduler.clients)

        deadline = time.monotonic() + DEADLINE_S
        while client.run_on_scheduler(clients) < 3:  # fire-and-forget, this client, the render
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the render never connected"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = communicate(proc)
    assert proc.returncode == 143, err
    assert "terminated; run the same command again to resume" in err
