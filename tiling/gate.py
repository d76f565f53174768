"""A test-only gate in the tile protocol: hold a chosen tile until the test releases it.

Off unless the environment variable :data:`GATE_ENV` names a folder (tests set it for the
service and its worker processes; it is inherited by every process they start). Then, before
rendering tile (frame, row, col), a worker looks for ``<folder>/hold-F-R-C``; if the test
made it, the worker creates ``held-F-R-C`` (holding its process id) and waits until
``release-F-R-C`` exists (raising :class:`GateTimeout` after :data:`HOLD_LIMIT_S`, so a
forgotten gate fails its task, never hangs it). After a released tile is written, the worker
creates ``passed-F-R-C``. Files, not sockets, so that it works across the test, the service
subprocess and its workers. Without the variable a tile costs one environment look-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: The environment variable naming the gate folder.
GATE_ENV = "BRAGGTILE_TEST_GATE"
#: The longest a held tile waits for its release, s.
HOLD_LIMIT_S = 120.0
#: How often a held tile looks for its release, s.
POLL_S = 0.005


class GateTimeout(RuntimeError):
    """A held tile was not released within :data:`HOLD_LIMIT_S`."""


def tile_name(state: str, frame: int, row: int, col: int) -> str:
    """The gate file of tile (frame, row, col) in ``state`` (hold, held, release, passed)."""
    return f"{state}-{frame}-{row}-{col}"


def _folder() -> Path | None:
    folder = os.environ.get(GATE_ENV)
    return Path(folder) if folder else None


def before_tile(frame: int, row: int, col: int) -> None:
    """Wait here while the test holds this tile (see the module docstring); else return."""
    folder = _folder()
    if folder is None or not (folder / tile_name("hold", frame, row, col)).exists():
        return
    (folder / tile_name("held", frame, row, col)).write_text(str(os.getpid()))
    release = folder / tile_name("release", frame, row, col)
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not release.exists():
        if time.monotonic() > deadline:
            raise GateTimeout(
                f"tile {frame}/{row}/{col} held by the test gate for {HOLD_LIMIT_S:.0f} s"
            )
        time.sleep(POLL_S)


def after_tile(frame: int, row: int, col: int) -> None:
    """Mark a held tile written (``passed-F-R-C``), once the test has released it."""
    folder = _folder()
    if folder is not None and (folder / tile_name("release", frame, row, col)).exists():
        (folder / tile_name("passed", frame, row, col)).touch()
