"""Counter-based Poisson detector noise (C nanoBragg's ``-noisefile``), tiling-invariant.

The noise of a pixel depends only on (seed, frame, pixel index = slow*fast_pixels + fast) and
its expected photon count, never on the window it is rendered in or on the device. Uniform
deviates come from Philox4x32-10 (Salmon et al. 2011, the generator of cuRAND and Random123)
keyed by the 64-bit seed, with counter (pixel low word, pixel high word, frame, draw).

Torch has no unsigned 64-bit arithmetic on every device, so the 32-bit words are held in int64
tensors (values in [0, 2^32)) and each 32x32-bit product is split into two 32x16-bit products
below 2^48, so no int64 operation ever overflows. The same integers come out on CPU and CUDA.

Poisson deviates follow C's ``poidev`` branch points: mean < 12 by exact inversion of the CDF
(one uniform), 12 <= mean <= 1e6 by Hormann's transformed rejection with squeeze (PTRS),
mean > 1e6 by C's Gaussian approximation mean + sqrt(mean)*N(0,1) (not an integer, as in C).
Means <= 0 give 0 photons. Counts can differ between devices only when a uniform falls within
rounding error (~1e-16) of a CDF step, because exp/log/lgamma may differ in the last bit.

Seeds are integers in [0, 2^63), each with its own stream. (C's ``-seed N`` with N <= 0 does
not seed ``ran1`` from N at all: it falls back to 1 or continues an earlier shuffle table, so
negative seeds carry no meaning worth keeping.) C's draws are not reproduced: C uses one
sequential ``ran1`` stream over the whole frame, which no tiled renderer can follow.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["philox4x32_10", "uniform_pair", "poisson_counts", "noise_image"]

ADC_OFFSET = 40.0
SMALL_MEAN_LIMIT = 12.0  # C poidev: direct method below, rejection at and above
GAUSSIAN_MEAN_LIMIT = 1.0e6  # C poidev: Gaussian approximation above
MAX_INVERSION_STEPS = 100  # P(X >= 100 | mean < 12) < 1e-50
MAX_REJECTION_ROUNDS = 64  # PTRS accepts with probability > 0.85 per round
MAX_SEED = 2**63 - 1
MAX_FRAME = 2**32 - 1

_MASK32 = 0xFFFFFFFF
_PHILOX_M0, _PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
_PHILOX_W0, _PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
_TWO_POW_M52 = 2.0**-52
_CPU_CHUNK = 1 << 15  # Philox on CPU runs several times faster on cache-sized pieces

Word = torch.Tensor | int


def _mulhilo(x: Word, m: int) -> tuple[Word, Word]:
    """(high, low) 32-bit words of x*m for x in [0, 2^32) and a 32-bit constant m, overflow-free."""
    p_lo = x * (m & 0xFFFF)  # < 2^48
    p_hi = x * (m >> 16)  # < 2^48
    s = p_lo + ((p_hi & 0xFFFF) << 16)  # < 2^49
    return (p_hi >> 16) + (s >> 32), s & _MASK32


def philox4x32_10(
    c0: Word, c1: Word, c2: Word, c3: Word, k0: int, k1: int
) -> tuple[Word, Word, Word, Word]:
    """Philox4x32-10 block: counter words c0..c3 and key words k0, k1 (each in [0, 2^32)).

    Counter words may be int64 tensors (broadcast together) or Python ints.
    """
    for _ in range(10):
        hi0, lo0 = _mulhilo(c0, _PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, _PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _PHILOX_W0) & _MASK32, (k1 + _PHILOX_W1) & _MASK32
    return c0, c1, c2, c3


def _to_unit(w_hi: torch.Tensor, w_lo: torch.Tensor) -> torch.Tensor:
    """52 random bits from two words -> float64 uniform strictly inside (0, 1)."""
    bits = ((w_hi >> 6) << 26) | (w_lo >> 6)
    return (bits.to(torch.float64) + 0.5) * _TWO_POW_M52


def uniform_pair(
    pixel_index: torch.Tensor, seed: int, frame: int, draw: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent float64 uniforms in (0, 1) per pixel for one (seed, frame, draw)."""
    idx = pixel_index.to(torch.int64).reshape(-1)
    u = torch.empty(idx.shape, dtype=torch.float64, device=idx.device)
    v = torch.empty_like(u)
    step = _CPU_CHUNK if idx.device.type == "cpu" else max(idx.numel(), 1)
    for start in range(0, idx.numel(), step):
        part = idx[start : start + step]
        w0, w1, w2, w3 = philox4x32_10(
            part & _MASK32, part >> 32, frame, draw, seed & _MASK32, seed >> 32
        )
        u[start : start + step] = _to_unit(w0, w1)
        v[start : start + step] = _to_unit(w2, w3)
    return u.reshape(pixel_index.shape), v.reshape(pixel_index.shape)


