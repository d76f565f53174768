"""``/healthz``: workers and their kinds, jobs running and queued, free bytes on ``--data``."""

from __future__ import annotations

import threading
from typing import Any

from distributed import Client

from service.models import Health, WorkerInfo
from service.space import free_bytes
from tiling.store import software_version
from tiling.worker import worker_info


class Workers:
    """Each worker's details; its plugin's (GPU index, torch threads) are asked once per
    worker, so a health check costs one scheduler query once the workers are known."""

    def __init__(self, client: Client):
        self.client = client
        self.known: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def describe(self) -> list[WorkerInfo]:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        new = [address for address in workers if address not in self.known]
        if new:
            found = self.client.run(worker_info, workers=new, on_error="return")
            with self.lock:
                for address, info in found.items():
                    self.known[address] = info if isinstance(info, dict) else {}
        return [_info(address, w, self.known.get(address, {})) for address, w in workers.items()]


def _info(address: str, worker: dict[str, Any], plugin: dict[str, Any]) -> WorkerInfo:
    gpu = "GPU" in (worker.get("resources") or {})
    return WorkerInfo(
        address=address,
        name=str(worker.get("name", address)),
        kind="gpu" if gpu else "cpu",
        threads=int(worker.get("nthreads", 0)),
        memory_limit=worker.get("memory_limit"),
        gpu_index=plugin.get("gpu_index"),
        torch_threads=plugin.get("torch_threads"),
    )


def health(service: Any) -> Health:
    """The service's health: ``service`` is the running :class:`service.app.Service`."""
    workers = service.workers.describe()
    counts = service.manager.status_counts()
    return Health(
        status="ok",
        workers=len(workers),
        jobs_running=counts.get("running", 0),
        jobs_queued=counts.get("accepted", 0),
        disk_free_bytes=free_bytes(service.settings.data),
        worker_info=workers,
        version=software_version(),
    )
