"""``--cluster slurm`` against a real one-node SLURM: ``munged``, ``slurmctld`` and ``slurmd``
(Debian's ``munge`` and ``slurm-wlm``) started by the ``slurm`` fixture with a configuration
generated into a temporary folder, stopped by PID at the end.

- ``braggtile render --cluster slurm``: Ctrl-C mid-render exits 130 with the resume hint,
  SIGTERM exits 143 with it; after either, no batch job is left in the queue, neither the
  running one nor the one waiting for the node (it holds one job at a time). Running the same
  command again resumes and completes, on 1 worker, bit-identical to an in-process render.
- ``braggtile serve --cluster slurm``: a job renders bit-identical to the in-process render;
  SIGTERM to the service leaves no batch job behind.

Without the binaries the tests skip (they fail under ``CI=true``: CI installs the packages).
"""

from __future__ import annotations

import getpass
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import zarr
from test_render_signals import communicate
from test_service import ROOT, TIMEOUT, free_port, read_events, serving, submit

from tiling.gate import GATE_ENV, tile_name

pytestmark = pytest.mark.slurm

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")
# two 192 x 192 frames of 16-pixel tiles (288 tiles): several seconds on one worker thread,
# so that a signal sent once tiles come back lands mid-render
ARGS = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -detpixels 192 -oversample 1 "
ARGS += "-phisteps 96 -osc 0.2 -mosaic 0.5 -mosaic_dom 4"
JOB = {"nanobragg": ARGS, "tile": 16, "frames": 2}
RENDER = ["--tile", "16", "--frames", "2", f"--nanobragg={ARGS}"]
#: Two batch jobs: one runs, the other waits in the queue (the node has one CPU).
TWO_JOBS = ("--cluster", "slurm", "--min-jobs", "2", "--max-jobs", "2")
#: Seconds a batch job may take to leave the queue once cancelled (KillWait is 5 s).
GONE_S = 30


def binary(name: str) -> str | None:
    """``name`` on PATH, else in the sbin folders (daemons live there; PATH may omit them)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def require_slurm() -> dict[str, str]:
    """Paths of the SLURM and MUNGE binaries; skip without them (fail when ``CI=true``)."""
    pytest.importorskip("dask_jobqueue")
    found = {name: binary(name) for name in (*DAEMONS, *CLIENTS)}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        message = f"SLURM/MUNGE binaries not found: {', '.join(missing)} (apt-get install "
        message += "slurm-wlm munge)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return {name: str(path) for name, path in found.items()}


def slurm_conf(folder: Path, socket: Path) -> str:
    """A one-node cluster on loopback: node ``localhost`` with 1 CPU (one 1-core batch job at a
    time), partition ``debug``."""
    user = getpass.getuser()
    return f"""\
ClusterName=braggtile
SlurmctldHost=localhost
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={socket}
CredType=cred/munge
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "slurmctld.pid"}
SlurmdPidFile={folder / "slurmd.pid"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=1 RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in folder.glob("*.log"))


def wait_until(ready, what: str, procs: list[subprocess.Popen], folder: Path) -> None:
    """Poll ``ready()`` (an external daemon's state) with a deadline; fail if a daemon died."""
    deadline = time.monotonic() + 60
    while not ready():
        assert all(p.poll() is None for p in procs), f"a daemon exited\n{logs(folder)}"
        assert time.monotonic() < deadline, f"{what} not ready in 60 s\n{logs(folder)}"
        time.sleep(0.2)


