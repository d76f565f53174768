"""What a first job needs is ready before it: the scheduler imports none of braggtile's task
modules (tasks are sent by name), and ``--preload tiling.warm`` runs the tile tasks' path."""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import distributed
import pytest
import torch

import tiling.warm as warm
from engine.kernel import KernelCache
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from tiling.cluster import connect
from tiling.graph import render_job
from tiling.job import JobSpec
from tiling.remote import Remote, scheduler_memory
from tiling.store import StoreReader

from reference import case_args

ARGS = "-N 3 -cell 70 80 90 90 90 90 -default_F 100 -lambda 1 -distance 60 -detpixels 96"
#: Modules a scheduler loaded when it unpickled a task of tiling.worker.
HEAVY = ("tiling.worker", "tiling.store", "engine.statistics", "zarr", "numpy", "pydantic")


def _fresh_python(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a new interpreter (this checkout first on its path); its last line, JSON."""
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environ
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tasks_reach_the_scheduler_by_name(tmp_path: Path, monkeypatch) -> None:
    """Every task of a job (tiles, pyramid) is a Remote: unpickled where no braggtile module is
    loaded (as in a new scheduler), it loads none of the task modules."""
    sent = []
    experiment = parse_nanobragg(shlex.split(ARGS)).experiment
    job = JobSpec(experiment, frames=2, tile=32, pyramid_min=16)  # levels 96, 48, 24
    with connect(in_process=True, gpu=False) as client:
        submit = client.submit

        def spy(func, *args, **kwargs):
            sent.append(func)
            return submit(func, *args, **kwargs)

        monkeypatch.setattr(client, "submit", spy)
        done = render_job(client, str(tmp_path / "s.zarr"), job)
    assert done.tiles_rendered == 2 * 3 * 3
    assert StoreReader(str(tmp_path / "s.zarr")).complete_frames() == {0, 1}
    names = {(f.module, f.name) for f in sent if isinstance(f, Remote)}
    assert len(names) >= 2 and all(isinstance(f, Remote) for f in sent), sent
    assert {module for module, _ in names} == {"tiling.worker"}
    code = (
        "import json, pickle, sys\n"
        f"tasks = pickle.loads({pickle.dumps(sent)!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'names': [t.__name__ for t in tasks]}))\n"
    )
    got = _fresh_python(code)
    assert got["heavy"] == []
    assert got["names"] == [f.name for f in sent]


def test_remote_calls_the_function_it_names() -> None:
    remote = pickle.loads(pickle.dumps(Remote(os.path.join)))
    assert remote("a", "b") == os.path.join("a", "b")
    assert remote.__name__ == "join"


def test_scheduler_memory_reads_this_process() -> None:
    memory = scheduler_memory(os.getpid())  # its own pid: the peak is left as it is
    assert memory["pid"] == os.getpid()
    assert 0 < memory["rss_mib"] <= memory["peak_mib"]


def test_scheduler_memory_resets_the_peak_of_another_process() -> None:
    code = (
        "import json, os\n"
        "from tiling.remote import scheduler_memory\n"
        "block = bytearray(256 << 20); del block\n"  # a 256 MiB peak, freed
        "first = scheduler_memory(os.getpid() + 1)\n"  # a bench in another process resets it
        "print(json.dumps([first, scheduler_memory()]))\n"
    )
    first, second = _fresh_python(code)
    assert first["peak_mib"] >= first["rss_mib"] + 200
    assert second["peak_mib"] < first["peak_mib"] - 200  # the peak since the reset


def test_preload_runs_the_task_path_into_the_tasks_kernel_cache(tmp_path: Path) -> None:
    """dask_setup (eager mode) leaves the modules, zarr's I/O thread and the eager kernel of
    its frame loaded, in the cache a worker's registered plugin then uses; no store left."""
    code = """
import json, sys, threading, torch
import tiling.warm as warm
before = sorted(m for m in ("zarr", "tiling.stills", "tiling.pyramid") if m in sys.modules)
warm.dask_setup(None)
from engine.kernel import KernelCache
from engine.setup import prepare_frame
from tiling.worker import TilingPlugin, current_plugin
plugin = TilingPlugin(torch_threads=1)  # as the client registers it after the preload
plugin.setup()
setup = prepare_frame(warm.warm_experiment(64), dtype=torch.float32)
print(json.dumps({
    "before": before,
    "modules": [m for m in ("zarr", "numcodecs", "tiling.stills", "tiling.pyramid",
                            "tiling.remote", "engine.statistics") if m in sys.modules],
    "zarr_io": any(t.name == "zarr_io" for t in threading.enumerate()),
    "shared": plugin.kernels is KernelCache.shared() is current_plugin().kernels,
    "eager_kernel": (setup.structure, False) in KernelCache.shared()._graphs,
    "stores": len(current_plugin()._stores),
}))
"""
    env = {"DASK_BRAGGTILE__WORKER__WARM": "eager", "TMPDIR": str(tmp_path)}
    got = _fresh_python(code, env)
    assert got["before"] == []
    assert len(got["modules"]) == 6, got
    assert got["zarr_io"] and got["shared"] and got["eager_kernel"], got
    assert got["stores"] == 0
    assert list(tmp_path.iterdir()) == []  # the warm-up's store was deleted


def test_a_worker_declaring_a_gpu_warms_on_it() -> None:
    """``--preload tiling.warm`` warms where the worker's tasks render: on its GPU when it
    declares one and CUDA is there (its first job then finds CUDA started and the kernel
    compiled), else on its CPU."""
    assert warm.warm_device(None) == "cpu"
    with connect(in_process=True, gpu=False) as client:
        assert set(client.run(lambda dask_worker: warm.warm_device(dask_worker)).values()) == {
            "cpu"
        }
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
        resources={"GPU": 1},
    )  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        got = set(client.run(lambda dask_worker: warm.warm_device(dask_worker)).values())
    assert got == {"cuda:0" if torch.cuda.is_available() else "cpu"}


def test_compile_warm_up_builds_the_readme_jobs_and_the_seed_benchmarks_kernels() -> None:
    """The structures a ``compile`` warm-up builds include the README's main job's (2 x 2
    sub-pixels) and the seed benchmark's (one sample per pixel): first jobs of either find
    their kernel built (on a GPU, the seed's first job paid 1.1 s for it when only the README
    job's was warmed)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    main_job = re.search(r'braggtile render --nanobragg "([^"]+)"', readme)
    assert main_job is not None
    warmed = {setup.structure for setup in warm.compile_setups()}
    for args in (shlex.split(main_job.group(1)), case_args("seed_benchmark_4096")):
        setup = prepare_frame(parse_nanobragg(args).experiment, torch.float32)
        assert setup.structure in warmed, args
    assert {s.oversample for s in warmed} == {1, 2}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compile_warm_up_on_a_gpu_builds_the_cuda_kernel() -> None:
    timings = warm.warm_worker("compile", "cuda:0")
    assert timings["compile_s"] > 0
    kernels = KernelCache.shared()
    for setup in warm.compile_setups("cuda:0"):
        assert (setup.structure, True) in kernels._graphs and not kernels.failed(setup)
