"""Detector response in tiled renders: ``braggtile render --in-process`` with --psf, --noise,
--gain, --readout-noise, --overload. Tiles (with a PSF halo) equal the whole frame bit for bit,
and level 0 keeps the noise-free photons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.response import DetectorResponse, PointSpread, detector_image
from engine.window import Window
from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 300"
RESPONSE = (
    "--psf", "gauss:250", "--noise", "--seed", "7", "--gain", "2.5",
    "--readout-noise", "3", "--overload", "60000",
)  # fmt: skip


def _render(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, "-o", str(out),
        "--in-process", "--no-progress", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_psf_tiles_equal_the_whole_frame_and_photons_are_kept(tmp_path: Path) -> None:
    for name, tile in (("tiled.zarr", "128"), ("whole.zarr", "300"), ("plain.zarr", "128")):
        extra = () if name == "plain.zarr" else RESPONSE
        proc = _render(tmp_path / name, "--tile", tile, *extra)
        assert proc.returncode == 0, proc.stderr
    tiled = StoreReader(str(tmp_path / "tiled.zarr"))
    whole = StoreReader(str(tmp_path / "whole.zarr"))
    plain = StoreReader(str(tmp_path / "plain.zarr"))
    assert tiled.has_detector() and not plain.has_detector()
    adu = tiled.read_detector_frame(0)
    assert adu.dtype == np.uint16 and adu.shape == (300, 300)
    np.testing.assert_array_equal(adu, whole.read_detector_frame(0))
    photons = plain.read_frame(0, 0)
    np.testing.assert_array_equal(tiled.read_frame(0, 0), photons)  # level 0: photons
    np.testing.assert_array_equal(whole.read_frame(0, 0), photons)
    response = DetectorResponse(
        noise=True,
        seed=7,
        gain=2.5,
        readout_noise=3.0,
        overload=60000,
        psf=PointSpread(shape="gauss", fwhm_um=250.0),
    )
    assert tiled.job.response == response
    expected, _ = detector_image(photons, Window(0, 300, 0, 300), response, 0, 300, 100e-6)
    np.testing.assert_array_equal(adu, expected)
    assert not np.array_equal(adu, np.trunc(photons * 2.5 + 40.0).astype(np.uint16))


def test_bad_response_options_name_the_option(tmp_path: Path) -> None:
    for extra, option in (
        (("--psf", "gauss"), "--psf"),
        (("--psf", "airy:30"), "--psf"),
        (("--overload", "0"), "--overload"),
        (("--gain", "-1"), "--gain"),
    ):
        proc = _render(tmp_path / "bad.zarr", *extra)
        assert proc.returncode == 2, proc.stderr
        assert option in proc.stderr and "Traceback" not in proc.stderr
