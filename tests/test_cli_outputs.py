"""The C output files written by ``braggtile nanobragg`` against C's own files (formats/)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine.cli import main
from engine.smv import read_smv

from reference import case_args, need_file, reference_image, require_reference


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    require_reference()
    folder = tmp_path_factory.mktemp("formats")
    argv = case_args("simple_cubic") + [
        "-seed", "12345", "-noprogress", "-dtype", "float64",
        "-floatfile", str(folder / "float.bin"),
        "-intfile", str(folder / "int.img"),
        "-pgmfile", str(folder / "image.pgm"),
        "-noisefile", str(folder / "noise.img"),
    ]  # fmt: skip
    assert main(argv) == 0
    return folder


def test_intfile_header_and_pixels(outputs):
    ref_header, ref_pixels = read_smv(need_file("formats/simple_cubic_int.img"))
    header, pixels = read_smv(outputs / "int.img")
    assert header == ref_header
    assert np.abs(pixels.astype(int) - ref_pixels.astype(int)).max() <= 1


def test_pgm_header_and_pixels(outputs):
    ref = need_file("formats/simple_cubic.pgm").read_bytes()
    ours = (outputs / "image.pgm").read_bytes()
    head = ref[: ref.index(b"255\n") + 4]
    assert ours[: len(head)] == head
    a = np.frombuffer(ours[len(head) :], dtype=np.uint8).astype(int)
    b = np.frombuffer(ref[len(head) :], dtype=np.uint8).astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_noise_statistics_match_c(outputs):
    log = need_file("formats/simple_cubic_formats.log").read_text()
    c_photons = float(re.search(r"(\d+) photons on noise image", log).group(1))
    header, noise = read_smv(outputs / "noise.img")
    ref_header, _ = read_smv(need_file("formats/simple_cubic_noise_seed12345.img"))
    assert header == ref_header
    expected = reference_image("simple_cubic").astype(np.float64)
    photons = noise.astype(np.float64) - 40.0
    sigma = np.sqrt(expected.sum())
    assert abs(photons.sum() - c_photons) <= 4 * sigma
    residual = photons - expected
    assert abs(residual.var() / expected.mean() - 1.0) <= 0.05


def test_float_file_is_raw_float32(outputs):
    data = np.fromfile(outputs / "float.bin", dtype="<f4")
    assert data.size == 1024 * 1024
    assert np.corrcoef(data, reference_image("simple_cubic").ravel())[0, 1] > 0.999999
