"""Batch-system clusters (SLURM, PBS, SGE, LSF) through dask-jobqueue, used as they are.

Each cluster class reads its settings (queue, account, cores, memory, walltime, worker options)
from dask-jobqueue's own configuration, ``jobqueue.<kind>`` in any Dask config file (for example
``~/.config/dask/jobqueue.yaml``, or a file named by ``DASK_CONFIG``); ``deploy/jobqueue.yaml``
is a worked example. The cluster scales itself with ``adapt`` between ``minimum_jobs`` and
``maximum_jobs`` batch jobs, and is handed to :class:`distributed.Client` like any other cluster.
``local`` runs the same machinery with plain local processes (dask-jobqueue's test cluster).
"""

from __future__ import annotations

import importlib
import signal
import threading
from typing import Any

from engine.errors import UserInputError

#: ``--cluster`` value -> dask-jobqueue module and class.
BATCH_CLUSTERS = {
    "slurm": ("dask_jobqueue", "SLURMCluster"),
    "pbs": ("dask_jobqueue", "PBSCluster"),
    "sge": ("dask_jobqueue", "SGECluster"),
    "lsf": ("dask_jobqueue", "LSFCluster"),
    "local": ("dask_jobqueue.local", "LocalCluster"),
}


class BatchClusterError(UserInputError):
    """The batch cluster cannot be created (unknown kind, dask-jobqueue missing)."""


def batch_cluster(kind: str, minimum_jobs: int = 0, maximum_jobs: int = 4, **kwargs: Any) -> Any:
    """A dask-jobqueue cluster of ``kind`` configured from ``jobqueue.<kind>``, adapting between
    ``minimum_jobs`` and ``maximum_jobs`` batch jobs; ``kwargs`` override the configuration."""
    if kind not in BATCH_CLUSTERS:
        choices = ", ".join(BATCH_CLUSTERS)
        raise BatchClusterError(f"--cluster: unknown batch system {kind!r} (one of {choices})")
    if not 0 <= minimum_jobs <= maximum_jobs:
        raise BatchClusterError(
            f"--min-jobs/--max-jobs: need 0 <= min <= max, got {minimum_jobs} and {maximum_jobs}"
        )
    cluster = getattr(batch_module(kind), BATCH_CLUSTERS[kind][1])(**kwargs)
    cluster.adapt(minimum_jobs=minimum_jobs, maximum_jobs=maximum_jobs)
    return cluster


def batch_module(kind: str) -> Any:
    """The dask-jobqueue module of ``kind``. Import it first from the main thread: importing
    dask-jobqueue replaces the SIGINT handler (its runner exits silently on Ctrl-C), which only
    the main thread may do; the handler in place before the import is put back."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        return importlib.import_module(BATCH_CLUSTERS[kind][0])
    except ImportError as err:
        raise BatchClusterError(
            "--cluster needs dask-jobqueue: pip install 'braggtile[hpc]'"
        ) from err
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