def daemons(bins: dict[str, str], folder: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """The commands of ``munged``, ``slurmctld`` and ``slurmd`` in the foreground (``-F``,
    ``-D``), with a new MUNGE key and the configuration ``env["SLURM_CONF"]``."""
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir()
    (folder / "munge").chmod(0o755)  # munged wants its socket's folder searchable by all
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket = folder / "munge" / "munge.socket"
    Path(env["SLURM_CONF"]).write_text(slurm_conf(folder, socket))
    conf = ["-f", env["SLURM_CONF"]]
    return {
        "munged": [bins["munged"], "-F", "--force", f"--key-file={key}", f"--socket={socket}",
                   f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}"],
        "slurmctld": [bins["slurmctld"], "-D", "-c", *conf],
        "slurmd": [bins["slurmd"], "-D", "-N", "localhost", *conf],
    }  # fmt: skip


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running one-node SLURM; yields the environment its clients (and braggtile) need."""
    bins = require_slurm()
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    commands = daemons(bins, folder, env)
    procs = [start(commands["munged"], folder / "munged.log", env)]

    def idle() -> bool:
        state = subprocess.run([bins["sinfo"], "-h", "-o", "%t"], env=env,
                               capture_output=True, text=True)  # fmt: skip
        return state.stdout.strip() == "idle"

    try:
        wait_until((folder / "munge" / "munge.socket").exists, "munged", procs, folder)
        for name in ("slurmctld", "slurmd"):
            procs.append(start(commands[name], folder / f"{name}.log", env))
        wait_until(idle, "the SLURM node", procs, folder)
        yield env
    finally:
        # the tests leave no batch job; one a failed test left must not outlive the daemons
        subprocess.run([bins["scancel"], "--user", getpass.getuser()], env=env)
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def batch_env(slurm: dict[str, str], folder: Path) -> dict[str, str]:
    """``slurm``'s environment with dask-jobqueue's SLURM settings for 1-core batch jobs (the
    job script runs this interpreter, ``sys.executable``; SLURM passes the environment on)."""
    return {
        **slurm,
        "PYTHONPATH": str(ROOT),
        "DASK_JOBQUEUE__SLURM__CORES": "1",
        "DASK_JOBQUEUE__SLURM__PROCESSES": "1",
        "DASK_JOBQUEUE__SLURM__MEMORY": "2GiB",
        "DASK_JOBQUEUE__SLURM__WALLTIME": "00:20:00",
        "DASK_JOBQUEUE__SLURM__LOCAL_DIRECTORY": str(folder),
        "DASK_JOBQUEUE__SLURM__LOG_DIRECTORY": str(folder / "jobs"),
    }


def queue(env: dict[str, str]) -> list[str]:
    """The states of the batch jobs in the queue (``squeue -h``: PD pending, R running, CG
    completing), sorted."""
    done = subprocess.run(
        [binary("squeue"), "-h", "-o", "%t"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.split())


def assert_queue_empties(env: dict[str, str]) -> None:
    """No batch job left: the queue (an external system) polled until empty, with a deadline."""
    deadline = time.monotonic() + GONE_S
    while jobs := queue(env):
        assert time.monotonic() < deadline, f"batch jobs left {GONE_S} s after: {jobs}"
        time.sleep(0.2)


def read_progress(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, bytes]:
    """Read the render's progress bar (stderr) until it moves past where it started; returns
    the tiles it started from and what it printed so far."""
    pattern = re.compile(rb"(\d+)/(\d+) \[")
    text, first = b"", None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while True:
            assert sel.select(max(0.0, deadline - time.monotonic())), f"no progress: {text!r}"
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, f"render ended before its progress moved: {text!r}"
            text += chunk
            done = [int(m[1]) for m in pattern.finditer(text)]
            if done and first is None:
                first = done[0]
            if first is not None and done[-1] > first:
                return first, text


def render(folder: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "service.cli", "render", "-o", str(folder / "run.zarr"),
           *extra, *RENDER]  # fmt: skip
    env = {**env, "PYTHONFAULTHANDLER": "1"}  # SIGABRT prints every thread's stack
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip


def interrupt(proc: subprocess.Popen, env: dict[str, str], sig: int) -> tuple[int, int, str]:
    """Send ``sig`` once the render's tiles come back (its first batch job is then running, the
    second waiting); returns the tiles the run started from, its exit status and its stderr."""
    first, text = read_progress(proc)
    assert queue(env) == ["PD", "R"], "one batch job runs, the other waits for the node"
    os.kill(proc.pid, sig)
    _, rest = communicate(proc)  # says where it hangs, if it does (seen once in CI)
    return first, proc.returncode, text.decode() + rest


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Level 0 of the job rendered by ``braggtile render --in-process`` (frame, slow, fast)."""
    folder = tmp_path_factory.mktemp("in-process")
    out = folder / "ref.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "render", "--in-process", "--no-progress",
         "-o", str(out), *RENDER],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    image = zarr.open_group(str(out), mode="r")["0"][...]
    assert image.shape == (2, 192, 192) and image.max() > 0
    return image


def test_render_on_slurm_stops_cleanly_and_resumes(
    slurm: dict[str, str], in_process: np.ndarray, tmp_path: Path
) -> None:
    env = batch_env(slurm, tmp_path)
    # the last tile waits at the test gate, so neither interrupted run can finish its job
    # before its signal arrives, however fast the other tiles render
    env[GATE_ENV] = str(tmp_path / "gate")
    hold = tmp_path / "gate" / tile_name("hold", 1, 11, 11)
    hold.parent.mkdir()
    hold.touch()
    first, status, err = interrupt(render(tmp_path, env, *TWO_JOBS), env, signal.SIGINT)
    assert first == 0
    assert status == 130, err
    assert "interrupted; run the same command again to resume" in err
    assert_queue_empties(env)

    first, status, err = interrupt(render(tmp_path, env, *TWO_JOBS), env, signal.SIGTERM)
    assert 0 < first < 288, "the second run resumes the first's tiles"
    assert status == 143, err
    assert "terminated; run the same command again to resume" in err
    assert_queue_empties(env)

    hold.unlink()
    proc = render(tmp_path, env, "--cluster", "slurm", "--max-jobs", "1", "--no-progress")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    summary = re.search(rb"(\d+) tiles rendered, (\d+) resumed, .* on (\d+) worker\(s\)", out)
    assert summary, out
    rendered, resumed, workers = map(int, summary.groups())
    assert rendered > 0 and resumed > 0 and rendered + resumed == 288
    assert workers == 1
    image = zarr.open_group(str(tmp_path / "run.zarr"), mode="r")["0"][...]
    assert image.dtype == in_process.dtype and np.array_equal(image, in_process)
    assert_queue_empties(env)


def test_serve_on_slurm_renders_and_cancels_its_batch_job_on_sigterm(
    slurm: dict[str, str], in_process: np.ndarray, tmp_path: Path, monkeypatch
) -> None:
    for name, value in batch_env(slurm, tmp_path).items():
        monkeypatch.setenv(name, value)
    cluster = ("--cluster", "slurm", "--min-jobs", "1", "--max-jobs", "1")
    with serving(tmp_path, tmp_path / "jobs.db", cluster) as (url, proc):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            job = submit(http, JOB)
            assert read_events(http, job["id"])[-1]["event"] == "successful"
            for frame in range(2):
                ours = http.get(f"/v1/jobs/{job['id']}/frames/{frame}/export").content
                assert ours == in_process[frame].astype("<f4").tobytes()
        assert queue(os.environ) == ["R"], "--min-jobs 1: the batch job stays while serving"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(120) in (0, -signal.SIGTERM)
    assert_queue_empties(os.environ)
