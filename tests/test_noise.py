"""Counter-based Poisson noise on braggtile's own image: Poisson statistics, seeds, tiling
invariance, and statistics against C's -noisefile for the same case (simple_cubic, -seed 12345).

C's noise cannot be matched pixel for pixel (one sequential random stream over the frame), so
the comparison with C is statistical: both images are Poisson draws about the same means.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from engine.cli import render_frame
from engine.noise import noise_image, philox4x32_10, poisson_counts, uniform_pair
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from engine.smv import read_smv

from reference import FLOORS, case_args, need_file, parity, reference_image

SIDE = 1024
SEED = 12345
ADC = 40.0


@pytest.fixture(scope="module")
def float_image() -> torch.Tensor:
    """braggtile's float image of simple_cubic (photons/pixel), checked against C's."""
    setup = prepare_frame(parse_nanobragg(case_args("simple_cubic")).experiment, torch.float32)
    image = render_frame(setup, progress=False)
    assert image.shape == (SIDE, SIDE)
    assert parity(image, reference_image("simple_cubic")).meets(*FLOORS["float32"])
    return torch.from_numpy(image)


@pytest.fixture(scope="module")
def full_frame(float_image: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    return noise_image(float_image, SEED, 0, 0, 0, SIDE)


@pytest.fixture(scope="module")
def c_noise() -> np.ndarray:
    """Photons of C's -noisefile (ADC offset removed), float64."""
    _, adu = read_smv(need_file("formats/simple_cubic_noise_seed12345.img"))
    return adu.astype(np.float64) - ADC


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter: tuple, key: tuple, expected: tuple) -> None:
    words = [torch.tensor([c], dtype=torch.int64) for c in counter]
    assert tuple(int(w) for w in philox4x32_10(*words, *key)) == expected


