"""One writer per store: an exclusive lock held by the process that renders into it.

The lock is ``flock`` on a file beside the store (``OUT.zarr.lock``): the kernel releases it when
its holder exits or dies, so a crashed render never leaves a store locked, and a second writer,
in another process or the same one, is refused at once with the holder's PID, host and start
time. Stores at non-local URLs (``s3://``...) are not locked: give each job its own URL there.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from engine.errors import UserInputError


class StoreLockedError(UserInputError):
    """Another render is writing the store; exit status 2 (HTTP 409)."""


def lock_path(store: str) -> Path | None:
    """The lock file of the store at ``store`` (a folder or ``file://`` URL); None for others."""
    if store.startswith("file://"):
        store = store.removeprefix("file://")
    elif "://" in store:
        return None
    return Path(os.path.abspath(store.rstrip("/")) + ".lock")


class StoreLock:
    """``with StoreLock(path):`` holds the store's writer lock, or raises StoreLockedError."""

    def __init__(self, store: str):
        self.store = store
        self.path = lock_path(store)
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        if self.path is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace")
                os.close(fd)
                raise StoreLockedError(
                    f"{self.store} is being written by {describe(holder)}"
                ) from None
            # the holder may have released and removed the file between our open and flock
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        assert self.path is not None
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # releases the lock
        self._fd = None


def describe(holder: str) -> str:
    """The lock holder, in words, from the lock file's JSON."""
    try:
        info = json.loads(holder)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"process {info['pid']} on {info['host']} since {since}"
    except (ValueError, KeyError, TypeError):
        return "another process"
