"""Worker side: a Dask worker plugin holding per-worker state, and the tasks that use it.

The plugin sets torch's thread count, picks the worker's device and caches, per worker, the
opened store with its job (the experiment is read once per worker from the store's attributes,
never shipped with each task) and the most recent :class:`~engine.setup.FrameSetup` objects,
keyed by (job fingerprint, frame, dtype, device), and hands its tasks the process's
:class:`~engine.kernel.KernelCache` (compiled block functions, loaded by the worker's
warm-up). Tasks write their output chunks themselves and return only small typed records
(:class:`TileGroupResult`).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from engine import config
from engine.frame import FrameSetup
from engine.statistics import FrameStatistics, TileStatistics
from engine.window import Window
from tiling import gate
from tiling.allocator import tune_allocator
from tiling.detector import write_detector_tile
from tiling.grid import TileGrid, intersect
from tiling.inputs import local_experiment
from tiling.pyramid import bin2x2, children, chunk_window, source_window
from tiling.store import TileRecord, TileStore

if TYPE_CHECKING:
    import torch

    from engine.kernel import KernelCache

# torch, the kernel and the frame set-up load inside the tasks (workers only): the service
# imports this module to build graphs and must not load torch

PLUGIN_NAME = "braggtile-tiling"
#: Worker seconds a tile-group task reports, by stage: store and frame set-up look-up, kernel,
#: statistics, chunk encoding and write (with the record), pyramid binning.
STAGES = ("setup", "render", "statistics", "write", "pyramid")

#: A picklable callable run on a worker once a frame's statistics are known, to write files
#: such as SMV/noise images: (frame set-up on the CPU, frame image (slow, fast) in photons/pixel,
#: its statistics, ROI mask (True = rendered), frame index) -> its log lines, which are returned
#: to the client (a writer never prints: workers share one stdout).
FrameWriter = Callable[[FrameSetup, np.ndarray, FrameStatistics, np.ndarray, int], list[str]]


class TilingPlugin(WorkerPlugin):
    """Per-worker state of braggtile tasks: torch threads, device, stores and frame set-ups.

    ``torch_threads``: intra-op threads per worker (None: the worker's dask config
    ``braggtile.worker.torch-threads``, else the host's cores divided by the number of workers
    that ``workers_per_host`` gives for its host, else 1 worker). ``cached_frames``,
    ``cached_stores``: how many FrameSetups and open stores a worker keeps (default: dask config
    ``braggtile.tiling.cached-frames`` / ``cached-stores``, read where the plugin is made).
    """

    def __init__(
        self,
        torch_threads: int | None = None,
        workers_per_host: dict[str, int] | None = None,
        cached_frames: int | None = None,
        cached_stores: int | None = None,
    ):
        self.torch_threads = torch_threads
        self.workers_per_host = dict(workers_per_host or {})
        self.cached_frames = cached_frames or config.integer("tiling.cached-frames")
        self.cached_stores = cached_stores or config.integer("tiling.cached-stores")
        self.threads = 1
        self.gpu_index: int | None = None
        self.setups_prepared = 0
        self.allocator_tuned = False
        self._kernels: KernelCache | None = None  # made on the worker (torch loads there only)
        self._stores: OrderedDict[tuple[str, str], TileStore] = OrderedDict()
        self._setups: OrderedDict[tuple[str, int, str, str], FrameSetup] = OrderedDict()

    @property
    def kernels(self) -> KernelCache:
        """The process's block functions (:meth:`KernelCache.shared`): the tasks of all the
        worker's threads, and the ``--preload tiling.warm`` warm-up (which ran before this
        plugin was registered), share them."""
        if self._kernels is None:
            from engine.kernel import KernelCache

            self._kernels = KernelCache.shared()
        return self._kernels

    def setup(self, worker: Any = None) -> None:
        self.kernels  # noqa: B018 - made before the tasks' threads share it
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        per_host = self.workers_per_host.get(getattr(worker, "ip", ""), 1)
        configured = config.get("worker.torch-threads")  # this worker's own setting
        self.threads = self.torch_threads or configured or max(1, (cores or 1) // max(1, per_host))
        self.gpu_index = worker_gpu(worker)
        self.allocator_tuned = tune_allocator()
        self.enter()

    def enter(self) -> None:
        """Apply the thread count in the calling thread (OpenMP settings are per thread)."""
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def device(self, kind: str) -> torch.device:
        """The torch device for tasks of ``kind`` on this worker: "cpu", "cuda", or "auto" (this
        worker's GPU when it declares a ``GPU`` resource and has CUDA, else its CPUs)."""
        import torch

        if kind == "auto":
            kind = "cuda" if self.gpu_index is not None else "cpu"
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("a GPU task reached a worker without CUDA")
            return torch.device("cuda", self.gpu_index or 0)
        return torch.device("cpu")

    def store(self, path: str, fingerprint: str) -> TileStore:
        key = (path, fingerprint)
        if key in self._stores:
            self._stores.move_to_end(key)
            return self._stores[key]
        store = TileStore.open_for_worker(path, fingerprint)
        self._stores[key] = store
        while len(self._stores) > self.cached_stores:
            self._stores.popitem(last=False)
        return store

    def forget_store(self, path: str) -> None:
        """Drop the open stores at ``path`` and their jobs' frame set-ups (a deleted store)."""
        for key in [k for k in self._stores if k[0] == path]:
            store = self._stores.pop(key)
            for setup in [s for s in self._setups if s[0] == store.job.fingerprint]:
                del self._setups[setup]

    def frame_setup(self, store: TileStore, frame: int, device: torch.device) -> FrameSetup:
        from engine.setup import prepare_frame

        job = store.job
        key = (store.fingerprint, frame, job.dtype, str(device))
        if key in self._setups:
            self._setups.move_to_end(key)
            return self._setups[key]
        experiment = local_experiment(job.frame_experiment(frame), job, store.group)
        setup = prepare_frame(experiment, dtype=job.torch_dtype, device=device)
        self.setups_prepared += 1
        self._setups[key] = setup
        while len(self._setups) > self.cached_frames:
            self._setups.popitem(last=False)
        return setup


def worker_gpu(worker: Any) -> int | None:
    """The CUDA device ``worker``'s tasks render on: its GPU when it declares a ``GPU``
    resource and CUDA is available, else None (its CPUs; also for no worker)."""
    if worker is None or "GPU" not in worker.state.total_resources:
        return None
    return _gpu_index(worker.name)


def _gpu_index(name: Any) -> int | None:
    """The CUDA device of a GPU worker: one per worker by its number, or the only one visible."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return None
    return name % count if isinstance(name, int) else 0


_LOCAL_PLUGIN: TilingPlugin | None = None


def current_plugin() -> TilingPlugin:
    """This worker's plugin (a process-local default when run outside a Dask worker)."""
    global _LOCAL_PLUGIN
    try:
        plugin = get_worker().plugins.get(PLUGIN_NAME)
    except ValueError:
        plugin = None
    if plugin is None:
        if _LOCAL_PLUGIN is None:
            _LOCAL_PLUGIN = TilingPlugin()
            _LOCAL_PLUGIN.setup()
        plugin = _LOCAL_PLUGIN
    assert isinstance(plugin, TilingPlugin)
    plugin.enter()
    return plugin


def worker_info() -> dict[str, Any]:
    """Diagnostics of the worker it runs on: pid, torch threads seen by tasks, GPU, set-ups made."""
    import torch

    plugin = current_plugin()
    return {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "gpu_index": plugin.gpu_index,
        "setups_prepared": plugin.setups_prepared,
        "allocator_tuned": plugin.allocator_tuned,
    }


@dataclass(frozen=True)
class TileResult:
    """A tile a task rendered and wrote: (row, col) of its frame and its record."""

    row: int
    col: int
    record: TileRecord


@dataclass(frozen=True)
class TileGroupResult:
    """What a :func:`render_tiles` task returns: its tiles' results in the order it was given
    them, and the worker seconds it spent by stage (:data:`STAGES`)."""

    tiles: list[TileResult]
    stages: dict[str, float]


def render_tiles(
    path: str,
    fingerprint: str,
    frame: int,
    tiles: list[tuple[int, int]],
    device: str,
    level1: list[tuple[int, int]] | None = None,
    below: list[list[tuple[int, int]]] | None = None,
) -> TileGroupResult:
    """Render ``tiles`` ((row, col) each) of ``frame``, writing each level-0 chunk, then
    their records (one file per level-1 chunk's tiles: :class:`_Records`); then write each of
    the pyramid's ``level1`` chunks (if given), binned from the tiles in memory (its other
    tiles, already recorded or outside the ROI, read from the store), then the chunks of
    levels 2, 3, ... listed in ``below`` (if given), each level binned from the one above in
    memory (a task holding whole level-2 chunks, or a whole frame: its whole pyramid).

    A task renders the tiles of one or more level-1 chunks side by side (:mod:`tiling.graph`),
    so the first pyramid level never reads level 0 back. Tiles narrower or shorter than the
    kernel's block render together (:func:`render_runs`): one kernel call for a run of
    adjacent tiles, so a small tile costs its own pixels, not a padded block. A tile held by
    the test gate (:mod:`tiling.gate`) holds its run until its release.
    """
    start = time.perf_counter()
    plugin = current_plugin()
    store = plugin.store(path, fingerprint)
    stages = dict.fromkeys(STAGES, 0.0)
    parts: dict[tuple[int, int], np.ndarray] = {}  # each tile, binned when tiles are even
    results: dict[tuple[int, int], TileResult] = {}
    setup = None
    if tiles:
        setup = plugin.frame_setup(store, frame, plugin.device(device))
    records = _Records(store, frame, tiles)
    stages["setup"] = time.perf_counter() - start
    for run in render_runs(store.job.grid, tiles, setup):
        for row, col in run:
            gate.before_tile(frame, row, col)
        for (row, col), (pixels, seconds) in _render_run(plugin, store, setup, run, stages):
            key = (frame, row, col)
            data, record = _finish_tile(plugin, store, setup, key, pixels, seconds, stages)
            results[(row, col)] = TileResult(row, col, record)
            records.add(row, col, record, stages)
            if level1 is not None:
                t0 = time.perf_counter()
                parts[(row, col)] = _level1_part(store, data)
                stages["pyramid"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    images = {chunk: _write_level1(store, frame, chunk, parts) for chunk in level1 or ()}
    for level, chunks in enumerate(below or (), start=2):
        images = {chunk: _write_binned(store, frame, level, chunk, images) for chunk in chunks}
    stages["pyramid"] += time.perf_counter() - t0
    return TileGroupResult([results[tuple(key)] for key in tiles], stages)


def render_runs(
    grid: TileGrid, tiles: list[tuple[int, int]], setup: FrameSetup | None
) -> list[list[tuple[int, int]]]:
    """``tiles`` in runs that render as one window: the tiles of each cell of a grid of
    ceil(block rows / tile) x ceil(block columns / tile) tiles (the compiled block's shape,
    :func:`engine.kernel.block_shape`), in the order of their first tile in ``tiles``. A tile
    as large as the block is a run of its own."""
    if setup is None:
        return []
    from engine.kernel import block_shape

    rb, fb = block_shape(setup)
    kr, kc = -(-rb // grid.tile), -(-fb // grid.tile)
    runs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for row, col in tiles:
        runs.setdefault((row // kr, col // kc), []).append((row, col))
    return list(runs.values())


def _render_run(
    plugin: TilingPlugin,
    store: TileStore,
    setup: FrameSetup,
    run: list[tuple[int, int]],
    stages: dict,
) -> list[tuple[tuple[int, int], tuple[np.ndarray, float]]]:
    """Render the bounding window of ``run``'s tiles in one call; each tile's pixels (a
    contiguous copy of its part, bit for bit its own render: a pixel never depends on its
    window) and its share of the render's seconds, by pixels."""
    import torch

    from engine.kernel import render_window

    start = time.perf_counter()
    grid = store.job.grid
    windows = [grid.window(row, col) for row, col in run]
    union = Window(
        min(w.slow0 for w in windows),
        max(w.slow1 for w in windows),
        min(w.fast0 for w in windows),
        max(w.fast1 for w in windows),
    )
    values = render_window(setup, union, plugin.kernels)
    if values.device.type == "cuda":
        torch.cuda.synchronize(values.device)
    image = values.cpu().numpy()
    seconds = time.perf_counter() - start
    stages["render"] += seconds
    out = []
    for key, w in zip(run, windows, strict=True):
        part = image[w.slices_in(union)]
        share = seconds * w.pixels / union.pixels
        out.append((key, (part if len(run) == 1 else np.ascontiguousarray(part), share)))
    return out


class _Records:
    """The records of a task's tiles of ``frame``, written a record chunk at a time
    (:meth:`TileStore.record_chunk`: a level-1 chunk's tiles) once the chunks of all the
    task's tiles in it are written; a tile passes the test gate once its record is written."""

    def __init__(self, store: TileStore, frame: int, tiles: list[tuple[int, int]]):
        self.store, self.frame = store, frame
        self.left: dict[tuple[int, int], int] = {}  # record chunk -> its tiles not yet written
        for row, col in tiles:
            chunk = store.record_chunk(row, col)
            self.left[chunk] = self.left.get(chunk, 0) + 1
        self.waiting: dict[tuple[int, int], dict[tuple[int, int], TileRecord]] = {}

    def add(self, row: int, col: int, record: TileRecord, stages: dict[str, float]) -> None:
        """Tile (row, col) is written: its record waits for its chunk's other tiles."""
        chunk = self.store.record_chunk(row, col)
        self.waiting.setdefault(chunk, {})[(row, col)] = record
        self.left[chunk] -= 1
        if self.left[chunk]:
            return
        start = time.perf_counter()
        done = self.waiting.pop(chunk)
        self.store.write_records(self.frame, done)
        stages["write"] += time.perf_counter() - start
        for r, c in done:
            gate.after_tile(self.frame, r, c)


def _level1_part(store: TileStore, pixels: np.ndarray) -> np.ndarray:
    """What a tile contributes to its level-1 chunk: its 2x2 bin when every tile starts on an
    even pixel (a quarter of the memory, kept while the task runs), else the tile itself."""
    if store.job.tile % 2:
        return pixels
    return bin2x2(pixels, store.job.dtype)


def _finish_tile(
    plugin: TilingPlugin,
    store: TileStore,
    setup: FrameSetup,
    key: tuple[int, int, int],
    pixels: np.ndarray,
    render_s: float,
    stages: dict,
) -> tuple[np.ndarray, TileRecord]:
    """Measure and write rendered tile ``key`` (frame, row, col): its chunk; its level-0
    pixels (the detector's ADU in a store without photons) and record, to be written
    (``render_s``: its share of the render's seconds, to which its statistics and chunk
    writes are added)."""
    frame, row, col = key
    start = time.perf_counter()
    grid = store.job.grid
    window = grid.window(row, col)
    # ROI pixels of the tile (None: all; a tile wholly outside counts all its pixels, as before)
    mask = grid.roi.part_of(window) if intersect(window, grid.roi) is not None else None
    stats = TileStatistics.from_tile(pixels, window, mask, setup.skipped(window))
    t_stats = time.perf_counter()
    if store.job.photons:
        store.write_chunk(0, frame, row, col, pixels)
    adu = write_detector_tile(store, setup, plugin.kernels, frame, row, col, pixels, mask)
    end = time.perf_counter()
    record = TileRecord(stats, rendered_at=time.time(), render_s=render_s + end - start)
    stages["statistics"] += t_stats - start
    stages["write"] += end - t_stats
    return (pixels if adu is None or store.job.photons else adu), record


def _write_level1(
    store: TileStore, frame: int, chunk: tuple[int, int], parts: dict[tuple[int, int], np.ndarray]
) -> np.ndarray:
    """Write level-1 chunk ``chunk`` of ``frame`` from its level-0 tiles' :func:`_level1_part`
    (taken out of ``parts``; tiles not there, recorded earlier or outside the ROI, are read
    from the store) and return it. Odd tiles split 2x2 blocks, so their chunk is assembled
    first, then binned."""
    job = store.job
    shapes, tile = job.level_shapes, job.tile
    window = chunk_window(shapes[1], tile, *chunk)
    src = source_window(window, shapes[0])
    even = tile % 2 == 0
    image = np.empty(window.shape if even else src.shape, dtype=job.dtype)
    for row, col in children(shapes[0], tile, *chunk):
        part = parts.pop((row, col), None)
        if part is None:
            part = _level1_part(store, store.read_chunk(0, frame, row, col))
        w = job.grid.window(row, col)
        ds, df = w.slow0 - src.slow0, w.fast0 - src.fast0
        if even:
            ds, df = ds // 2, df // 2
        image[ds : ds + part.shape[0], df : df + part.shape[1]] = part
    if not even:
        image = bin2x2(image, job.dtype)
    store.write_chunk(1, frame, *chunk, image)
    return image


def _write_binned(
    store: TileStore,
    frame: int,
    level: int,
    chunk: tuple[int, int],
    above: dict[tuple[int, int], np.ndarray],
) -> np.ndarray:
    """Write chunk ``chunk`` of pyramid ``level`` (>= 1) of ``frame``, binned from its chunks
    of the level above: those in ``above`` (written by this task), the others read from the
    store (written by other tasks, or outside the ROI); returns it."""
    job = store.job
    shapes, tile = job.level_shapes, job.tile
    src = source_window(chunk_window(shapes[level], tile, *chunk), shapes[level - 1])
    image = np.empty(src.shape, dtype=store.chunks(level - 1).dtype)  # as read_window reads
    for row, col in children(shapes[level - 1], tile, *chunk):
        part = above.get((row, col))
        if part is None:
            part = store.read_chunk(level - 1, frame, row, col)
        image[chunk_window(shapes[level - 1], tile, row, col).slices_in(src)] = part
    binned = bin2x2(image, job.dtype)
    store.write_chunk(level, frame, *chunk, binned)
    return binned


def bin_chunk(
    path: str, fingerprint: str, frame: int, level: int, row: int, col: int, *after: Any
) -> float:
    """Write chunk (row, col) of pyramid ``level`` of ``frame`` from the level above; returns
    the seconds it took.

    ``after``: futures of the chunks it reads (only to order the tasks; values unused).
    """
    start = time.perf_counter()
    _write_binned(current_plugin().store(path, fingerprint), frame, level, (row, col), {})
    return time.perf_counter() - start


def bin_tail(path: str, fingerprint: str, frame: int, first: int, *after: Any) -> float:
    """Write pyramid levels ``first`` .. last of ``frame``, each a single chunk, binning in
    memory from level ``first - 1`` (read once); returns the seconds it took.

    ``after``: futures of the level-``first - 1`` chunks (only to order the tasks)."""
    start = time.perf_counter()
    store = current_plugin().store(path, fingerprint)
    images: dict[tuple[int, int], np.ndarray] = {}
    for level in range(first, len(store.job.level_shapes)):
        images = {(0, 0): _write_binned(store, frame, level, (0, 0), images)}
    return time.perf_counter() - start


def finish_frame(
    path: str,
    fingerprint: str,
    frame: int,
    statistics: dict[str, Any],
    writer: FrameWriter | None,
    *after: Any,
) -> str:
    """Run the job's frame writer on the finished frame, if any; returns its log, one line each."""
    if writer is None:
        return ""
    plugin = current_plugin()
    store = plugin.store(path, fingerprint)
    setup = plugin.frame_setup(store, frame, plugin.device("cpu"))
    image = store.read_frame(0, frame)
    mask = store.job.grid.roi.mask(*image.shape)
    lines = writer(setup, image, FrameStatistics.from_dict(statistics), mask, frame)
    return "".join(f"{line}\n" for line in lines or ())
