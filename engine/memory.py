"""Memory: the peak use of this process, and the limit of a whole-frame render."""

from __future__ import annotations

import os
import resource


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
