"""One ``distributed.Client`` whatever the cluster: an embedded LocalCluster or an address.

The embedded cluster runs spawned worker processes with one Dask thread each; torch gets the
host's cores divided among them. On a host with CUDA it starts one worker per GPU, each
declaring the resource ``GPU: 1`` (GPU tile tasks request it). For an existing cluster
(``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``), GPU workers declare the resource themselves,
e.g. ``dask worker ADDRESS --resources GPU=1`` or dask-cuda's ``dask cuda worker``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

from engine import config
from engine.errors import InputError
from tiling.worker import PLUGIN_NAME, TilingPlugin


def host_cores() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The explicit address, else ``DASK_SCHEDULER_ADDRESS`` / dask config, else None (embedded)."""
    return (
        scheduler
        or os.environ.get("DASK_SCHEDULER_ADDRESS")
        or dask.config.get("scheduler-address", None)
    )


def register_plugin(client: Client, torch_threads: int | None = None) -> None:
    """Install the braggtile worker plugin on every current and future worker of ``client``."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    per_host = Counter(w.get("host", "") for w in workers.values())
    plugin = TilingPlugin(torch_threads=torch_threads, workers_per_host=dict(per_host))
    client.register_plugin(plugin, name=PLUGIN_NAME)


def _cuda_devices() -> int:
    """CUDA devices torch sees here (0 without CUDA); imports torch, so only when connecting."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    torch_threads: int | None = None,
    gpu: bool | None = None,
    cluster: str | None = None,
    jobs: tuple[int, int] = (0, 4),
    in_process: bool = False,
) -> Iterator[Client]:
    """A client of the cluster at ``scheduler`` (see :func:`scheduler_address`; an explicit
    ``workers`` ignores the environment), else of a new embedded LocalCluster with ``workers``
    processes (default: one per GPU when ``gpu`` (default: CUDA available), else
    min(cores, DEFAULT_CPU_WORKERS)). ``torch_threads`` per worker defaults to the host's cores
    divided by its workers. ``cluster`` ("slurm", "pbs", "sge", "lsf") submits workers as batch
    jobs through dask-jobqueue (:mod:`tiling.batch`), adapting between ``jobs`` (min, max).
    ``in_process``: one thread-based worker in this process (no worker start-up; kernels
    compiled here stay loaded), torch using all the host's cores; the same tasks, store writes
    and events. Closes what it started on exit.
    """
    if cluster is not None:
        from tiling.batch import batch_cluster

        with batch_cluster(cluster, *jobs) as batch, Client(batch) as client:
            register_plugin(client, torch_threads)
            yield client
        return
    use_gpu = _cuda_devices() > 0 if gpu is None else gpu
    if in_process:
        with _local(1, False, use_gpu, torch_threads or host_cores()) as client:
            yield client
        return
    address = scheduler if workers is not None else scheduler_address(scheduler)
    if address:
        with Client(address) as client:
            client.wait_for_workers(1)
            register_plugin(client, torch_threads)
            yield client
        return

    cores = host_cores()
    if use_gpu:
        n = workers or max(1, _cuda_devices())
    else:
        n = workers or max(1, min(cores, config.integer("cluster.cpu-workers")))
    with _local(n, True, use_gpu, torch_threads or max(1, cores // n)) as client:
        yield client


@contextmanager
def _local(n: int, processes: bool, gpu: bool, torch_threads: int) -> Iterator[Client]:
    """A client of a new LocalCluster: ``n`` workers (spawned processes, or threads of this
    process) with one Dask thread each, declaring ``GPU: 1`` when ``gpu``; closed on exit."""
    if gpu and not _cuda_devices():
        raise InputError("--device", "GPU workers requested, but CUDA is not available here")
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            resources={"GPU": 1} if gpu else None,
        )
    try:
        with Client(cluster) as client:
            register_plugin(client, torch_threads)
            yield client
    finally:
        cluster.close()
