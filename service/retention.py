"""Retention of finished jobs: purge those unused for ``--retain-days`` days, and the least
recently used ones while the job folders take more than ``--max-data-bytes``.

Only finished jobs (successful, failed, dismissed) are ever evicted, never accepted (queued) or
running ones. A job is *used* when it finishes and whenever a request reads it (its record,
events, pixels or store); uses are remembered by this process, so after a restart a job's
last use is its finish time. The policy runs at start-up, whenever a job finishes (before its
final event is written) and every :data:`PERIOD_S` seconds. Job folders that have no record
(left by a submission that failed, or written by a render still stopping while its job was
purged) are removed once untouched for :data:`ORPHAN_S` seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from service import db
from service.errors import NotFound
from service.models import FINAL

if TYPE_CHECKING:
    from service.jobs import JobManager

log = logging.getLogger("braggtile.service")
#: Seconds between two runs of the policy besides those after each job.
PERIOD_S = 300.0
#: Seconds a job folder without a record is left alone (a submission may be creating it).
ORPHAN_S = 600.0
DAY_S = 86400.0


@dataclass(frozen=True)
class Finished:
    """A finished job as the policy sees it: when it was last used (unix s) and its bytes."""

    job_id: str
    used: float
    size: int


def choose(
    finished: list[Finished], total: int, max_bytes: int | None, cutoff: float | None
) -> list[str]:
    """Ids of the finished jobs to evict: those last used before ``cutoff`` (unix s), then the
    least recently used ones until the ``total`` bytes of all job folders are <= ``max_bytes``."""
    evict: list[str] = []
    for job in sorted(finished, key=lambda j: (j.used, j.job_id)):
        too_old = cutoff is not None and job.used < cutoff
        too_big = max_bytes is not None and total > max_bytes
        if too_old or too_big:
            evict.append(job.job_id)
            total -= job.size
    return evict


def folder_bytes(path: Path) -> int:
    """Bytes a folder takes on disk (allocated blocks of its files and folders, recursively)."""
    size = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                size += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass  # removed while counting (a chunk's temporary file)
    return size


class Retention:
    """The eviction policy of one service; a no-op when neither limit is set."""

    def __init__(self, manager: JobManager, retain_days: float | None, max_data_bytes: int | None):
        self.manager = manager
        self.retain_days, self.max_bytes = retain_days, max_data_bytes
        self.used: dict[str, float] = {}  # last use of a job by this process, unix s
        self.sizes: dict[str, int] = {}  # bytes of finished jobs (they do not change)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.retain_days is not None or self.max_bytes is not None

    def touch(self, job_id: str) -> None:
        """Note a use of the job (a request read it)."""
        self.used[job_id] = time.time()

    def after_finish(self, job_id: str) -> None:
        """Run the policy as job ``job_id`` finishes (never fails the job)."""
        if self.active:
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the policy must not fail a job
                log.exception("retention after job %s failed", job_id)

    def sweep(self) -> list[str]:
        """Evict what the policy says and remove orphan folders; returns the evicted ids."""
        if not self.active:
            return []
        with self.lock:
            finished, total = self._survey()
            cutoff = None if self.retain_days is None else time.time() - self.retain_days * DAY_S
            evict = choose(finished, total, self.max_bytes, cutoff)
            for job_id in evict:
                try:
                    self.manager.purge(job_id)
                except NotFound:
                    pass  # purged by a request meanwhile
                self.sizes.pop(job_id, None)
                self.used.pop(job_id, None)
            if evict:
                log.info("retention evicted %d job(s): %s", len(evict), evict)
            self._remove_orphans()
            return evict

    def _survey(self) -> tuple[list[Finished], int]:
        """The finished jobs, and the bytes of every job's folder."""
        with self.manager.engine.connect() as conn:
            rows = conn.execute(sa.select(db.jobs.c.id, db.jobs.c.status, db.jobs.c.finished))
            rows = rows.all()
        finished, total = [], 0
        for job_id, status, ended in rows:
            folder = self.manager.settings.job_folder(job_id)
            if status not in FINAL:
                total += folder_bytes(folder) if self.max_bytes is not None else 0
                continue
            size = self.sizes.get(job_id)
            if size is None:
                size = self.sizes[job_id] = folder_bytes(folder)
            ended_at = db.aware(ended).timestamp() if ended is not None else 0.0
            finished.append(Finished(job_id, max(ended_at, self.used.get(job_id, 0.0)), size))
            total += size
        return finished, total

    def _remove_orphans(self) -> None:
        """Remove job folders without a record, untouched for :data:`ORPHAN_S` seconds."""
        jobs = self.manager.settings.data / "jobs"
        if not jobs.is_dir():
            return
        with self.manager.engine.connect() as conn:
            known = set(conn.execute(sa.select(db.jobs.c.id)).scalars())
        for folder in jobs.iterdir():
            if folder.name in known or not folder.is_dir():
                continue
            if time.time() - folder.stat().st_mtime > ORPHAN_S:
                log.info("removing job folder without a record: %s", folder)
                shutil.rmtree(folder, ignore_errors=True)

    def start(self) -> None:
        """Run the policy now, then every :data:`PERIOD_S` seconds in a thread of its own."""
        if not self.active:
            return
        self.sweep()
        self.thread = threading.Thread(target=self._loop, name="bt-retention", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(PERIOD_S):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - try again next period
                log.exception("retention sweep failed")

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
