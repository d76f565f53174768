"""Settings of ``braggtile serve``: where data lives, which cluster renders, and input limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tiling.warm import Warm


class Limits(BaseModel):
    """Largest job the service accepts (issue 13 makes these configurable per deployment)."""

    max_frames: int = Field(1000, ge=1, description="frames per job")
    max_pixels: int = Field(1 << 26, ge=1, description="pixels per frame (slow x fast)")
    min_tile: int = Field(16, ge=1, description="smallest tile side, pixels")
    max_tile: int = Field(4096, ge=1, description="largest tile side, pixels")
    max_input_bytes: int = Field(64 << 20, ge=0, description="all inline input files, bytes")
    max_inputs: int = Field(64, ge=0, description="inline input files per job")
    max_body_bytes: int = Field(
        128 << 20,
        ge=1024,
        description="request body, bytes (JSON escaping can double the inputs' size)",
    )
    max_steps_per_pixel: int = Field(
        1_000_000,
        ge=1,
        description="inner steps per pixel: sources x mosaic domains x phi steps x "
        "oversample^2 x sensor layers",
    )


class Settings(BaseModel):
    """One service instance: data folder, database URL, cluster and concurrency."""

    data: Path = Field(Path("braggtile-data"), description="job folders and the default database")
    database: str | None = Field(None, description="SQLAlchemy URL (default: SQLite under data)")
    workers: int | None = Field(None, ge=1, description="embedded LocalCluster worker processes")
    scheduler: str | None = Field(None, description="address of an existing Dask scheduler")
    cluster: Literal["slurm", "pbs", "sge", "lsf", "local"] | None = Field(
        None, description="batch system whose jobs run the workers (dask-jobqueue)"
    )
    jobs: tuple[int, int] = Field((0, 4), description="--cluster: fewest and most batch jobs")
    torch_threads: int | None = Field(None, ge=1, description="torch threads per worker")
    warm: Warm = "compile"
    max_running_jobs: int = Field(4, ge=1, description="jobs rendering at once; the rest queue")
    limits: Limits = Field(default_factory=Limits)
    retain_days: float | None = Field(
        None, ge=0, description="purge finished jobs unused for this many days"
    )
    max_data_bytes: int | None = Field(
        None, ge=0, description="purge least recently used finished jobs above this many bytes"
    )
    token: str | None = Field(
        None, min_length=1, repr=False, description="bearer token every /v1 request must carry"
    )

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{(self.data / 'braggtile.db').resolve()}"

    def job_folder(self, job_id: str) -> Path:
        """Folder of one job: its input files and its zarr store."""
        return (self.data / "jobs" / job_id).resolve()
