"""Detector response (engine.response): gain, offset, overload, read-out and photon noise, PSF.

Expected values are computed here from the stated response, never by the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from engine.response import (
    DetectorResponse,
    PointSpread,
    detector_image,
    halo_window,
    psf_radius,
)
from engine.window import Window

PIXEL_M = 100e-6  # 100 um pixels


def _image(photons: np.ndarray, response: DetectorResponse, frame: int = 0, **kw):
    rows, cols = photons.shape
    return detector_image(photons, Window(0, rows, 0, cols), response, frame, cols, PIXEL_M, **kw)


def test_gain_offset_overload_and_truncation_exactly() -> None:
    photons = np.array([[0.0, 1.0, 2.6, 10.0], [100.0, 1000.0, 0.25, 3.0]])
    response = DetectorResponse(gain=2.5, adc_offset=10.0, overload=300)
    adu, overloads = _image(photons, response)
    expected = np.array([[10, 12, 16, 35], [260, 300, 10, 17]])  # trunc(2.5 p + 10), <= 300
    assert adu.dtype == np.uint16
    np.testing.assert_array_equal(adu, expected)
    assert overloads == 1  # 2510 ADU only


def test_large_overload_needs_32_bits_and_outside_roi_is_zero() -> None:
    photons = np.full((2, 3), 40000.0)
    inside = np.array([[True, False, True], [True, True, True]])
    response = DetectorResponse(gain=2.0, overload=100_000)
    adu, overloads = _image(photons, response, inside=inside)
    assert adu.dtype == np.uint32
    expected = np.where(inside, 80040, 0)
    np.testing.assert_array_equal(adu, expected)
    assert overloads == 0


def test_readout_noise_has_the_asked_rms() -> None:
    photons = np.zeros((300, 300))
    response = DetectorResponse(readout_noise=7.0, adc_offset=1000.0, overload=65535)
    adu, _ = _image(photons, response)
    values = adu.astype(np.float64)
    n = values.size
    # truncation lowers the mean by ~0.5 ADU and adds 1/12 ADU^2 of variance
    assert abs(values.mean() - 999.5) < 5 * 7.0 / math.sqrt(n) + 0.01
    assert abs(values.var() - (49.0 + 1 / 12)) < 5 * 49.0 * math.sqrt(2.0 / n)
    again, _ = _image(photons, response.model_copy(update={"seed": 1}))
    assert not np.array_equal(again, adu)  # the seed chooses the stream
    other_frame, _ = _image(photons, response, frame=1)
    assert not np.array_equal(other_frame, adu)  # and so does the frame


def test_poisson_noise_variance_scales_with_gain() -> None:
    mean, gain = 20.0, 3.0
    photons = np.full((300, 300), mean)
    response = DetectorResponse(noise=True, gain=gain, adc_offset=0.0, seed=5)
    adu, _ = _image(photons, response)
    values = adu.astype(np.float64)
    n = values.size
    assert abs(values.mean() - gain * mean) < 5 * gain * math.sqrt(mean / n)
    # the variance of gain * Poisson(mean); the sample variance's sd is ~ var * sqrt(2/n)
    assert abs(values.var() - gain * gain * mean) < 6 * gain * gain * mean * math.sqrt(2.0 / n)


def test_noise_is_keyed_by_detector_pixel_not_by_window() -> None:
    photons = np.random.default_rng(0).uniform(0, 50, (40, 60))
    response = DetectorResponse(noise=True, readout_noise=3.0, seed=9)
    whole, _ = detector_image(photons, Window(0, 40, 0, 60), response, 2, 60, PIXEL_M)
    part = Window(10, 30, 25, 60)
    tile, _ = detector_image(photons[10:30, 25:60], part, response, 2, 60, PIXEL_M)
    np.testing.assert_array_equal(tile, whole[10:30, 25:60])
    other_frame, _ = detector_image(photons, Window(0, 40, 0, 60), response, 3, 60, PIXEL_M)
    assert not np.array_equal(other_frame, whole)


@pytest.mark.parametrize("fwhm_um", [150.0, 300.0])
def test_gaussian_psf_spreads_a_pixel_with_the_asked_fwhm(fwhm_um: float) -> None:
    photons = np.zeros((81, 81))
    photons[40, 40] = 1e6
    response = DetectorResponse(psf=PointSpread(shape="gauss", fwhm_um=fwhm_um), adc_offset=0)
    from engine.response import psf_kernel, spread

    blurred = spread(photons, psf_kernel(response.psf, PIXEL_M))
    assert blurred.sum() == pytest.approx(1e6, rel=1e-12)  # photons conserved
    r = np.arange(81) - 40.0
    variance = (blurred.sum(axis=0) * r * r).sum() / blurred.sum()
    sigma_px = fwhm_um / 100.0 / 2.3548
    assert math.sqrt(variance) == pytest.approx(sigma_px, rel=0.02)
    adu, _ = _image(photons, response.model_copy(update={"overload": 2**32 - 1}))
    assert int(adu.astype(np.int64).sum()) == pytest.approx(1e6, rel=1e-3)  # trunc per pixel


def test_fiber_psf_is_wider_in_its_tails_than_a_gaussian() -> None:
    photons = np.zeros((81, 81))
    photons[40, 40] = 1.0
    from engine.response import psf_kernel, spread

    fiber = spread(photons, psf_kernel(PointSpread(shape="fiber", fwhm_um=200.0), PIXEL_M))
    gauss = spread(photons, psf_kernel(PointSpread(shape="gauss", fwhm_um=200.0), PIXEL_M))
    assert fiber.sum() == pytest.approx(1.0, rel=1e-12)
    # equal half maximum along a row: (1 + r^2/g^2)^-1.5 = 1/2 at r = FWHM/2 = 1 pixel
    g = 2.0 / (2.0 * math.sqrt(2.0 ** (2 / 3) - 1.0))
    assert fiber[40, 41] / fiber[40, 40] == pytest.approx((1 + 1 / g**2) ** -1.5, rel=1e-12)
    assert fiber[40, 50] > 100 * gauss[40, 50]


def test_psf_tile_with_halo_equals_the_whole_frame() -> None:
    photons = np.random.default_rng(1).uniform(0, 100, (64, 64))
    psf = PointSpread(shape="gauss", fwhm_um=250.0)
    # a high gain without photon noise: a halo a pixel short (1e-7 of the photons) shows
    response = DetectorResponse(psf=psf, gain=1e6, overload=2**32 - 1)
    full = Window(0, 64, 0, 64)
    whole, _ = detector_image(photons, full, response, 0, 64, PIXEL_M)
    radius = psf_radius(response, PIXEL_M)
    assert radius == math.ceil(2.5 / 2.3548 * math.sqrt(2 * math.log(1e6))) - 1  # 1e-6 cut
    for tile in (Window(0, 16, 0, 16), Window(16, 32, 48, 64), Window(20, 40, 20, 40)):
        big = halo_window(tile, radius, 64, 64)
        part = photons[big.slow0 : big.slow1, big.fast0 : big.fast1]
        adu, _ = detector_image(part, big, response, 0, 64, PIXEL_M, crop=tile)
        np.testing.assert_array_equal(adu, whole[tile.slow0 : tile.slow1, tile.fast0 : tile.fast1])


def test_bad_response_names_the_field() -> None:
    with pytest.raises(ValidationError, match="gain"):
        DetectorResponse(gain=0)
    with pytest.raises(ValueError, match="gauss:FWHM_UM"):
        PointSpread.parse("gauss")
    with pytest.raises(ValidationError, match="shape"):
        PointSpread.parse("airy:10")


CELL = "-cell 100 100 100 90 90 90 -default_F 100 -N 5 -lambda 1 -distance 100 -detpixels 64"


def _nanobragg(folder, name: str, *extra: str) -> np.ndarray:
    from engine.cli import main
    from engine.smv import read_smv

    argv = CELL.split() + ["-seed", "5", "-noprogress", "-nopgm", "-floatfile", str(folder / "f")]
    argv += ["-intfile", str(folder / "i.img"), "-noisefile", str(folder / name), *extra]
    assert main(argv) == 0
    return read_smv(folder / name)[1].astype(np.int64)


def test_nanobragg_noise_image_gain_offset_overload(tmp_path) -> None:
    plain = _nanobragg(tmp_path, "plain.img")  # C's -noisefile: counts + 40
    counts = plain - 40
    assert counts.max() > 20  # some Bragg spots
    adu = _nanobragg(tmp_path, "g.img", "-gain", "2.5", "-adc", "10", "-overload", "300")
    np.testing.assert_array_equal(adu, np.minimum(np.floor(2.5 * counts + 10), 300))


def test_nanobragg_psf_conserves_photons_and_bad_psf_is_refused(tmp_path, capsys) -> None:
    from engine.cli import main

    blurred = _nanobragg(tmp_path, "p.img", "-psf", "gauss:200", "-adc", "0", "-overload", "65535")
    plain = _nanobragg(tmp_path, "plain.img") - 40
    assert abs(blurred.sum() - plain.sum()) < 6 * np.sqrt(2 * plain.sum())
    assert blurred.max() < plain.max()  # spread out
    assert main(CELL.split() + ["-psf", "airy:3", "-noprogress"]) == 2
    assert "-psf" in capsys.readouterr().err
