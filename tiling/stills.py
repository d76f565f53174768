"""Whole small frames per task: a long series of small frames (stills) as a few thousand tasks.

A frame whose tiles all lie in one level-1 pyramid chunk (at most 2 x 2 tiles) renders in one
step: its tiles, that chunk, then the rest of its pyramid (each level one chunk), in memory.
A task of :func:`render_frames` does that for several such frames in turn, so a 10,000-frame
job of a 512 x 512 detector is a graph of hundreds of tasks instead of 10,000, and the client
still hears of every frame (one :class:`~tiling.worker.TileGroupResult` per frame).
"""

from __future__ import annotations

import math

from engine import config
from tiling.worker import TileGroupResult, current_plugin, render_tiles


def render_frames(
    path: str,
    fingerprint: str,
    frames: list[int],
    tiles: list[tuple[int, int]],
    device: str,
    level1: tuple[int, int] | None,
) -> list[TileGroupResult]:
    """Render ``tiles`` ((row, col) each: all of a frame's) of each of ``frames``, write
    level-1 chunk ``level1`` (None: no pyramid) from them, then its pyramid's other levels
    (one chunk each), all binned in memory. Returns each frame's result, in ``frames``
    order."""
    chunks = None if level1 is None else [level1]
    below = None
    if level1 is not None:
        shapes = current_plugin().store(path, fingerprint).job.level_shapes
        below = [[(0, 0)] for _ in shapes[2:]]
    return [render_tiles(path, fingerprint, f, tiles, device, chunks, below) for f in frames]


def frames_per_task(frame_pixels: int, frames: int, threads: int) -> int:
    """Frames a task renders: frames of up to ``tiling.frame-group-pixels`` pixels in all, at
    most ``tiling.frame-group-max`` of them, and few enough that every one of the cluster's
    ``threads`` gets two tasks or more; 0 (a task per frame's tile group, then its pyramid)
    if ``tiling.frame-group-max`` is 0."""
    limit = config.integer("tiling.frame-group-max")
    if limit < 1:
        return 0
    by_pixels = config.integer("tiling.frame-group-pixels") // max(1, frame_pixels)
    spread = math.ceil(frames / max(1, 2 * threads))
    return max(1, min(by_pixels, limit, spread))
