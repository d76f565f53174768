"""Progress events of a render job, delivered in order to an optional callback on the client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.statistics import FrameStatistics, TileStatistics
from engine.window import Window


@dataclass(frozen=True)
class JobStarted:
    """The job's tiles: ``tiles_total`` over all frames, ``tiles_done`` already in the store."""

    store: str
    frames: int
    tiles_total: int
    tiles_done: int


@dataclass(frozen=True)
class TileDone:
    """Tile (row, col) of ``frame`` is in the store; ``tiles_done`` counts all finished tiles."""

    frame: int
    row: int
    col: int
    window: Window
    statistics: TileStatistics
    render_s: float
    tiles_done: int
    tiles_total: int


@dataclass(frozen=True)
class FrameDone:
    """Frame ``frame`` is complete: tiles, statistics, pyramid levels and outputs written.

    ``log``: what the frame writer printed (output files written), "" if none.
    """

    frame: int
    statistics: FrameStatistics
    log: str = ""


@dataclass(frozen=True)
class JobDone:
    """All frames complete. ``pixels_rendered`` counts ROI pixels rendered by this run;
    ``stages``: worker seconds of its tasks by stage (see :data:`tiling.worker.STAGES`), summed
    over the tasks of this run."""

    store: str
    wall_s: float
    tiles_rendered: int
    tiles_resumed: int
    pixels_rendered: int
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def pixels_per_s(self) -> float:
        return self.pixels_rendered / self.wall_s if self.wall_s > 0 else 0.0


Event = JobStarted | TileDone | FrameDone | JobDone
EventHook = Callable[[Event], None]
