"""A small tmpfs for full-disk tests, and a way to fill it.

Mounting needs root: without it the tests are skipped, except under ``CI=true``, where they
fail (CI must run them).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILL = "fill.bin"


@contextmanager
def small_disk(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (created) until the block ends."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("full-disk tests mount a tmpfs and need root; CI must run them as root")
        pytest.skip("full-disk tests mount a tmpfs and need root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def free(path: Path) -> int:
    """Bytes free on the disk of ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(disk: Path) -> Path:
    """Fill the disk: one file takes every free byte, or all it can get while others write
    (it stops at the first ENOSPC, not to take what a writer frees later); returns the file
    (remove it to give the space back)."""
    target = disk / FILL
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while (left := free(disk)) > 0:
            os.write(fd, bytes(min(left, 1 << 20)))
    except OSError as err:  # another writer took the rest first
        if err.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return target