def test_cpu_uniforms_are_the_documented_function_of_the_philox_words() -> None:
    """The CPU path (numpy words, in pieces) gives u, v = 52 bits of words (0, 1) and (2, 3)."""
    high = torch.tensor([2**31, 2**32 - 1, 2**32, 3 * 2**32 + 17, 2**62 + 5])
    index = torch.cat([high, torch.arange(0, 5_000_000, 97)])  # more than one piece
    seed, frame, draw = 2**40 + 123, 7, 3
    u, v = uniform_pair(index.reshape(-1, 1), seed, frame, draw)
    w = philox4x32_10(index & 0xFFFFFFFF, index >> 32, frame, draw, seed & 0xFFFFFFFF, seed >> 32)

    def unit(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
        return ((((hi >> 6) << 26) | (lo >> 6)).to(torch.float64) + 0.5) * 2.0**-52

    assert u.shape == v.shape == (index.numel(), 1)
    assert torch.equal(u.reshape(-1), unit(w[0], w[1]))
    assert torch.equal(v.reshape(-1), unit(w[2], w[3]))


def test_same_seed_same_noise_from_ragged_windows(
    float_image: torch.Tensor, full_frame: tuple[torch.Tensor, float, int]
) -> None:
    whole, photons, overloads = full_frame
    assert whole.dtype == torch.uint16 and whole.shape == (SIDE, SIDE)
    again, again_photons, _ = noise_image(float_image.clone(), SEED, 0, 0, 0, SIDE)
    assert torch.equal(again, whole) and again_photons == photons  # reproducible from the seed
    rows, cols = [384, 385, 517, 600, 601, 640], [0, 1, 513, 514, 1000, SIDE]
    tiled = torch.zeros(SIDE, SIDE, dtype=torch.int32)
    tiled_photons = 0.0
    for s0, s1 in zip(rows, rows[1:], strict=False):
        for f0, f1 in zip(cols, cols[1:], strict=False):
            window = float_image[s0:s1, f0:f1].to(torch.float64)
            adu, ph, ov = noise_image(window, SEED, 0, s0, f0, SIDE)
            tiled[s0:s1, f0:f1] = adu.to(torch.int32)
            tiled_photons += ph
            assert ov == 0
    band = slice(rows[0], rows[-1])
    assert torch.equal(tiled[band], whole[band].to(torch.int32))
    assert tiled_photons == float((whole[band].to(torch.float64) - ADC).sum())
    assert overloads == 0 and photons == float((whole.to(torch.float64) - ADC).sum())


def test_seed_and_frame_change_the_noise() -> None:
    block = torch.full((64, 64), 5.0)
    first, _, _ = noise_image(block, SEED, 0, 0, 0, SIDE)
    for seed, frame in ((SEED + 1, 0), (SEED, 1)):
        other, _, _ = noise_image(block, seed, frame, 0, 0, SIDE)
        assert (other != first).float().mean() > 0.7  # 1 - sum(p_k^2) = 0.87 at mean 5


def test_noise_is_poisson_about_the_float_image(
    float_image: torch.Tensor, full_frame: tuple[torch.Tensor, float, int]
) -> None:
    lam = float_image.numpy().astype(np.float64)
    adu, photons, overloads = full_frame
    counts = adu.numpy().astype(np.float64) - ADC
    assert overloads == 0 and counts.min() >= 0 and np.all(counts == np.round(counts))
    assert photons == counts.sum()
    assert abs(photons - lam.sum()) < 5.0 * math.sqrt(lam.sum())
    bright = lam >= 20.0  # ~1e4 pixels: standardised residuals are ~N(0, 1)
    z = (counts[bright] - lam[bright]) / np.sqrt(lam[bright])
    assert bright.sum() > 5000
    assert abs(z.mean()) < 5.0 / math.sqrt(z.size)
    assert abs(z.var() - 1.0) < 5.0 * math.sqrt(2.0 / z.size)
    dim = lam < 1.0  # ~9e5 pixels: P(0) = exp(-lambda)
    p0 = np.exp(-lam[dim])
    zeros = float((counts[dim] == 0).sum())
    assert abs(zeros - p0.sum()) < 5.0 * math.sqrt((p0 * (1 - p0)).sum())
    residual = counts - lam
    assert abs(residual.var() / lam.mean() - 1.0) < 0.05


def test_statistics_match_c_noise_image(
    float_image: torch.Tensor, full_frame: tuple[torch.Tensor, float, int], c_noise: np.ndarray
) -> None:
    """Ours and C's are independent Poisson draws about the same means: their difference has
    mean 0 and variance 2 x lambda, pixel by pixel."""
    log = need_file("formats/simple_cubic_formats.log").read_text()
    c_photons = float(re.search(r"(\d+) photons on noise image", log).group(1))
    assert c_photons == c_noise.sum()
    lam = float_image.numpy().astype(np.float64)
    ours = full_frame[0].numpy().astype(np.float64) - ADC
    assert abs(ours.sum() - c_photons) < 5.0 * math.sqrt(2.0 * lam.sum())
    diff = ours - c_noise
    assert abs(diff.mean()) < 5.0 * math.sqrt(2.0 * lam.mean() / diff.size)
    assert abs(diff.var() / (2.0 * lam.mean()) - 1.0) < 0.05
    bright = lam >= 20.0
    z = diff[bright] / np.sqrt(2.0 * lam[bright])
    assert abs(z.mean()) < 5.0 / math.sqrt(z.size)
    assert abs(z.var() - 1.0) < 5.0 * math.sqrt(2.0 / z.size)
    p0 = np.exp(-lam[lam < 1.0])  # dim pixels: zero counts as often in both
    ours_zeros, c_zeros = (float((x[lam < 1.0] == 0).sum()) for x in (ours, c_noise))
    assert abs(ours_zeros - c_zeros) < 5.0 * math.sqrt(2.0 * float((p0 * (1.0 - p0)).sum()))


def _pmf(k: np.ndarray, lam: float) -> np.ndarray:
    return np.exp(-lam + k * math.log(lam) - np.array([math.lgamma(x + 1.0) for x in k]))


@pytest.mark.parametrize("lam", [0.05, 3.0, 11.99, 12.0, 47.5, 3000.0])
def test_counts_follow_poisson(lam: float) -> None:
    n = 40000
    counts = poisson_counts(
        torch.full((n,), lam, dtype=torch.float32), 7, 3, torch.arange(n) * 7919 + 11
    ).numpy()
    assert counts.dtype == np.float64 and np.all(counts == np.floor(counts))
    assert abs(counts.mean() - lam) < 5.0 * math.sqrt(lam / n)
    assert abs(counts.var() / lam - 1.0) < 5.0 * math.sqrt(2.0 / n) + 1e-3
    lo, hi = max(0, int(lam - 3 * math.sqrt(lam))), int(lam + 3 * math.sqrt(lam)) + 1
    k = np.arange(lo, hi + 1)
    observed = np.array([(counts == x).sum() for x in k])
    expected = n * _pmf(k, float(np.float32(lam)))
    use = expected > 20
    chi2 = float((((observed - expected) ** 2 / expected)[use]).sum())
    dof = int(use.sum())
    assert chi2 < dof + 6.0 * math.sqrt(2.0 * dof) + 10.0


def test_edge_means_and_overloads() -> None:
    expected = torch.tensor([[0.0, -3.0, 1e5, 4e6]], dtype=torch.float64)
    adu, photons, overloads = noise_image(expected, 1, 0, 5, 0, 4, adc_offset=40.0)
    assert adu[0, :2].tolist() == [40, 40]
    assert adu[0, 2:].tolist() == [65535, 65535]
    assert overloads == 2
    assert abs(photons - 4.1e6) < 5.0 * math.sqrt(4.1e6)
    big = poisson_counts(torch.full((20000,), 4e6), 2, 0, torch.arange(20000))
    assert abs(float(big.mean()) - 4e6) < 5.0 * 2000.0 / math.sqrt(20000)
    assert abs(float(big.std()) / 2000.0 - 1.0) < 0.03


def test_float32_and_float64_input_agree() -> None:
    values = torch.rand(64, 64, generator=torch.Generator().manual_seed(0)) * 30.0
    a, _, _ = noise_image(values, 9, 2, 10, 20, 100)
    b, _, _ = noise_image(values.to(torch.float64), 9, 2, 10, 20, 100)
    assert torch.equal(a, b)


def test_roi_mask_zeroes_outside_pixels() -> None:
    values = torch.full((4, 4), 1e5)
    roi = torch.zeros(4, 4, dtype=torch.bool)
    roi[1:3, 1:3] = True
    adu, photons, overloads = noise_image(values, 3, 0, 0, 0, 4, roi_mask=roi)
    assert int(adu[~roi].to(torch.int32).abs().sum()) == 0
    assert overloads == 4 and abs(photons - 4e5) < 5.0 * math.sqrt(4e5)


def test_invalid_arguments_are_rejected() -> None:
    values = torch.ones(2, 3)
    with pytest.raises(ValueError, match="seed"):
        noise_image(values, -1, 0, 0, 0, 3)
    with pytest.raises(TypeError, match="seed"):
        noise_image(values, 1.5, 0, 0, 0, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frame"):
        noise_image(values, 1, 2**32, 0, 0, 3)
    with pytest.raises(ValueError, match="fast_pixels"):
        noise_image(values, 1, 0, 0, 1, 3)
    with pytest.raises(ValueError, match="finite"):
        noise_image(torch.tensor([[float("nan")]]), 1, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="shape"):
        poisson_counts(values, 1, 0, torch.arange(6))
    with pytest.raises(TypeError, match="integer"):
        poisson_counts(values, 1, 0, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=">= 0"):
        poisson_counts(values, 1, 0, -torch.ones(2, 3, dtype=torch.int64))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    values = torch.rand(256, 300, generator=torch.Generator().manual_seed(1)) * 40.0
    values[0, :5] = torch.tensor([0.0, 1e3, 1e5, 2e6, 11.999])
    cpu, cpu_photons, _ = noise_image(values, 77, 4, 100, 50, 400)
    gpu, gpu_photons, _ = noise_image(values.cuda(), 77, 4, 100, 50, 400)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    assert abs(gpu_photons - cpu_photons) <= 1e-6 * max(1.0, cpu_photons)
