"""Detector response in tiled renders: ``braggtile render --in-process`` with --psf, --noise,
--gain, --readout-noise, --overload. Tiles (with a PSF halo) equal the whole frame bit for bit,
and level 0 keeps the noise-free photons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from engine.noise import poisson_counts
from engine.response import DetectorResponse, PointSpread, detector_image
from engine.window import Window
from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 300"
#: No photon noise and a high gain: a photon difference of 1e-5 (a halo a pixel short) shows.
PSF = (
    "--psf", "gauss:250", "--seed", "7", "--gain", "1e6", "--readout-noise", "3",
    "--overload", "4294967295",
)  # fmt: skip
NOISE = ("--noise", "--seed", "7", "--gain", "2.5", "--overload", "60000")


def render_in_process(out: Path, args: str, *extra: str) -> subprocess.CompletedProcess:
    """``braggtile render --in-process`` of ``args`` into ``out`` in a new process."""
    cmd = [
        sys.executable, "-m", "tiling", "render", "--nanobragg", args, "-o", str(out),
        "--in-process", "--no-progress", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_psf_tiles_equal_the_whole_frame_and_photons_are_kept(tmp_path: Path) -> None:
    renders = {"tiled": ("128", PSF), "whole": ("300", PSF), "noisy": ("128", NOISE)}
    renders["plain"] = ("128", ())
    for name, (tile, extra) in renders.items():
        proc = render_in_process(tmp_path / name, ARGS, "--tile", tile, *extra)
        assert proc.returncode == 0, proc.stderr
    store = {name: StoreReader(str(tmp_path / name)) for name in renders}
    assert not store["plain"].has_detector()
    adu = store["tiled"].read_detector_frame(0)
    assert adu.dtype == np.uint32 and adu.shape == (300, 300)
    np.testing.assert_array_equal(adu, store["whole"].read_detector_frame(0))
    photons = store["plain"].read_frame(0, 0)
    for name in ("tiled", "whole", "noisy"):  # level 0 keeps the noise-free photons
        np.testing.assert_array_equal(store[name].read_frame(0, 0), photons)
    response = DetectorResponse(
        seed=7, gain=1e6, readout_noise=3.0, overload=2**32 - 1,
        psf=PointSpread(shape="gauss", fwhm_um=250.0),
    )  # fmt: skip
    assert store["tiled"].job.response == response
    expected, _ = detector_image(photons, Window(0, 300, 0, 300), response, 0, 300, 100e-6)
    np.testing.assert_array_equal(adu, expected)
    counts = poisson_counts(torch.from_numpy(photons), 7, 0, torch.arange(90000).reshape(300, 300))
    noisy = np.minimum(np.trunc(2.5 * counts.numpy() + 40.0), 60000)
    np.testing.assert_array_equal(store["noisy"].read_detector_frame(0), noisy)


def test_bad_response_options_name_the_option(tmp_path: Path) -> None:
    for extra, option in (
        (("--psf", "gauss"), "--psf"),
        (("--psf", "airy:30"), "--psf"),
        (("--overload", "0"), "--overload"),
        (("--gain", "-1"), "--gain"),
    ):
        proc = render_in_process(tmp_path / "bad.zarr", ARGS, *extra)
        assert proc.returncode == 2, proc.stderr
        assert option in proc.stderr and "Traceback" not in proc.stderr
