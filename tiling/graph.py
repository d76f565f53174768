"""The Dask graph of a job, frames x tiles, driven from the client.

Tiles are submitted frame by frame (a bounded number pending at a time), one task per level-1
pyramid chunk, or per few of them side by side when tiles are narrower than the kernel's block
(:func:`chunks_per_task`): it renders their (2 x 2 each) tiles, adjacent tiles as one window
(:func:`tiling.worker.render_runs`), writes each tile's chunk and record, then bins the level-1
chunks from the tiles in memory (and, for the narrowest tiles, two rows of level-1 chunks to
level 2: :func:`level2_in_tasks`). Tasks nearest the beam centre go first
(Dask priorities). The rest of a frame's pyramid is submitted with its tiles: one task per
output chunk of each level, each depending on the tasks writing the chunks it bins, and one
task for all the levels that fit in a single chunk, so the workers go on to it without a round
trip through the client. A job with enough frames per worker thread renders each frame
(but the few left over at the end) in one task that writes its whole pyramid from memory
(:func:`whole_frames`): a fifth of the tasks for 4096 x 4096 frames of tile 1024. When a
frame's last tile-group task lands, the client merges the
tiles' statistics partials into the frame statistics (group attributes), then submits an
optional per-frame task that runs the frame writer (SMV/noise files) after the pyramid.
Tiles already recorded in the store are not rendered again (resume). Small frames (all tiles
in one level-1 chunk) go whole, several to a task, pyramid included (:mod:`tiling.stills`), so
a long series of stills is a graph of a few tasks per worker thread and window of pending
tiles. The client only ever handles small records, never pixels.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from distributed import Client, Future, as_completed

from engine import config
from engine.config import BLOCK_COLS
from engine.statistics import TileStatistics, merge_all
from tiling.events import EventHook, FrameDone, JobDone, JobStarted, TileDone
from tiling.grid import Tile, beam_centre_pixels
from tiling.job import JobSpec
from tiling.lock import StoreLock
from tiling.pyramid import children, level_chunks
from tiling.remote import Remote
from tiling.stills import frames_per_task, render_frames
from tiling.store import TileRecord, TileStore
from tiling.truth import frame_truth
from tiling.worker import (
    STAGES,
    FrameWriter,
    TileGroupResult,
    bin_chunk,
    bin_tail,
    finish_frame,
    render_tiles,
)

DeviceChoice = Literal["auto", "cpu", "cuda"]

#: Pyramid and frame-finishing tasks run ahead of any queued tile.
FINISH_PRIORITY = 1 << 30
#: How often a cancellable run looks at its cancel event while no task is finished, s.
CANCEL_POLL_S = 0.02
#: Tasks per cancel message.
CANCEL_BATCH = 16


class JobCancelled(Exception):
    """render_job stopped because its ``cancel`` event was set; its live tasks were cancelled."""


@dataclass(frozen=True)
class TileGroupTask:
    """A task rendering the missing ``tiles`` ((row, col) -> tile) of one level-1 chunk."""

    frame: int
    tiles: dict[tuple[int, int], Tile]


@dataclass(frozen=True)
class PyramidTask:
    """A task binning pyramid chunks of ``frame`` (its result: the seconds it took)."""

    frame: int


@dataclass(frozen=True)
class FinishTask:
    """A task running the frame writer on finished ``frame`` (its result: the writer's log)."""

    frame: int


@dataclass(frozen=True)
class FramesTask:
    """A task rendering the whole of each of ``frames`` (small frames: one level-1 chunk each),
    pyramid included; ``tiles``: (row, col) -> tile, the same for every frame."""

    frames: list[int]
    tiles: dict[tuple[int, int], Tile]


Task = TileGroupTask | FramesTask | PyramidTask | FinishTask


@dataclass
class _Frame:
    missing: list[Tile]  # tiles still to submit, nearest the beam centre first
    remaining: int  # tiles not yet in the store
    partials: dict[tuple[int, int], TileStatistics]  # (row, col) -> partial of a finished tile
    futures: list[Future] = field(default_factory=list)  # its pyramid tasks, kept until done
    finishing: int = 0  # pyramid (and writer) tasks of the frame still running
    groups: int = 0  # tile-group tasks of the frame still running
    tiles_in: bool = False  # every tile is in and the statistics are recorded
    log: str = ""  # the frame writer's log

    @property
    def statistics(self) -> TileStatistics:
        """The frame's statistics, merged in tile order: the same bits whatever order the tiles
        finished in, and after any resume."""
        return merge_all([self.partials[key] for key in sorted(self.partials)])


class _Run:
    """State of one render_job call on the client: what is submitted, pending and merged."""

    def __init__(
        self,
        client: Client,
        store: TileStore,
        device: str,
        emit: EventHook,
        frame_writer: FrameWriter | None,
        max_pending_tiles: int,
    ):
        self.client, self.store, self.job = client, store, store.job
        self.device = device
        self.resources = {"GPU": 1} if device == "cuda" else None
        #: whose compiled block a task spans: a GPU's where GPU workers may take its tasks
        self.span_device = "cuda" if device == "auto" and gpu_workers(client) else device
        self.emit = emit
        self.frame_writer = frame_writer
        self.max_pending_tiles = max_pending_tiles
        self.token = uuid.uuid4().hex[:12]
        self.fingerprint = self.job.fingerprint  # hashed once, not per task
        self.grid = self.job.grid
        self.level1 = len(self.job.level_shapes) > 1
        self.level2 = level2_in_tasks(self.job, self.span_device)
        self.tiles_total = 0
        self.order = self.grid.ordered(*beam_centre_pixels(self.job.experiment))
        self.frames: dict[int, _Frame] = {}
        self.queue: deque[int] = deque()  # frames whose missing tiles are not yet submitted
        self.tasks: dict[str, Task] = {}  # live task key -> what it does
        self.live: dict[str, Future] = {}
        self.pending = as_completed(with_results=True)
        self.pending_tiles = 0
        self.rendered = 0
        self.pixels = 0
        self.stages: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.group = 0  # frames per FramesTask; 0: frames are not small (see plan)
        self.whole: set[int] = set()  # frames rendered by one task each, pyramid included
        #: frame -> (summary, log) of frames completed while frames_done runs (else None)
        self.deferred: dict[int, tuple[Any, str]] | None = None

    def submit(self, func: Any, key: str, *args: Any, priority: int, **kw: Any) -> Future:
        """Submit task ``key``: ``func`` (a :mod:`tiling.worker` function, sent by name: the
        scheduler imports none of its modules) on the job's store, with ``args``."""
        future = self.client.submit(
            Remote(func),
            self.store.path,
            self.fingerprint,
            *args,
            key=key,
            priority=priority,
            pure=False,
            **kw,
        )
        self.pending.add(future)
        self.live[key] = future
        return future

    def plan(self, records: dict[tuple[int, int, int], TileRecord], complete: set[int]) -> int:
        """Set up every incomplete frame from the records; returns tiles already done."""
        done_total = 0
        for frame in range(self.job.frames):
            if frame in complete:
                done_total += len(self.order)
                continue
            keys = [(frame, t.row, t.col) for t in self.order]
            done = {k[1:]: records[k].statistics for k in keys if k in records}
            missing = [t for t, k in zip(self.order, keys, strict=True) if k not in records]
            self.frames[frame] = _Frame(missing, len(missing), done)
            done_total += len(done)
            if missing:
                self.queue.append(frame)
        threads = sum(self.client.nthreads().values())
        if self.small_frames():
            self.group = frames_per_task(self.grid.roi.pixels, len(self.queue), threads)
        else:
            self.whole = whole_frames(list(self.queue), threads, self.grid.roi.pixels)
        return done_total

    def small_frames(self) -> bool:
        """True if a frame's tiles all lie in one level-1 chunk, whose pyramid below is one
        chunk a level: then a task renders whole frames (:class:`FramesTask`)."""
        shapes, tile = self.job.level_shapes, self.job.tile
        if len({(t.row // 2, t.col // 2) for t in self.order}) != 1:
            return False
        return len(shapes) < 2 or max(shapes[1]) <= tile

    def feed(self) -> None:
        """Submit the tiles of queued frames, in frame order, up to ``max_pending_tiles``: one
        task per group of level-1 pyramid chunks (:meth:`groups`), rendering their missing tiles
        and writing those chunks (a chunk whose tiles are all recorded is only binned again)."""
        while self.queue:
            if self.group and self.feed_frames():
                continue
            state = self.frames[self.queue[0]]
            if (
                self.pending_tiles
                and self.pending_tiles + len(state.missing) > self.max_pending_tiles
            ):
                return
            frame = self.queue.popleft()
            self.store.write_truth(frame, frame_truth(self.job, frame).model_dump(mode="json"))
            whole = frame in self.whole
            written: dict[tuple[int, int], Future] = {}  # pyramid chunk -> task writing it
            for rank, (chunks, tiles) in enumerate(self.groups(state.missing, whole)):
                first = chunks[0] if chunks else (0, 0)
                key = f"bt-tiles-{self.token}-{frame}-{first[0]}-{first[1]}"
                below = self.below(chunks, whole)
                future = self.submit(
                    render_tiles,
                    key,
                    frame,
                    [(t.row, t.col) for t in tiles],
                    self.device,
                    chunks if self.level1 else None,
                    below,
                    priority=-(frame * len(self.order) + rank),
                    resources=self.resources,
                )
                self.tasks[key] = TileGroupTask(frame, {(t.row, t.col): t for t in tiles})
                state.groups += 1
                written.update(dict.fromkeys(below[-1] if below else chunks, future))
            self.pending_tiles += len(state.missing)
            state.missing = []
            if self.level1 and not whole:  # the rest of the pyramid now, waiting on the tasks
                self.submit_pyramid(frame, 3 if self.level2 else 2, written)

    def feed_frames(self) -> bool:
        """Submit the next up-to-``group`` queued frames with no tile recorded as one
        :class:`FramesTask`, within ``max_pending_tiles``; False if the next frame has
        recorded tiles (it goes by tile groups) or no room is left."""
        batch: list[int] = []
        whole = len(self.order)
        for frame in self.queue:
            if len(batch) == self.group or len(self.frames[frame].missing) != whole:
                break
            if self.pending_tiles + whole * (len(batch) + 1) > self.max_pending_tiles:
                break
            batch.append(frame)
        if not batch:
            return False
        self.store.write_truths(
            {frame: frame_truth(self.job, frame).model_dump(mode="json") for frame in batch}
        )
        for frame in batch:
            self.queue.popleft()
            state = self.frames[frame]
            state.missing, state.groups = [], 1
        self.pending_tiles += whole * len(batch)
        key = f"bt-frames-{self.token}-{batch[0]}-{batch[-1]}"
        chunk = (0, 0) if self.level1 else None
        tiles = [(t.row, t.col) for t in self.order]
        self.submit(
            render_frames, key, batch, tiles, self.device, chunk,
            priority=-(batch[0] * whole), resources=self.resources,
        )  # fmt: skip
        self.tasks[key] = FramesTask(batch, {(t.row, t.col): t for t in self.order})
        return True

    def groups(
        self, missing: list[Tile], whole: bool = False
    ) -> list[tuple[list[tuple[int, int]], list[Tile]]]:
        """The tasks of a frame: (its level-1 chunks, its missing tiles in beam-centre order),
        the task of the tile nearest the beam first. A task holds the level-1 chunks (2 x 2
        tiles each) of :func:`chunks_per_task` side by side, so tiles narrower than the
        kernel's block render together, in two rows of them when it writes level 2 too
        (:func:`level2_in_tasks`), or all of them for a ``whole`` frame; with a pyramid,
        every level-1 chunk of the ROI is in a task (those with no missing tile are binned
        again, as a resumed frame may lack them)."""
        span = chunks_per_task(self.job.tile, self.span_device)
        rows = 2 if self.level2 else 1
        if whole:
            span = rows = 1 << 30
        groups: dict[tuple[int, int], tuple[list[tuple[int, int]], list[Tile]]] = {}

        def group(chunk: tuple[int, int]) -> tuple[list[tuple[int, int]], list[Tile]]:
            entry = groups.setdefault((chunk[0] // rows, chunk[1] // span), ([], []))
            if chunk not in entry[0]:
                entry[0].append(chunk)
            return entry

        for tile in missing:
            group((tile.row // 2, tile.col // 2))[1].append(tile)
        if self.level1:
            job = self.job
            for chunk in level_chunks(job.level_shapes, 1, job.tile, self.grid.roi):
                group(chunk)
        return list(groups.values())

    def below(
        self, chunks: list[tuple[int, int]], whole: bool
    ) -> list[list[tuple[int, int]]] | None:
        """The chunks of levels 2, 3, ... a task holding level-1 ``chunks`` writes: every
        chunk of every level for a ``whole`` frame, the level-2 chunks of its two rows of
        level-1 chunks when :func:`level2_in_tasks`, else none (binning tasks write them)."""
        job = self.job
        if not self.level1 or not (whole or self.level2):
            return None
        if whole:
            return [
                level_chunks(job.level_shapes, level, job.tile, self.grid.roi)
                for level in range(2, len(job.level_shapes))
            ]
        return [sorted({(r // 2, c // 2) for r, c in chunks})]

    def submit_pyramid(
        self, frame: int, first: int, written: dict[tuple[int, int], Future]
    ) -> None:
        """Submit the pyramid of ``frame`` from level ``first`` on: one task per chunk of each
        level, depending on the tasks writing the chunks it bins (``written``: chunk of level
        ``first - 1`` -> the tile-group task writing it; none for chunks already in the store),
        and one task for all the levels that fit in a single chunk. Submitted with the frame's
        tiles, they run on the workers as soon as their chunks are written, without waiting
        for the client to see the tiles land."""
        state, job = self.frames[frame], self.job
        shapes = job.level_shapes
        previous = dict(written)
        for level in range(first, len(shapes)):
            key = f"bt-bin-{self.token}-{frame}-{level}"
            if max(shapes[level]) <= job.tile:  # this level and all below: one chunk each
                deps = _distinct(previous.values())
                tail = self.submit(bin_tail, key, frame, level, *deps, priority=FINISH_PRIORITY)
                previous = {(0, 0): tail}
                self.tasks[key] = PyramidTask(frame)
                state.futures.append(tail)
                break
            current = {}
            for row, col in level_chunks(shapes, level, job.tile, self.grid.roi):
                above = children(shapes[level - 1], job.tile, row, col)
                deps = _distinct(previous[c] for c in above if c in previous)
                chunk_key = f"{key}-{row}-{col}"
                current[(row, col)] = self.submit(
                    bin_chunk, chunk_key, frame, level, row, col, *deps, priority=FINISH_PRIORITY
                )
                self.tasks[chunk_key] = PyramidTask(frame)
            state.futures.extend(current.values())
            previous = current
        state.finishing += len(state.futures)

    def tiles_finished(self, frame: int) -> None:
        """All tiles of ``frame`` are in: record its statistics, then submit its writer (after
        its pyramid), or end the frame if its pyramid is already done."""
        state = self.frames[frame]
        summary = state.statistics.summary()
        if state.finishing or self.frame_writer is not None:  # else: complete at once
            self.store.set_frame(frame, summary, complete=False)
        state.tiles_in = True
        if self.frame_writer is not None:
            key = f"bt-finish-{self.token}-{frame}"
            self.submit(
                finish_frame,
                key,
                frame,
                summary.to_dict(),
                self.frame_writer,
                *state.futures,
                priority=FINISH_PRIORITY,
            )
            state.finishing += 1
            self.tasks[key] = FinishTask(frame)
        self.finishing_done(frame)

    def frames_done(self, task: FramesTask, results: list[TileGroupResult], done: int) -> int:
        """A FramesTask finished: each frame's tiles and the frame are done (pyramid
        included); the frames complete then are recorded in one write of the store's
        attributes, before their FrameDone events; then the room they freed is fed at once
        (fed frame by frame, a series longer than the pending-tile window went on in tasks
        of one frame, the window's worth of them on the scheduler). Returns the tiles done
        so far."""
        self.deferred = {}
        try:
            for frame, result in zip(task.frames, results, strict=True):
                done = self.group_done(TileGroupTask(frame, task.tiles), result, done)
        finally:
            deferred, self.deferred = self.deferred, None
        if deferred:
            self.store.set_frames({k: (s, True) for k, (s, _) in deferred.items()})
        for frame, (summary, log) in deferred.items():
            self.emit(FrameDone(frame, summary, log))
        self.feed()
        return done

    def group_done(self, task: TileGroupTask, result: TileGroupResult, done: int) -> int:
        """A tile-group task finished: one TileDone per tile, then, after the frame's last tile,
        :meth:`tiles_finished`; returns the tiles done so far."""
        for name, seconds in result.stages.items():
            self.stages[name] += seconds
        frame = task.frame
        state = self.frames[frame]
        total = self.tiles_total
        for tile_result in result.tiles:
            tile = task.tiles[(tile_result.row, tile_result.col)]
            record = tile_result.record
            state.partials[(tile.row, tile.col)] = record.statistics
            state.remaining -= 1
            self.pending_tiles -= 1
            self.rendered += 1
            self.pixels += self.grid.rendered_pixels(tile)
            done += 1
            self.emit(
                TileDone(
                    frame,
                    tile.row,
                    tile.col,
                    tile.window,
                    record.statistics,
                    record.render_s,
                    done,
                    total,
                )
            )
        state.groups -= 1
        if state.groups == 0 and state.remaining == 0:
            self.tiles_finished(frame)
        if self.deferred is None:  # frames_done feeds once for all its frames
            self.feed()
        return done

    def finishing_done(self, frame: int, log: str | None = None) -> None:
        """A pyramid or writer task of ``frame`` finished (``log``: the writer's), or its tiles
        are in: the frame ends once both its tiles and those tasks are, whatever the order in
        which their results reach the client."""
        state = self.frames[frame]
        if log is not None:
            state.log = log
        if state.tiles_in and state.finishing == 0:
            self.frame_done(frame, state.log)

    def frame_done(self, frame: int, log: str) -> None:
        """``frame`` is complete: record it, then emit its FrameDone (both deferred to the end
        of :meth:`frames_done` while it runs)."""
        summary = self.frames.pop(frame).statistics.summary()
        if self.deferred is not None:
            self.deferred[frame] = (summary, log)
            return
        self.store.set_frame(frame, summary, complete=True)
        self.emit(FrameDone(frame, summary, log))

    def completed(self, cancel: threading.Event | None) -> Iterator[tuple[Future, Any]]:
        """(future, result) as tasks finish; raises JobCancelled once ``cancel`` is set."""
        if cancel is None:
            yield from self.pending
            return
        while not self.pending.is_empty():
            if cancel.is_set():
                raise JobCancelled(self.store.path)
            if self.pending.has_ready():
                yield next(self.pending)
            else:
                cancel.wait(CANCEL_POLL_S)

    def run(self, tiles_done: int, tiles_total: int, cancel: threading.Event | None) -> None:
        """Submit and follow every task until all frames are complete (or ``cancel`` is set)."""
        try:
            self.tiles_total = tiles_total
            for frame, state in list(self.frames.items()):
                if state.remaining == 0:  # recorded tiles, unfinished pyramid: from level 1
                    self.submit_pyramid(frame, 1, {})
                    self.tiles_finished(frame)
            self.feed()
            for future, result in self.completed(cancel):
                task = self.tasks.pop(future.key)
                self.live.pop(future.key, None)
                match task:
                    case TileGroupTask():
                        tiles_done = self.group_done(task, result, tiles_done)
                    case FramesTask():
                        tiles_done = self.frames_done(task, result, tiles_done)
                    case PyramidTask():
                        self.stages["pyramid"] += float(result)
                        self.frames[task.frame].finishing -= 1
                        self.finishing_done(task.frame)
                    case FinishTask():
                        self.frames[task.frame].finishing -= 1
                        self.finishing_done(task.frame, result or "")
        except BaseException:
            self.cancel_live()
            raise

    def cancel_live(self) -> None:
        """Cancel every live task, next-to-run first, in small batches: the scheduler's work
        per cancel message grows with the square of its keys."""
        live = list(self.live.values())
        for i in range(0, len(live), CANCEL_BATCH):
            self.client.cancel(live[i : i + CANCEL_BATCH])


def _distinct(futures: Iterable[Future]) -> list[Future]:
    """``futures`` without repeats (a task writes several chunks of a level), in order."""
    return list({id(f): f for f in futures}.values())


def gpu_workers(client: Client) -> bool:
    """Whether any worker of the client's cluster declares a ``GPU`` resource (then "auto"
    tasks span a GPU's block: a CPU worker renders such a task in several of its blocks)."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any("GPU" in (w.get("resources") or {}) for w in workers.values())


def chunks_per_task(tile: int, device: str) -> int:
    """Level-1 chunks (2 x 2 tiles) side by side in a task: enough for the task's tiles to
    span a compiled block's columns (:data:`engine.config.BLOCK_COLS`, of a GPU for ``device``
    "cuda", else of a CPU), so that tiles narrower than a block render as one window."""
    cols = BLOCK_COLS["cuda" if device == "cuda" else "cpu"]
    return max(1, -(-cols // (2 * tile)))


def whole_frames(frames: list[int], threads: int, frame_pixels: int) -> set[int]:
    """The ``frames`` (in the order they are fed) that one task each renders whole, its
    pyramid included: with at least ``tiling.whole-frame-tasks`` of them per worker thread
    and frames of at most ``tiling.whole-frame-pixels`` pixels, all but the last (number of
    frames modulo ``threads``), whose tile groups even out the workers at the end; none while
    the cluster has no worker thread (a batch cluster's jobs still queued). A task per
    frame instead of one per level-1 chunk, plus binning tasks, saves Dask's work per task
    (scheduler, worker event loops, results to the client): on the 2-core build machine, 8
    seed frames (4096 x 4096, tile 1024) of counts went from 40 tasks to 8, and from 1.07-1.12 s
    to 0.92-0.97 s a job (three alternating rounds). Viewers then see a frame's tiles land
    together."""
    per_thread = config.integer("tiling.whole-frame-tasks")
    if per_thread < 1 or threads < 1 or len(frames) < per_thread * threads:
        return set()  # threads < 1: no worker yet (a batch cluster), its size unknown
    if frame_pixels > config.integer("tiling.whole-frame-pixels"):
        return set()
    return set(frames[: len(frames) - len(frames) % threads])


def level2_in_tasks(job: JobSpec, device: str) -> bool:
    """Whether a job's tile-group tasks write pyramid level 2 too: when its tiles are narrow
    enough for a task to hold an even number of level-1 chunks side by side
    (:func:`chunks_per_task`), a task takes two rows of them, whole level-2 chunks (4 x 4
    tiles each), so level 2 needs no tasks of its own, nor reads of level 1 (at tile 128 on
    a CPU: 4 tasks a 1024 x 1024 frame instead of 8 tile tasks and 4 binning tasks)."""
    return len(job.level_shapes) > 2 and chunks_per_task(job.tile, device) % 2 == 0


def render_job(
    client: Client,
    path: str,
    job: JobSpec,
    *,
    overwrite: bool = False,
    device: DeviceChoice = "auto",
    on_event: EventHook | None = None,
    frame_writer: FrameWriter | None = None,
    max_pending_tiles: int | None = None,
    cancel: threading.Event | None = None,
) -> JobDone:
    """Render ``job`` into the store at ``path`` on the client's cluster; resumes a partial one.

    The store is locked for the whole call (:class:`~tiling.lock.StoreLock`): a second writer is
    refused with :class:`~tiling.lock.StoreLockedError`.

    ``device``: "auto" lets every worker take tiles, each rendering on its GPU when it declares a
    ``GPU`` resource and on its CPUs otherwise (mixed clusters use both kinds; float32 pixels of
    a GPU tile may differ from a CPU tile's in the last bits; tasks span a GPU's block when a
    worker declares a GPU, :func:`gpu_workers`); "cuda" sends tiles only to workers
    declaring ``GPU`` (each task requests one); "cpu" renders on CPUs wherever it runs. Events
    go to ``on_event`` in order, on the calling thread.
    Frames are submitted in order while fewer than ``max_pending_tiles`` tiles are pending (a
    frame is never split), which bounds the graph of long series (default: dask config
    ``braggtile.tiling.max-pending-tiles``). Setting ``cancel`` (from any thread) cancels the
    job's pending and queued tasks and raises :class:`JobCancelled`; tiles already written stay
    in the store, so the same call resumes the job.
    """
    if max_pending_tiles is None:
        max_pending_tiles = config.integer("tiling.max-pending-tiles")
    start = time.perf_counter()
    emit = on_event or (lambda event: None)
    with StoreLock(path):
        store, resumed = TileStore.open_or_create(path, job, overwrite=overwrite)
        run = _Run(client, store, device, emit, frame_writer, max_pending_tiles)
        if resumed:
            tiles_done = run.plan(store.records(), store.complete_frames())
        else:  # a new store holds no records (reading them took 6-20 ms)
            tiles_done = run.plan({}, set())
        tiles_total = len(run.order) * job.frames
        emit(JobStarted(path, job.frames, tiles_total, tiles_done))
        run.run(tiles_done, tiles_total, cancel)
    result = JobDone(
        path,
        time.perf_counter() - start,
        run.rendered,
        tiles_done,
        run.pixels,
        stages={name: round(seconds, 6) for name, seconds in run.stages.items()},
    )
    emit(result)
    return result
