"""Deployment: the compose file, the batch-system and Kubernetes examples, and a real cluster
started with the compose file's own commands (scheduler + worker processes on loopback)."""

from __future__ import annotations

import copy
import importlib
import io
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dask
import httpx
import numpy as np
import pytest
import yaml
import zarr
from distributed import Client, get_task_stream

from engine import render
from engine.resolve import parse_nanobragg
from tiling.batch import BATCH_CLUSTERS
from tiling.cluster import register_plugin
from tiling.graph import chunks_per_task, render_job
from tiling.job import JobSpec
from tiling.worker import worker_info

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -misset 10 20 30"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: Workers of the test cluster warm with a small eager render (compiling would slow the test).
CLUSTER_ENV = {**ENV, "DASK_BRAGGTILE__WORKER__WARM": "eager"}
THREADS = "DASK_BRAGGTILE__WORKER__TORCH_THREADS"


def dotenv() -> dict[str, str]:
    lines = (ROOT / ".env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(value: str) -> str:
    """``${NAME:-default}`` as docker compose expands it, from .env."""
    env = dotenv()
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1], m[2] or ""), value)


def command(service: str) -> list[str]:
    spec = SERVICES[service]
    return [interpolate(a) for a in [*spec.get("entrypoint", []), *spec.get("command", [])]]


# --- the compose file ------------------------------------------------------------------------


