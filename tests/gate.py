"""The test side of the tile gate (tiling/gate.py): hold a tile, wait until a worker holds it,
release it. Processes started with :meth:`TileGate.env` (the service, its workers) obey it."""

from __future__ import annotations

import time
from pathlib import Path

from tiling.gate import GATE_ENV, HOLD_LIMIT_S, POLL_S, tile_name

Tile = tuple[int, int, int]  # (frame, row, col)


def wait_until(ready, timeout: float, what: str, check=None) -> None:
    """Block until ``ready()`` (a hook the system under test writes: a gate file, ``serve
    --ready-file``); ``check()`` runs each round and may fail at once; fails after ``timeout``
    s with "``what`` not so in ``timeout`` s" (a bounded poll, every POLL_S)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if check is not None:
            check()
        assert time.monotonic() < deadline, f"{what} not so in {timeout:.0f} s"
        time.sleep(POLL_S)


def wait_for_file(path: Path, process, timeout: float, log: Path | None = None) -> None:
    """Block until ``path`` exists; fails at once if ``process`` exits first."""

    def alive() -> None:
        if process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}) before {path.name}: "
                                 + (log.read_text()[-3000:] if log else ""))  # fmt: skip

    wait_until(path.exists, timeout, f"{path.name} written", alive)


def wait_for_removal(path: Path, timeout: float) -> None:
    """Block until ``path`` is gone (e.g. ``serve --ready-file`` once the service drains)."""
    wait_until(lambda: not path.exists(), timeout, f"{path.name} removed")


class TileGate:
    """A gate folder: tiles held with :meth:`hold` wait in their worker until :meth:`release`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """The environment variable that makes processes started with it obey this gate."""
        return {GATE_ENV: str(self.folder)}

    def _file(self, state: str, tile: Tile) -> Path:
        return self.folder / tile_name(state, *tile)

    def hold(self, *tiles: Tile) -> None:
        """Hold ``tiles`` (each (frame, row, col)) in whichever job renders them next."""
        for tile in tiles:
            for state in ("held", "release", "passed"):
                self._file(state, tile).unlink(missing_ok=True)
            self._file("hold", tile).touch()

    def wait(self, state: str, tile: Tile, timeout: float = HOLD_LIMIT_S) -> None:
        """Block until a worker has put ``tile`` in ``state`` ("held" or "passed"); fails after
        ``timeout`` s (a bounded poll of the gate folder)."""
        wait_until(self._file(state, tile).exists, timeout, f"tile {tile} {state}")

    def holder(self, tile: Tile) -> int:
        """The process id of the worker holding ``tile`` (after :meth:`wait` "held")."""
        return int(self._file("held", tile).read_text())

    def release(self, *tiles: Tile) -> None:
        """Let held ``tiles`` render; later jobs pass them freely."""
        for tile in tiles:
            self._file("hold", tile).unlink(missing_ok=True)
            self._file("release", tile).touch()

    def clear(self) -> None:
        """Hold nothing any more (without releasing what a dead worker held)."""
        for path in self.folder.glob("hold-*"):
            path.unlink(missing_ok=True)
