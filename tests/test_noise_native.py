"""The compiled noise draws (engine/noise.c) against the numpy and torch paths: the same
uniforms, counts and ADU, bit for bit, on every branch (SIMD lanes and their scalar tails,
small and large means, gain, read-out noise, ROI masks, uint16 and uint32)."""

from __future__ import annotations

import os

import dask.config
import numpy as np
import pytest
import torch

from engine import native, noise, noise_native
from engine.response import DetectorResponse, detector_image
from engine.window import Window

pytestmark = pytest.mark.skipif(
    native.c_compiler() is None and not os.environ.get("CI"),
    reason="no C compiler: the noise draws use numpy",
)
NUMPY = {"braggtile.noise.native": "off"}


@pytest.fixture(scope="module")
def lib():
    library = noise_native.library()
    assert library is not None, "the noise library did not build"
    assert os.path.exists(noise_native.library_path())
    return library


def test_the_setting_off_means_numpy(lib) -> None:
    with dask.config.set(NUMPY):
        assert noise_native.library() is None
    assert noise_native.library() is lib


@pytest.mark.parametrize("n", [1, 3, 4, 7, 8, 9, 17, 1000])
def test_uniforms_match_numpy_on_lanes_and_tails(lib, n: int) -> None:
    rng = np.random.default_rng(n)
    index = np.concatenate([[0, 2**32 - 1, 2**32, 2**62 + 5], rng.integers(0, 2**63 - 1, n)])
    index = index[:n].astype(np.int64)
    for seed, frame, draw in ((0, 0, 0), (2**63 - 1, 2**32 - 1, 63), (2**40 + 123, 7, 3)):
        u, v = noise_native.uniforms(lib, index, seed, frame, draw, pair=True)
        with dask.config.set(NUMPY):
            u0, v0 = noise._uniforms_numpy(index, seed, frame, draw, pair=True)
        np.testing.assert_array_equal(u, u0)
        np.testing.assert_array_equal(v, v0)
        u1, none = noise_native.uniforms(lib, index, seed, frame, draw, pair=False)
        assert none is None
        np.testing.assert_array_equal(u1, u0)


@pytest.fixture(scope="module")
def means() -> tuple[np.ndarray, np.ndarray]:
    """Means on every branch (0, negative, tiny, < 12, about 12, PTRS, Gaussian), shuffled,
    at pixel indices with high words."""
    rng = np.random.default_rng(3)
    lam = np.concatenate(
        [
            rng.exponential(0.02, 100_000),
            rng.uniform(0.0, 12.0, 100_000),
            rng.uniform(11.9, 12.1, 1000),
            rng.uniform(12.0, 5e3, 5000),
            rng.uniform(1e6, 2e6, 50),
            -rng.uniform(0.0, 1.0, 50),
            np.zeros(50),
        ]
    )
    order = rng.permutation(lam.size)
    return lam[order], order.astype(np.int64) * 7919 + 2**33


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_match_numpy_and_torch(lib, means, dtype) -> None:
    lam, index = means
    mean, idx = torch.from_numpy(lam.astype(dtype)), torch.from_numpy(index)
    native = noise.poisson_counts(mean, 2**62 + 9, 11, idx).numpy()
    with dask.config.set(NUMPY):
        numpy_counts = noise.poisson_counts(mean, 2**62 + 9, 11, idx).numpy()
    generic = noise._counts(mean, idx, 2**62 + 9, 11).numpy()  # the CUDA path's operations
    np.testing.assert_array_equal(native, numpy_counts)
    np.testing.assert_array_equal(native, generic)
    assert native[lam <= 0].max() == 0.0
    assert 0.9 < native[lam > 0].sum() / lam[lam > 0].astype(dtype).sum() < 1.1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_means_are_refused(lib, bad: float) -> None:
    lam = np.full(20, 0.5)
    lam[13] = bad
    with pytest.raises(ValueError, match="finite"):
        noise.poisson_counts(torch.from_numpy(lam), 1, 0, torch.arange(20))


def test_negative_pixel_index_is_refused(lib) -> None:
    with pytest.raises(ValueError, match="pixel_index"):
        noise.poisson_counts(torch.ones(4), 1, 0, torch.tensor([0, 1, -2, 3]))


@pytest.mark.parametrize(
    "options",
    [
        {"noise": True},
        {"noise": True, "gain": 2.5, "readout_noise": 3.0, "adc_offset": 10.0},
        {"noise": True, "gain": 40.0, "overload": 20000},
        {"noise": True, "gain": 3.0, "overload": 200000},  # uint32
        {"noise": False, "gain": 0.7, "readout_noise": 1.5},
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_detector_image_matches_numpy(lib, options: dict, masked: bool) -> None:
    rng = np.random.default_rng(5)
    photons = np.concatenate(
        [rng.exponential(0.05, 61 * 37), rng.uniform(0, 3000, 10), [1e5, 2e6, 0.0]]
    )
    photons = rng.permutation(photons)[: 61 * 37].reshape(61, 37).astype(np.float32)
    window = Window(100, 161, 200, 237)
    inside = rng.uniform(size=photons.shape) > 0.2 if masked else None
    response = DetectorResponse(seed=77, **options)
    adu, over = detector_image(photons, window, response, 4, 1000, 1e-4, inside=inside)
    with dask.config.set(NUMPY):
        adu0, over0 = detector_image(photons, window, response, 4, 1000, 1e-4, inside=inside)
    assert adu.dtype == adu0.dtype == response.dtype
    np.testing.assert_array_equal(adu, adu0)
    assert over == over0
    if masked:
        assert adu[~inside].max() == 0
    if response.overload == 20000:
        assert over > 0 and adu.max() == 20000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("psf", [None, "gauss:150"])
def test_one_pass_noise_matches_numpy_on_wide_cropped_windows(lib, dtype, psf) -> None:
    """Counts and ADU in one pass: rows wider than a piece (1024), widths that leave lane and
    vector tails (interleaved vectors of 32 pixels), a crop inside its window (rows a stride
    apart), means >= 12 drawn apart, a PSF's float64 means."""
    rng = np.random.default_rng(9)
    photons = rng.exponential(0.3, (9, 2133))
    photons[rng.uniform(size=photons.shape) > 0.995] = 400.0
    photons = photons.astype(dtype)
    window = Window(40, 49, 7, 2140)
    crop = Window(42, 47, 9, 2135)
    inside = rng.uniform(size=crop.shape) > 0.1
    response = DetectorResponse(seed=5, noise=True, psf=psf, gain=1.7, overload=300)
    args = (photons, window, response, 3, 4096, 1e-4, crop, inside)
    adu, over = detector_image(*args)
    with dask.config.set(NUMPY):
        adu0, over0 = detector_image(*args)
    assert adu.shape == crop.shape and over == over0 > 0
    np.testing.assert_array_equal(adu, adu0)


def test_one_pass_noise_refuses_non_finite_means(lib) -> None:
    photons = np.full((3, 40), 0.5, dtype=np.float32)
    photons[2, 33] = np.nan
    response = DetectorResponse(seed=1, noise=True)
    with pytest.raises(ValueError, match="finite"):
        detector_image(photons, Window(0, 3, 0, 40), response, 0, 40, 1e-4)