def _inversion(lam: torch.Tensor, idx: torch.Tensor, seed: int, frame: int) -> torch.Tensor:
    """Poisson deviates for 0 < lam < 12: smallest k with CDF(k) >= u, one uniform per pixel."""
    u, _ = uniform_pair(idx, seed, frame, 0)
    counts = torch.zeros_like(lam)
    p = torch.exp(-lam)
    cdf = p.clone()
    pos = torch.nonzero(u > cdf).squeeze(1)
    lam, u, p, cdf = lam[pos], u[pos], p[pos], cdf[pos]
    for k in range(1, MAX_INVERSION_STEPS + 1):
        if pos.numel() == 0:
            break
        p = p * lam / k
        cdf = cdf + p
        counts[pos] = float(k)
        keep = torch.nonzero(u > cdf).squeeze(1)
        pos, lam, u, p, cdf = pos[keep], lam[keep], u[keep], p[keep], cdf[keep]
    return counts


def _ptrs(lam: torch.Tensor, idx: torch.Tensor, seed: int, frame: int) -> torch.Tensor:
    """Poisson deviates for lam >= 10 by transformed rejection with squeeze (Hormann 1993)."""
    counts = torch.floor(lam + 0.5)  # only kept if MAX_REJECTION_ROUNDS is ever exhausted
    pos = torch.arange(lam.numel(), device=lam.device)
    log_lam = torch.log(lam)
    b = 0.931 + 2.53 * torch.sqrt(lam)
    a = -0.059 + 0.02483 * b
    log_inv_alpha = torch.log(1.1239 + 1.1328 / (b - 3.4))
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    for draw in range(MAX_REJECTION_ROUNDS):
        if pos.numel() == 0:
            break
        u, v = uniform_pair(idx, seed, frame, draw)
        u = u - 0.5
        us = 0.5 - torch.abs(u)
        k = torch.floor((2.0 * a / us + b) * u + lam + 0.43)
        quick = (us >= 0.07) & (v <= v_r)
        hopeless = (k < 0) | ((us < 0.013) & (v > us))
        k_safe = torch.clamp(k, min=0.0)
        log_ratio = torch.log(v) + log_inv_alpha - torch.log(a / (us * us) + b)
        log_pmf = -lam + k_safe * log_lam - torch.lgamma(k_safe + 1.0)
        accept = quick | (~hopeless & (log_ratio <= log_pmf))
        counts[pos[accept]] = k[accept]
        keep = torch.nonzero(~accept).squeeze(1)
        pos, idx, lam, log_lam = pos[keep], idx[keep], lam[keep], log_lam[keep]
        a, b, log_inv_alpha, v_r = a[keep], b[keep], log_inv_alpha[keep], v_r[keep]
    return counts


def _gaussian(lam: torch.Tensor, idx: torch.Tensor, seed: int, frame: int) -> torch.Tensor:
    """C's approximation for lam > 1e6: lam + sqrt(lam)*N(0,1) (Box-Muller), not rounded."""
    u1, u2 = uniform_pair(idx, seed, frame, 0)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return lam + torch.sqrt(lam) * z


