"""Stores at fsspec URLs: workers write their chunks straight to the URL."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster

from engine import render
from engine.resolve import parse_nanobragg
from tiling.cluster import connect, register_plugin
from tiling.graph import render_job
from tiling.job import JobSpec
from tiling.store import StoreReader

ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -misset 10 20 30"


def job(extra: str) -> JobSpec:
    return JobSpec(experiment=parse_nanobragg(shlex.split(f"{ARGS} {extra}")).experiment, tile=32)


def level0(url: str) -> np.ndarray:
    return StoreReader(url).read_frame(0, 0)


def test_a_local_url_store_is_written_by_worker_processes(tmp_path: Path) -> None:
    spec = job("-detpixels_f 80 -detpixels_s 64")
    url = (tmp_path / "sub" / "u.zarr").as_uri()  # file://..., parent folders not made yet
    with connect(workers=2) as client:
        done = render_job(client, url, spec)
        again = render_job(client, url, spec)  # resumes from the URL: nothing left to render
    assert (done.tiles_rendered, again.tiles_rendered, again.tiles_resumed) == (6, 0, 6)
    assert (tmp_path / "sub" / "u.zarr" / "zarr.json").is_file()
    expected = render(spec.experiment).numpy()
    assert np.abs(level0(url) - expected).max() <= 1e-6 * expected.max()


def test_an_in_memory_store_is_written_by_threaded_workers() -> None:
    spec = job("-detpixels 64")
    url = "memory://braggtile-test/m.zarr"
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        register_plugin(client)
        done = render_job(client, url, spec)
    assert done.tiles_rendered == 4
    expected = render(spec.experiment).numpy()
    assert np.abs(level0(url) - expected).max() <= 1e-6 * expected.max()