def test_compose_defines_scheduler_workers_and_api_with_their_commands() -> None:
    assert command("scheduler")[:2] == ["dask", "scheduler"]
    assert command("cpu-worker")[:3] == ["dask", "worker", "tcp://scheduler:8786"]
    for worker in ("cpu-worker", "gpu-worker"):  # workers warm their kernels as they start
        assert command(worker)[command(worker).index("--preload") + 1] == "tiling.warm"
    gpu = command("gpu-worker")
    assert gpu[:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert gpu[gpu.index("--resources") + 1] == "GPU=1"
    devices = SERVICES["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    api = command("api")
    assert api[:2] == ["braggtile", "serve"]
    assert api[api.index("--scheduler") + 1] == "tcp://scheduler:8786"
    assert api[api.index("--data") + 1] == "/data"
    assert any(p.endswith(":8000") for p in SERVICES["api"]["ports"])
    assert "/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    for name in ("scheduler", "cpu-worker", "gpu-worker", "api"):
        assert "/health" in " ".join(SERVICES[name]["healthcheck"]["test"]), name
    for name in ("cpu-worker", "gpu-worker", "api", "render"):
        assert "./data:/data" in SERVICES[name]["volumes"], name


def test_worker_replicas_and_threads_come_from_the_env_file() -> None:
    env = dotenv()
    replicas = SERVICES["cpu-worker"]["deploy"]["replicas"]
    threads = SERVICES["cpu-worker"]["environment"]["DASK_BRAGGTILE__WORKER__TORCH_THREADS"]
    for value in (replicas, threads, SERVICES["gpu-worker"]["deploy"]["replicas"]):
        name = value.removeprefix("${").split(":-")[0]
        assert name in env, f"{value} is not set in .env"


# --- batch systems and Kubernetes ------------------------------------------------------------


@pytest.fixture
def jobqueue_example() -> Iterator[None]:
    """deploy/jobqueue.yaml merged into the Dask configuration, as a user's config file is."""
    pytest.importorskip("dask_jobqueue")  # loads dask-jobqueue's defaults into the config
    example = dask.config.collect(paths=[str(ROOT / "deploy" / "jobqueue.yaml")], env={})
    merged = dask.config.update(copy.deepcopy(dask.config.config), example)
    with dask.config.set({"jobqueue": merged["jobqueue"]}):
        yield


@pytest.mark.parametrize("kind", ["slurm", "pbs", "sge", "lsf"])
def test_jobqueue_example_configures_each_batch_cluster(kind: str, jobqueue_example) -> None:
    module, name = BATCH_CLUSTERS[kind]
    cluster = getattr(importlib.import_module(module), name)(
        scheduler_options={"dashboard_address": ":0"}
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    queue = dask.config.get(f"jobqueue.{kind}.queue")
    assert queue in script
    assert "braggtile-venv/bin/activate" in script
    assert "--nthreads 1" in script  # one Dask thread per worker: tiles use torch threads


def test_kubernetes_manifest_has_a_gpu_worker_group_and_a_shared_volume() -> None:
    manifest = (ROOT / "deploy" / "kubernetes.yaml").read_text()
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest)}
    gpu = docs["DaskWorkerGroup"]["spec"]
    assert gpu["cluster"] == docs["DaskCluster"]["metadata"]["name"]
    container = gpu["worker"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "GPU=1" in container["args"]
    claim = docs["PersistentVolumeClaim"]["metadata"]["name"]
    for spec in (gpu["worker"]["spec"], docs["DaskCluster"]["spec"]["worker"]["spec"]):
        assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    api = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert api[:2] == ["braggtile", "serve"]


# --- a real cluster from the compose file's commands -----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(service: str) -> dict[str, str]:
    """The test cluster's environment plus the compose service's torch-thread setting."""
    value = SERVICES[service].get("environment", {}).get(THREADS)
    return CLUSTER_ENV if value is None else {**CLUSTER_ENV, THREADS: interpolate(value)}


def on_loopback(argv: list[str], address: str) -> list[str]:
    """A compose command with the scheduler's service name replaced by ``address``, dashboards
    on free ports and workers listening on loopback."""
    out = [address if a == "tcp://scheduler:8786" else a for a in argv]
    out = [":0" if a in (":8787", ":8789") else a for a in out]
    if out[:2] == ["dask", "worker"]:
        out += ["--host", "127.0.0.1"]
    return out


class Processes:
    """Child processes in their own sessions, stopped by PID."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.started: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str] = CLUSTER_ENV) -> subprocess.Popen:
        log = open(self.cwd / f"{len(self.started)}-{argv[1]}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            argv, cwd=self.cwd, env=env, start_new_session=True, stdout=log, stderr=log
        )
        log.close()
        self.started.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-2000:]}" for p in self.cwd.glob("*.log"))

    def stop(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def compose_cluster(tmp_path_factory) -> Iterator[str]:
    """scheduler, two cpu-workers and one worker declaring GPU=1 (running CPU torch here),
    started with the compose file's commands; yields the scheduler address."""
    port = free_port()
    scheduler = command("scheduler")
    scheduler[scheduler.index("--port") + 1] = str(port)
    address = f"tcp://127.0.0.1:{port}"
    procs = Processes(tmp_path_factory.mktemp("cluster"))
    try:
        procs.start(on_loopback(scheduler + ["--host", "127.0.0.1"], address))
        for _ in range(2):
            procs.start(on_loopback(command("cpu-worker"), address), worker_env("cpu-worker"))
        procs.start(on_loopback(command("gpu-worker"), address), worker_env("gpu-worker"))
        with Client(address, timeout=60) as client:
            try:
                client.wait_for_workers(3, timeout=180)
            except TimeoutError:
                pytest.fail(f"the compose cluster did not start:\n{procs.logs()}")
        warmed = [p for p in procs.cwd.glob("*-worker.log") if "kernels warmed" in p.read_text()]
        assert len(warmed) == 3, procs.logs()  # --preload tiling.warm ran in every worker
        yield address
    finally:
        procs.stop()


def reference(args: str):
    return render(parse_nanobragg(shlex.split(args)).experiment).numpy()


def test_render_on_a_scheduler_and_workers_started_as_compose_does(
    compose_cluster: str, tmp_path: Path
) -> None:
    args = f"{ARGS} -detpixels_f 96 -detpixels_s 80"
    out = tmp_path / "c.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "render", "--scheduler", compose_cluster,
         "-o", str(out), "--tile", "32", "--device", "cpu", "--no-progress", f"--nanobragg={args}"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    image = zarr.open_group(str(out), mode="r")["0"][0]
    expected = reference(args)
    assert image.shape == expected.shape == (80, 96)
    assert np.abs(image - expected).max() <= 1e-6 * expected.max()


def test_a_mixed_cluster_renders_tiles_on_cpu_and_gpu_workers(
    compose_cluster: str, tmp_path: Path
) -> None:
    args = f"{ARGS} -detpixels_f 128 -detpixels_s 512"
    job = JobSpec(experiment=parse_nanobragg(shlex.split(args)).experiment, tile=16)
    with Client(compose_cluster, timeout=60) as client:
        register_plugin(client)
        gpu_workers = {
            address
            for address, w in client.scheduler_info(n_workers=-1)["workers"].items()
            if w["resources"].get("GPU")
        }
        assert len(gpu_workers) == 1
        threads = {
            a: client.submit(worker_info, workers=[a], pure=False).result()["torch_threads"]
            for a in client.scheduler_info(n_workers=-1)["workers"]
        }
        cpu_threads = int(dotenv()["BRAGGTILE_WORKER_THREADS"])  # the compose setting
        assert threads == {a: 1 if a in gpu_workers else cpu_threads for a in threads}
        with get_task_stream(client) as stream:
            # the scheduler records a task in the stream before it reports the result, and the
            # stream is read from the scheduler when the block ends: every task is in it
            render_job(client, str(tmp_path / "m.zarr"), job, device="auto")
    tasks = [t for t in stream.data if str(t["key"]).startswith("bt-tiles-")]
    # tiles of 16 are narrower than a kernel block: a task spans a row of level-1 chunks (2 x 2
    # tiles), here the grid's 4 side by side, so one task per chunk row: 16 of the 32 x 8 tiles
    assert chunks_per_task(job.tile, "auto") >= 4
    assert len(tasks) == 16
    on_gpu = sum(t["worker"] in gpu_workers for t in tasks)
    assert 0 < on_gpu < len(tasks), "tiles must land on both the GPU worker and the CPU workers"
    image = zarr.open_group(str(tmp_path / "m.zarr"), mode="r")["0"][0]
    expected = reference(args)
    assert np.abs(image - expected).max() <= 1e-6 * expected.max()


def test_render_on_a_batch_cluster_through_dask_jobqueue(tmp_path: Path) -> None:
    pytest.importorskip("dask_jobqueue")
    args = f"{ARGS} -detpixels 64"
    out = tmp_path / "b.zarr"
    env = {
        **ENV,
        "DASK_JOBQUEUE__LOCAL__CORES": "1",
        "DASK_JOBQUEUE__LOCAL__MEMORY": "2GiB",
        "DASK_JOBQUEUE__LOCAL__LOCAL_DIRECTORY": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "render", "--cluster", "local", "--max-jobs", "1",
         "-o", str(out), "--tile", "32", "--no-progress", f"--nanobragg={args}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    image = zarr.open_group(str(out), mode="r")["0"][0]
    expected = reference(args)
    assert np.abs(image - expected).max() <= 1e-6 * expected.max()


def test_an_unknown_batch_system_is_refused_with_the_choices(tmp_path: Path) -> None:
    from tiling.batch import BatchClusterError, batch_cluster

    with pytest.raises(BatchClusterError, match="--cluster.*slurm"):
        batch_cluster("condor")
    with pytest.raises(BatchClusterError, match="--min-jobs"):
        batch_cluster("slurm", 3, 1)


def write_hkl(path: Path, seed: int) -> None:
    """A small P1 structure-factor file with random amplitudes."""
    rng = np.random.default_rng(seed)
    rows = [f"{h} {k} {m} {rng.uniform(10, 200):.3f}" for h, k, m in np.ndindex(9, 9, 9)]
    path.write_text("\n".join(rows) + "\n")


def test_input_files_travel_with_the_job_to_workers_elsewhere(
    compose_cluster: str, tmp_path: Path
) -> None:
    """The HKL file exists only in the client's folder; the workers run in another one."""
    write_hkl(tmp_path / "P1.hkl", 1)
    args = "-hkl P1.hkl -cell 40 40 40 90 90 90 -misset 20 10 5 -lambda 1 -N 3 -distance 80 "
    args += "-detpixels 64 -nointerpolate"
    out = tmp_path / "h.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "render", "--scheduler", compose_cluster,
         "-o", str(out), "--tile", "32", "--device", "cpu", "--no-progress", "--",
         *shlex.split(args)],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["braggtile"]["experiment"]["crystal"]["hkl_file"] == "P1.hkl"
    stored = np.asarray(group["inputs"]["P1.hkl"][...]).tobytes()
    assert stored == (tmp_path / "P1.hkl").read_bytes()
    os.chdir(tmp_path)
    try:
        expected = reference(args)
    finally:
        os.chdir(ROOT)
    assert expected.max() > 0
    assert np.abs(group["0"][0] - expected).max() <= 1e-6 * expected.max()


def test_serve_on_the_compose_cluster_with_inline_inputs(
    compose_cluster: str, tmp_path: Path
) -> None:
    """`braggtile serve --scheduler` as the compose api runs it; the HKL file exists only in
    the request (the workers run in another folder and never see the service's data)."""
    from test_service import TIMEOUT, read_events, serving, submit

    write_hkl(tmp_path / "P1.hkl", 2)
    args = "-hkl P1.hkl -cell 40 40 40 90 90 90 -misset 20 10 5 -lambda 1 -N 3 -distance 80 "
    args += "-detpixels 64 -nointerpolate"
    (tmp_path / "data").mkdir()
    body = {"nanobragg": args, "tile": 32, "inputs": {"P1.hkl": (tmp_path / "P1.hkl").read_text()}}
    with (
        serving(tmp_path / "data", tmp_path / "jobs.db", ("--scheduler", compose_cluster)) as (
            url,
            _,
        ),
        httpx.Client(base_url=url, timeout=TIMEOUT) as http,
    ):
        job = submit(http, body)
        assert read_events(http, job["id"])[-1]["event"] == "successful"
        tile = np.load(io.BytesIO(http.get(f"/v1/jobs/{job['id']}/frames/0/tiles/1/0").content))
    os.chdir(tmp_path)
    try:
        expected = reference(args)[32:64, 0:32]
    finally:
        os.chdir(ROOT)
    assert expected.max() > 0
    assert np.abs(tile - expected).max() <= 1e-6 * expected.max()


def test_serve_on_a_batch_cluster_through_dask_jobqueue(tmp_path: Path, monkeypatch) -> None:
    from test_service import TIMEOUT, read_events, serving, submit

    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("DASK_JOBQUEUE__LOCAL__CORES", "1")
    monkeypatch.setenv("DASK_JOBQUEUE__LOCAL__MEMORY", "2GiB")
    monkeypatch.setenv("DASK_JOBQUEUE__LOCAL__LOCAL_DIRECTORY", str(tmp_path))
    args = f"{ARGS} -detpixels 64"
    batch = ("--cluster", "local", "--max-jobs", "1")
    with (
        serving(tmp_path, tmp_path / "jobs.db", batch) as (url, _),
        httpx.Client(base_url=url, timeout=TIMEOUT) as http,
    ):
        job = submit(http, {"nanobragg": args, "tile": 32})
        assert read_events(http, job["id"])[-1]["event"] == "successful"
        tile = np.load(io.BytesIO(http.get(f"/v1/jobs/{job['id']}/frames/0/tiles/0/1").content))
    expected = reference(args)[0:32, 32:64]
    assert np.abs(tile - expected).max() <= 1e-6 * expected.max()


def test_gpu_check_runs_its_test_step_without_touching_the_checkout(tmp_path: Path) -> None:
    """``deploy/gpu_check.sh`` on a machine without CUDA (its gpu tests skip), in a copy of
    the checkout's tests: the test step runs pytest on the files it names and logs it, no
    named file is written to, and no benchmark runs when ``GPU_CHECK_BENCHES`` names none."""
    from reference import REFERENCE

    checkout = tmp_path / "repo"
    for name in ("tests", "deploy"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", checkout)
    before = {p.name: p.read_bytes() for p in (checkout / "tests").glob("test_*.py")}
    env = {
        **ENV,
        "BRAGGTILE_REFERENCE": str(REFERENCE),
        "GPU_CHECK_BENCHES": "none",
        "GPU_CHECK_TESTS": "test_compile_warm_up_on_a_gpu",
        "PYTHON": sys.executable,
    }
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", "deploy/gpu_check.sh", str(out), "200"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "== gpu tests: exit 0" in proc.stdout, proc.stdout + proc.stderr
    assert "== bench" not in proc.stdout and "== done" in proc.stdout
    log = (out / "pytest.log").read_text()
    assert re.search(r"\b1 (passed|skipped)\b", log), log
    assert {p.name: p.read_bytes() for p in (checkout / "tests").glob("test_*.py")} == before
