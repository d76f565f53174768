"""The viewer's series download links (headless Chromium): the NXmx file and the zip of SMV
frames of the job shown, downloaded by clicking them."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from test_service import serving
from test_viewer import chromium_page, pytestmark, wait_until_shown

ARGS = "-cell 100 100 100 90 90 90 -N 1 -default_F 10 -detpixels 64 -phi 1 -osc 0.5"
__all__ = ["pytestmark"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("viewer-export")
    with serving(data, data / "jobs.db", ("--workers", "1")) as (url, _):
        yield url


def test_series_links_download_the_whole_job(server: str) -> None:
    with chromium_page() as page:
        page.goto(server + "/")
        page.fill("#nanobragg", ARGS)
        page.fill("#frames", "2")
        page.fill("#tile", "32")
        page.click("#submit")
        assert wait_until_shown(page, 300)["status"] == "successful"
        with page.expect_download() as download:
            page.click("#job-links a >> text=nxs")
        assert download.value.suggested_filename.endswith(".nxs")
        with h5py.File(download.value.path(), "r") as f:
            assert f["entry/data/data"].shape == (2, 64, 64)
        with page.expect_download() as download:
            page.click("#job-links a >> text=smv.zip")
        names = zipfile.ZipFile(download.value.path()).namelist()
        assert [name[-9:] for name in names] == ["00001.img", "00002.img"]
