"""Peak memory of this process."""

from __future__ import annotations

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
