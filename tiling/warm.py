"""Warming workers: imports, torch start-up and the kernels of a small frame.

The service warms its workers when it starts (:func:`warm_cluster`); a worker started on its own
warms itself with ``dask worker ADDRESS --preload tiling.warm`` (:func:`dask_setup`, mode from
the dask config ``braggtile.worker.warm``), before it takes tasks.

A worker declaring a ``GPU`` resource warms on its GPU (CUDA started, the compiled kernel
built by Triton, which took 13.7 s for the seed's structure on an H200), others on their CPUs.
``eager`` renders a 64x64 frame with the eager kernel (imports, torch's thread pools, the
set-up code), loads the compiled photon-noise draws (:mod:`engine.noise_native`), then runs
the tile tasks' own path once (:func:`warm_tasks`: a 64x64 frame in 32x32 tiles rendered by
:func:`tiling.stills.render_frames` into a temporary store, its pyramid included, then
deleted), so the first job finds zarr's I/O thread, the chunk codecs, the statistics and
pyramid code loaded. ``compile`` also compiles the kernel (``braggtile.compile.mode`` on) for
a default-tile (512x512) window of each structure of :data:`WARM_COMPILE` in float32, so a
first job of those structures finds the compiled kernel loaded in the worker (built once, then
loaded from the on-disk cache by later starts). Kernels of other structures load from that
cache at their first tile, in milliseconds on a CPU. The kernels stay in the process's
:meth:`~engine.kernel.KernelCache.shared` cache, which the worker's tasks use.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import Any, Literal

from distributed import Client

from engine import config

#: How workers are warmed: eager imports and a tiny render, plus the compiled kernel.
Warm = Literal["compile", "eager", "off"]
log = logging.getLogger("distributed.worker")  # shown with the worker's own log lines

#: A plain experiment: no mosaic, one source, default_F (the README's main job's structure:
#: C's automatic oversampling gives it 2 x 2 sub-pixels).
WARM_ARGS = (
    "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -lambda 1 -distance 100 -detpixels {n}"
).split()
#: The structures a ``compile`` warm-up builds: WARM_ARGS as they are, and with one sample
#: per pixel (``-oversample 1``: the seed benchmark's structure, and any plain experiment whose
#: pixels C leaves unsplit). A structure left out is compiled at its first tile: on an H200,
#: 1.1 s of a first 1-frame seed job whose warm jobs take 0.16 s when Triton's disk cache held
#: it, 13 s when not.
WARM_COMPILE = ((), ("-oversample", "1"))
WARM_TILE = 512
#: Tile of :func:`warm_tasks`'s 64x64 frame: 2 x 2 tiles, one level-1 chunk, 3 levels.
TASKS_TILE = 32


def warm_device(worker: Any) -> str:
    """Where ``worker``'s tasks render: "cuda:N" when it declares a ``GPU`` resource and CUDA
    is available (its GPU, as :class:`~tiling.worker.TilingPlugin` picks it), else "cpu"."""
    from tiling.worker import worker_gpu

    index = worker_gpu(worker)
    return "cpu" if index is None else f"cuda:{index}"


def warm_worker(mode: str, device: str | None = None) -> dict[str, float]:
    """Run on a worker: render a small frame eagerly, and compile when ``mode`` is compile, on
    ``device`` (default: where the worker's plugin renders "auto" tasks: its GPU, if any)."""
    import torch

    from engine import noise_native
    from engine.kernel import render_window
    from engine.setup import prepare_frame
    from engine.window import Window
    from tiling.worker import current_plugin

    plugin = current_plugin()
    kernels = plugin.kernels  # the worker's torch threads and kernels
    where = torch.device(device) if device else plugin.device("auto")
    timings = {}
    start = time.perf_counter()
    setup = prepare_frame(warm_experiment(64), dtype=torch.float32, device=where)
    render_window(setup, Window(0, 64, 0, 64), kernels, compiled=False)
    noise_native.library()  # photon-noise draws: built once per CPU, loaded here
    timings["eager_s"] = time.perf_counter() - start
    start = time.perf_counter()
    warm_tasks(where.type)
    timings["tasks_s"] = time.perf_counter() - start
    if mode == "compile" and config.compile_mode() != "off":
        start = time.perf_counter()
        for setup in compile_setups(where):
            render_window(setup, Window(0, WARM_TILE, 0, WARM_TILE), kernels, compiled=True)
        timings["compile_s"] = time.perf_counter() - start
    return timings


def warm_experiment(pixels: int, extra: tuple[str, ...] = ()) -> Any:
    """The experiment of :data:`WARM_ARGS` on a ``pixels``-square detector, plus ``extra``
    nanoBragg flags."""
    from engine.resolve import parse_nanobragg

    return parse_nanobragg([*(a.format(n=pixels) for a in WARM_ARGS), *extra]).experiment


def compile_setups(device: Any = "cpu") -> list:
    """Float32 set-ups of a WARM_TILE-square frame on ``device``, one per structure of
    :data:`WARM_COMPILE`."""
    import torch

    from engine.setup import prepare_frame

    experiments = [warm_experiment(WARM_TILE, extra) for extra in WARM_COMPILE]
    return [prepare_frame(e, torch.float32, device=torch.device(device)) for e in experiments]


def warm_tasks(device: str = "cpu") -> None:
    """Render a 64x64 frame in 32x32 tiles through the tile tasks' code (chunks, records,
    statistics, the pyramid's levels) on ``device`` ("cpu" or "cuda") into a store in a new
    temporary folder, then delete the folder and drop the store from the worker's caches."""
    from tiling.job import JobSpec
    from tiling.remote import Remote
    from tiling.stills import render_frames
    from tiling.store import TileStore
    from tiling.worker import current_plugin

    job = JobSpec(warm_experiment(64), tile=TASKS_TILE, pyramid_min=TASKS_TILE // 2)
    folder = tempfile.mkdtemp(prefix="braggtile-warm-")
    path = os.path.join(folder, "warm.zarr")
    try:
        TileStore.open_or_create(path, job)
        tiles = [(row, col) for row in range(2) for col in range(2)]
        Remote(render_frames)(path, job.fingerprint, [0], tiles, device, (0, 0))  # as a task
    finally:
        current_plugin().forget_store(path)
        shutil.rmtree(folder, ignore_errors=True)


def warm_cluster(client: Client, mode: Warm) -> dict[str, dict[str, float]]:
    """Warm every current worker of ``client`` (one task pinned to each); worker -> timings."""
    if mode == "off":
        return {}
    from tiling.remote import Remote

    workers = list(client.scheduler_info(n_workers=-1).get("workers", {}))
    futures = {
        address: client.submit(
            Remote(warm_worker), mode, workers=[address], allow_other_workers=False, pure=False
        )
        for address in workers
    }
    return {address: future.result() for address, future in futures.items()}


def dask_setup(worker: Any) -> None:
    """``dask worker --preload tiling.warm``: warm this worker as it starts."""
    mode = str(config.get("worker.warm"))
    if mode != "off":
        device = warm_device(worker)
        log.info("braggtile kernels warmed on %s: %s", device, warm_worker(mode, device))
