"""Task functions that reach the scheduler by name, so it imports none of braggtile's modules.

Dask's scheduler unpickles every task it is sent, function included. A function pickled by
reference makes it import the function's module: for :mod:`tiling.worker`, numpy, zarr,
numcodecs, pydantic and the engine's model, which a new scheduler did inside the first job it
ran, before any task started (on the 2-core build machine: 0.67 s of its CPU against 0.05 s for
later jobs; the first 1-frame seed job on preloaded workers took 2.0-2.3x the next ones), and
kept in its memory after.
A :class:`Remote` pickles as the function's module and name only, and imports the module
where it is called, on the worker (already imported there by the plugin or the preload).
:func:`scheduler_memory` is what a client runs on the scheduler to read its memory. This
module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any


class Remote:
    """``func`` (a module-level function) as a picklable callable that names it: unpickling
    imports this module only; the first call imports ``func``'s module."""

    __slots__ = ("module", "name")

    def __init__(self, func: Callable[..., Any]):
        self.module, self.name = func.__module__, func.__qualname__

    def __reduce__(self):
        return (_named, (self.module, self.name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)

    @property
    def __name__(self) -> str:  # dask names tasks after it (dask.utils.funcname)
        return self.name

    def __repr__(self) -> str:
        return f"Remote({self.module}.{self.name})"


def _named(module: str, name: str) -> Remote:
    """A :class:`Remote` of ``module``.``name`` (what unpickling one calls; imports nothing)."""
    remote = Remote.__new__(Remote)
    remote.module, remote.name = module, name
    return remote


def scheduler_memory(reset_peak_unless: int | None = None) -> dict[str, float]:
    """Run by ``client.run_on_scheduler``: the process's pid, resident set size (``rss_mib``)
    and its high-water mark (``peak_mib``), MiB, from ``/proc/self/status`` (0.0 elsewhere).
    ``reset_peak_unless``: a pid; unless the scheduler runs in that process, it then resets
    its high-water mark to its current size (Linux ``clear_refs``), so that a later call
    reads the peak since this one."""
    values = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                name, *rest = line.split()
                if name in values:
                    values[name] = int(rest[0]) / 1024.0  # kB
    except OSError:
        pass
    if reset_peak_unless is not None and reset_peak_unless != os.getpid():
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass
    return {"pid": os.getpid(), "rss_mib": values["VmRSS:"], "peak_mib": values["VmHWM:"]}