def _check_int(value: int, name: str, high: int) -> int:
    """``value`` as a Python int if it is an integer in [0, high], else a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= high:
        raise ValueError(f"{name} must be in [0, {high}], got {value}")
    return int(value)


def poisson_counts(
    expected: torch.Tensor, seed: int, frame: int, pixel_index: torch.Tensor
) -> torch.Tensor:
    """Poisson photon counts (float64, shape and device of ``expected``).

    ``expected``: mean photons per pixel (float32 or float64, finite); ``pixel_index``: int
    tensor of the same shape holding slow*fast_pixels + fast (>= 0); ``seed`` in [0, 2^63);
    ``frame`` in [0, 2^32).
    """
    seed = _check_int(seed, "seed", MAX_SEED)
    frame = _check_int(frame, "frame", MAX_FRAME)
    if pixel_index.dtype.is_floating_point or pixel_index.dtype.is_complex:
        raise TypeError(f"pixel_index must be an integer tensor, got {pixel_index.dtype}")
    if pixel_index.shape != expected.shape:
        raise ValueError(
            f"pixel_index shape {tuple(pixel_index.shape)} differs from "
            f"expected shape {tuple(expected.shape)}"
        )
    lam = expected.detach().to(torch.float64).reshape(-1)
    idx = pixel_index.to(device=lam.device, dtype=torch.int64).reshape(-1)
    if lam.numel() == 0:
        return lam.reshape(expected.shape)
    if not bool(torch.isfinite(lam).all()):
        raise ValueError("expected photon counts must be finite (found NaN or inf)")
    if int(idx.min()) < 0:
        raise ValueError("pixel_index must be >= 0")
    counts = torch.zeros_like(lam)
    branches = (
        ((lam > 0.0) & (lam < SMALL_MEAN_LIMIT), _inversion),
        ((lam >= SMALL_MEAN_LIMIT) & (lam <= GAUSSIAN_MEAN_LIMIT), _ptrs),
        (lam > GAUSSIAN_MEAN_LIMIT, _gaussian),
    )
    for mask, method in branches:
        sel = torch.nonzero(mask).squeeze(1)
        if sel.numel():
            counts[sel] = method(lam[sel], idx[sel], seed, frame)
    return counts.reshape(expected.shape)


def noise_image(
    float_window: torch.Tensor,
    seed: int,
    frame: int,
    slow0: int,
    fast0: int,
    fast_pixels: int,
    adc_offset: float = ADC_OFFSET,
    roi_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, int]:
    """C's ``-noisefile`` pixels for a window whose first pixel is (slow0, fast0).

    ``float_window``: expected photons, shape (rows, cols). Returns (torch.uint16 ADU on the
    window's device, photons drawn, overloads): ADU = (unsigned short) min(counts + adc_offset,
    65535), clamped at 0 below, an overload being a pixel above 65535 before clamping. Pixels
    outside ``roi_mask`` (bool, window shape) are 0 and not counted, as in C.
    """
    if float_window.dim() != 2:
        raise ValueError(f"float_window must be 2-D (slow, fast), got {tuple(float_window.shape)}")
    rows, cols = float_window.shape
    if slow0 < 0 or fast0 < 0 or fast0 + cols > fast_pixels:
        raise ValueError(
            f"window at (slow0={slow0}, fast0={fast0}) with {cols} columns does not fit a "
            f"detector of fast_pixels={fast_pixels}"
        )
    device = float_window.device
    slow = torch.arange(slow0, slow0 + rows, device=device, dtype=torch.int64)
    fast = torch.arange(fast0, fast0 + cols, device=device, dtype=torch.int64)
    index = slow[:, None] * fast_pixels + fast[None, :]
    counts = poisson_counts(float_window, seed, frame, index)
    adu = counts + adc_offset
    if roi_mask is not None:
        inside = roi_mask.to(device=device, dtype=torch.bool)
        counts = torch.where(inside, counts, 0.0)
        adu = torch.where(inside, adu, 0.0)
    overloads = int((adu > 65535.0).sum())
    adu = torch.trunc(torch.clamp(adu, 0.0, 65535.0)).to(torch.uint16)
    return adu, float(counts.sum()), overloads
