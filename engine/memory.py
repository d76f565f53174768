"""Memory: the peak use of this process, and the limit of a whole-frame render."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import resource

#: glibc's mallopt parameters (malloc.h) and the values :func:`keep_freed_memory` sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 1 << 30


def peak_rss_mib() -> float:
    """Peak resident set size of this process since it started, MiB.

    Reads the kernel's high-water mark of this process image (``VmHWM``): unlike
    ``getrusage().ru_maxrss`` it is not inherited from the parent across fork + exec, so a
    process started by a large one reports its own peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc reuse freed kernel buffers instead of unmapping them (once per process).

    A compiled block allocates its intermediate buffers on every call; those above glibc's
    mmap threshold (at most 32 MiB by default) are mapped fresh and unmapped each time, so each
    call pays a page fault per 4 KiB touched. A 512x512 frame of 1080 samples per pixel (16x512
    blocks, 35 MB buffers) spent 2/3 of its time in the kernel's page faults: 2.66 s warm, 0.89
    s with allocations up to :data:`MMAP_THRESHOLD_BYTES` served from the heap and up to
    :data:`TRIM_THRESHOLD_BYTES` of freed heap kept. Returns whether both settings took
    (False off glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return mmap_ok and trim_ok


#: Bytes per detector pixel of a whole-frame render: the float32 image (4), the int and noise
#: images (2 + 2), the PGM (1) and the ROI mask (1), with a margin; statistics, noise and
#: format conversions work in bounded bands (measured: 395 MiB peak for 4096 x 4096, torch
#: included).
FRAME_BYTES_PER_PIXEL = 12
MEMORY_LIMIT_ENV = "BRAGGTILE_MEMORY_LIMIT"


def available_bytes() -> int:
    """Memory available to new allocations (Linux MemAvailable), bytes; 0 if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_limit() -> tuple[int, str]:
    """The most a whole-frame render may allocate (bytes) and where that limit comes from.

    ``BRAGGTILE_MEMORY_LIMIT`` sets it: bytes, with an optional K/M/G/T suffix (powers of
    1024), or a fraction of the available memory such as ``0.5``. Default: 80% of the
    memory available now (no limit when that is unknown).
    """
    raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    avail = available_bytes()
    if raw:
        try:
            return _parse_size(raw, avail), f"{MEMORY_LIMIT_ENV}={raw}"
        except ValueError:
            from engine.errors import InputError

            raise InputError(
                MEMORY_LIMIT_ENV, f"expects bytes (e.g. 8G) or a fraction (e.g. 0.5), got {raw!r}"
            ) from None
    if avail <= 0:
        return 1 << 62, "no limit (available memory unknown)"
    return int(0.8 * avail), f"80% of the available memory; set {MEMORY_LIMIT_ENV} to change"


def _parse_size(raw: str, avail: int) -> int:
    value = float(raw.rstrip("KkMmGgTtBbIi"))
    suffix = raw[len(raw.rstrip("KkMmGgTtBbIi")) :].upper().rstrip("B").rstrip("I")
    if not suffix and 0 < value <= 1:
        return int(value * avail)
    if value <= 0 or suffix not in ("", "K", "M", "G", "T"):
        raise ValueError(raw)
    return int(value * 1024 ** ("KMGT".index(suffix) + 1 if suffix else 0))


def check_frame_memory(fast: int, slow: int, flag: str = "-detpixels") -> None:
    """Refuse a whole-frame render that would not fit: name the size, the need and the limit."""
    need = fast * slow * FRAME_BYTES_PER_PIXEL
    limit, why = memory_limit()
    if need > limit:
        from engine.errors import InputError

        raise InputError(
            flag,
            f"a {fast}x{slow} frame needs about {need / 2**30:.1f} GiB, more than the "
            f"limit of {limit / 2**30:.1f} GiB ({why})",
        )
