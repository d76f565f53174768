"""Counter-based Poisson detector noise (C nanoBragg's ``-noisefile``), tiling-invariant.

The noise of a pixel depends only on (seed, frame, pixel index = slow*fast_pixels + fast) and
its expected photon count, never on the window it is rendered in or on the device. Uniform
deviates come from Philox4x32-10 (Salmon et al. 2011, the generator of cuRAND and Random123)
keyed by the 64-bit seed, with counter (pixel low word, pixel high word, frame, draw).

Torch has no unsigned 64-bit arithmetic on every device, so on other devices the 32-bit words
are held in int64 tensors (values in [0, 2^32)) and each 32x32-bit product is split into two
32x16-bit products below 2^48, so no int64 operation ever overflows. On CPU the draws of
means below 12 (Philox, uniforms, inversion) and the ADU run compiled (``engine/noise.c``,
built once per CPU by :mod:`engine.noise_native`: 8 pixels a step with AVX-512), else on
numpy uint64 arrays, where one multiply gives the whole 64-bit product, processed in
cache-sized pieces. The same integers come out on every path, CPU and CUDA.

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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from engine import noise_native, vml

__all__ = ["philox4x32_10", "uniform_pair", "poisson_counts", "noise_image"]

vml.resolve_dispatch()  # MKL chooses its exp, log, sqrt, cos kernels before any draw runs

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
_CPU_BAND = 1 << 15  # pixels per piece of Poisson work on CPU: temporaries stay in cache
_TORCH_INLINE = 2048  # torch's exp/log run on intra-op threads above this many elements
_MASK64 = (1 << 64) - 1
_SHIFT32 = np.uint64(32)

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


def _product(c, m: int):
    """The 64-bit product c*m of a 32-bit word (uint64 array: overwritten in place, or int)."""
    if isinstance(c, np.ndarray):
        return np.multiply(c, np.uint64(m), out=c)
    return (c * m) & _MASK64


def _high_xor(p, c, k: int):
    """(p >> 32) ^ c ^ k, in ``c``'s buffer when ``c`` is an array."""
    if isinstance(p, np.ndarray):
        if isinstance(c, np.ndarray):
            c ^= np.uint64(k)
            c ^= p >> _SHIFT32
            return c
        out = p >> _SHIFT32
        out ^= np.uint64(c ^ k)
        return out
    if isinstance(c, np.ndarray):
        c ^= np.uint64((p >> 32) ^ k)
        return c
    return (p >> 32) ^ c ^ k


def _low(p):
    """p & (2^32 - 1), in place for an array."""
    if isinstance(p, np.ndarray):
        p &= np.uint64(_MASK32)
        return p
    return p & _MASK32


def _philox_numpy(c0, c1, c2, c3, k0: int, k1: int, words: int = 4) -> tuple:
    """Philox4x32-10 on uint64 numpy arrays (overwritten) or Python ints: the first ``words``.

    Words that are scalars (frame, draw, pixel high word) stay Python ints until a round
    mixes them with an array; a 32x32-bit product never exceeds 2^64. ``words``: 2 or 4.
    """
    for r in range(10):
        p1 = _product(c2, _PHILOX_M1)
        if words == 2 and r == 9:  # words 0 and 1 need only the second product
            return _high_xor(p1, c1, k0), _low(p1)
        p0 = _product(c0, _PHILOX_M0)
        c0, c1, c2, c3 = _high_xor(p1, c1, k0), _low(p1), _high_xor(p0, c3, k1), _low(p0)
        k0, k1 = (k0 + _PHILOX_W0) & _MASK32, (k1 + _PHILOX_W1) & _MASK32
    return c0, c1, c2, c3


def _unit_numpy(w_hi: np.ndarray, w_lo: np.ndarray, out: np.ndarray) -> None:
    """``_to_unit`` on uint64 arrays (overwritten), into the float64 array ``out``."""
    w_hi >>= np.uint64(6)
    w_hi <<= np.uint64(26)
    w_lo >>= np.uint64(6)
    w_hi |= w_lo
    out[:] = w_hi
    out += 0.5
    out *= _TWO_POW_M52


def _uniforms_numpy(
    index: np.ndarray, seed: int, frame: int, draw: int, pair: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``uniform_pair`` of a 1-D array of pixel indices (>= 0); the second only if ``pair``."""
    lib = noise_native.library()
    if lib is not None:
        return noise_native.uniforms(lib, index, seed, frame, draw, pair)
    index = np.ascontiguousarray(index, dtype=np.int64).view(np.uint64)
    u = np.empty(index.shape, dtype=np.float64)
    v = np.empty_like(u) if pair else None
    k0, k1 = seed & _MASK32, seed >> 32
    for start in range(0, index.size, _CPU_CHUNK):
        part = index[start : start + _CPU_CHUNK]
        high = int(part.max()) >> 32
        c1 = part >> np.uint64(32) if high else 0
        w = _philox_numpy(part & np.uint64(_MASK32), c1, frame, draw, k0, k1, 4 if pair else 2)
        _unit_numpy(w[0], w[1], u[start : start + _CPU_CHUNK])
        if v is not None:
            _unit_numpy(w[2], w[3], v[start : start + _CPU_CHUNK])
    return u, v


def _uniforms(
    idx: torch.Tensor, seed: int, frame: int, draw: int, pair: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Uniforms of a 1-D int64 index tensor: u, and v when ``pair`` (else None)."""
    if idx.device.type == "cpu":
        u, v = _uniforms_numpy(idx.numpy(), seed, frame, draw, pair)
        return torch.from_numpy(u), None if v is None else torch.from_numpy(v)
    w0, w1, w2, w3 = philox4x32_10(
        idx & _MASK32, idx >> 32, frame, draw, seed & _MASK32, seed >> 32
    )
    return _to_unit(w0, w1), _to_unit(w2, w3) if pair else None


def uniform_pair(
    pixel_index: torch.Tensor, seed: int, frame: int, draw: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent float64 uniforms in (0, 1) per pixel for one (seed, frame, draw)."""
    idx = pixel_index.to(torch.int64).reshape(-1)
    u, v = _uniforms(idx, seed, frame, draw)
    return u.reshape(pixel_index.shape), v.reshape(pixel_index.shape)


def _inversion(lam: torch.Tensor, idx: torch.Tensor, seed: int, frame: int) -> torch.Tensor:
    """Poisson deviates for 0 < lam < 12: smallest k with CDF(k) >= u, one uniform per pixel."""
    u, _ = _uniforms(idx, seed, frame, 0, pair=False)
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


def _exp_neg(lam: np.ndarray) -> np.ndarray:
    """exp(-lam) by torch's exp (the values of every device path), in pieces torch runs inline.

    Intra-op threads cost far more than they save on pieces this small when cores are busy.
    """
    out = np.negative(lam)
    values = torch.from_numpy(out)
    for start in range(0, out.size, _TORCH_INLINE):
        part = values[start : start + _TORCH_INLINE]
        torch.exp(part, out=part)
    return out


def _inversion_numpy(lam: np.ndarray, idx: np.ndarray, seed: int, frame: int) -> np.ndarray:
    """``_inversion`` on CPU arrays: the same operations (exp by torch), fewer dispatches."""
    u, _ = _uniforms_numpy(idx, seed, frame, 0, pair=False)
    p = _exp_neg(lam)
    counts = np.zeros_like(lam)
    pos = np.flatnonzero(u > p)
    lam, u, p = lam[pos], u[pos], p[pos]
    cdf = p
    for k in range(1, MAX_INVERSION_STEPS + 1):
        if pos.size == 0:
            break
        p = p * lam / k
        cdf = cdf + p
        counts[pos] = float(k)
        keep = np.flatnonzero(u > cdf)
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
        u, v = _uniforms(idx, seed, frame, draw)
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
    u1, u2 = _uniforms(idx, seed, frame, 0)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return lam + torch.sqrt(lam) * z


def _check_int(value: int, name: str, high: int) -> int:
    """``value`` as a Python int if it is an integer in [0, high], else a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= high:
        raise ValueError(f"{name} must be in [0, {high}], got {value}")
    return int(value)


def stream_key(seed: int, frame: int) -> tuple[int, int]:
    """(seed, frame) of a noise stream as Python ints, checked against their limits
    (:data:`MAX_SEED`, :data:`MAX_FRAME`): TypeError or ValueError naming the one that is not."""
    return _check_int(seed, "seed", MAX_SEED), _check_int(frame, "frame", MAX_FRAME)


def _check_index(pixel_index: torch.Tensor, expected: torch.Tensor) -> None:
    if pixel_index.dtype.is_floating_point or pixel_index.dtype.is_complex:
        raise TypeError(f"pixel_index must be an integer tensor, got {pixel_index.dtype}")
    if pixel_index.shape != expected.shape:
        raise ValueError(
            f"pixel_index shape {tuple(pixel_index.shape)} differs from "
            f"expected shape {tuple(expected.shape)}"
        )


def _counts(expected: torch.Tensor, idx: torch.Tensor, seed: int, frame: int) -> torch.Tensor:
    """Float64 Poisson counts of 1-D means ``expected`` at 1-D int64 pixel indices ``idx``."""
    lam = expected.to(torch.float64)
    if lam.numel() == 0:
        return lam
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
        if sel.numel() == lam.numel():
            return method(lam, idx, seed, frame)
        if sel.numel():
            counts[sel] = method(lam[sel], idx[sel], seed, frame)
    return counts


def _counts_cpu(lam: np.ndarray, idx: np.ndarray, seed: int, frame: int) -> np.ndarray:
    """``_counts`` on CPU of 1-D means (float32 or float64) at 1-D int64 pixel indices: means
    below 12 by the compiled library when there is one (:mod:`engine.noise_native`), the rest
    (and everything without it) by :func:`_counts_numpy`."""
    lib = noise_native.library()
    if lib is None or lam.size == 0:
        return _counts_numpy(lam.astype(np.float64, copy=False), idx, seed, frame)
    if int(idx.min()) < 0:
        raise ValueError("pixel_index must be >= 0")
    counts, rest = noise_native.poisson_small(lib, lam, idx, seed, frame)
    if rest.size:
        means = lam[rest].astype(np.float64)
        counts[rest] = _counts_numpy(means, np.ascontiguousarray(idx[rest]), seed, frame)
    return counts


def _counts_numpy(lam: np.ndarray, idx: np.ndarray, seed: int, frame: int) -> np.ndarray:
    """``_counts`` on CPU: float64 means and int64 pixel indices as 1-D numpy arrays."""
    if lam.size == 0:
        return lam.copy()
    low, high = float(lam.min()), float(lam.max())  # NaN if any is NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("expected photon counts must be finite (found NaN or inf)")
    if int(idx.min()) < 0:
        raise ValueError("pixel_index must be >= 0")
    if low > 0.0 and high < SMALL_MEAN_LIMIT:
        return _inversion_numpy(lam, idx, seed, frame)
    small = (lam > 0.0) & (lam < SMALL_MEAN_LIMIT)
    counts = np.zeros_like(lam)
    sel = np.flatnonzero(small)
    if sel.size:
        counts[sel] = _inversion_numpy(lam[sel], idx[sel], seed, frame)
    branches = (
        ((lam >= SMALL_MEAN_LIMIT) & (lam <= GAUSSIAN_MEAN_LIMIT), _ptrs),
        (lam > GAUSSIAN_MEAN_LIMIT, _gaussian),
    )
    for mask, method in branches:
        sel = np.flatnonzero(mask)
        for start in range(0, sel.size, _TORCH_INLINE):
            part = sel[start : start + _TORCH_INLINE]
            drawn = method(torch.from_numpy(lam[part]), torch.from_numpy(idx[part]), seed, frame)
            counts[part] = drawn.numpy()
    return counts


def poisson_counts(
    expected: torch.Tensor, seed: int, frame: int, pixel_index: torch.Tensor
) -> torch.Tensor:
    """Poisson photon counts (float64, shape and device of ``expected``).

    ``expected``: mean photons per pixel (float32 or float64, finite); ``pixel_index``: int
    tensor of the same shape holding slow*fast_pixels + fast (>= 0); ``seed`` in [0, 2^63);
    ``frame`` in [0, 2^32). On CPU the pixels are drawn in pieces of bounded size.
    """
    seed, frame = stream_key(seed, frame)
    _check_index(pixel_index, expected)
    lam = expected.detach().reshape(-1)
    idx = pixel_index.to(device=lam.device, dtype=torch.int64).reshape(-1)
    if lam.device.type != "cpu":
        return _counts(lam, idx, seed, frame).reshape(expected.shape)
    if lam.dtype in (torch.float32, torch.float64) and noise_native.library() is not None:
        counts = _counts_cpu(lam.contiguous().numpy(), idx.contiguous().numpy(), seed, frame)
        return torch.from_numpy(counts).reshape(expected.shape)
    counts = np.empty(lam.shape, dtype=np.float64)
    for start in range(0, lam.numel(), _CPU_BAND):
        part = slice(start, start + _CPU_BAND)
        means = lam[part].to(torch.float64).numpy()
        counts[part] = _counts_numpy(means, idx[part].numpy(), seed, frame)
    return torch.from_numpy(counts).reshape(expected.shape)


def counts_at(lam: np.ndarray, idx: np.ndarray, seed: int, frame: int) -> np.ndarray:
    """Float64 Poisson counts of 1-D float64 means at 1-D int64 pixel indices, the draws of
    :func:`poisson_counts` for those pixels (any mean; numpy and torch on the CPU)."""
    seed, frame = stream_key(seed, frame)
    return _counts_numpy(np.ascontiguousarray(lam, dtype=np.float64), idx, seed, frame)


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
    seed, frame = stream_key(seed, frame)
    inside = None if roi_mask is None else roi_mask.to(float_window.device, torch.bool)
    if float_window.device.type == "cpu":
        origin = (slow0, fast0, fast_pixels)
        return _noise_numpy(float_window.detach(), seed, frame, origin, adc_offset, inside)
    slow = torch.arange(slow0, slow0 + rows, device=float_window.device, dtype=torch.int64)
    fast = torch.arange(fast0, fast0 + cols, device=float_window.device, dtype=torch.int64)
    index = slow[:, None] * fast_pixels + fast[None, :]
    counts = _counts(float_window.detach().reshape(-1), index.reshape(-1), seed, frame)
    adu = counts.reshape(rows, cols) + adc_offset
    if inside is not None:
        counts = torch.where(inside.reshape(-1), counts, 0.0)
        adu = torch.where(inside, adu, 0.0)
    overloads = int((adu > 65535.0).sum())
    adu = torch.trunc(torch.clamp(adu, 0.0, 65535.0)).to(torch.uint16)
    return adu, float(counts.sum()), overloads


def _noise_numpy(
    float_window: torch.Tensor,
    seed: int,
    frame: int,
    origin: tuple[int, int, int],
    adc_offset: float,
    inside: torch.Tensor | None,
) -> tuple[torch.Tensor, float, int]:
    """``noise_image`` on CPU, in row bands of about ``_CPU_BAND`` pixels; ``origin`` is
    (slow0, fast0, fast_pixels).

    Bands run on up to torch's number of threads (numpy releases the GIL; torch ops stay
    small enough to run inline); photons are summed in band order, so nothing depends on
    the number of threads.
    """
    rows, cols = float_window.shape
    if float_window.dtype not in (torch.float32, torch.float64):
        float_window = float_window.to(torch.float64)
    expected = float_window.numpy()
    adu = np.empty((rows, cols), dtype=np.uint16)
    keep_all = None if inside is None else inside.numpy()
    step = max(1, _CPU_BAND // max(cols, 1))
    slow0, fast0, fast_pixels = origin
    fast = np.arange(fast0, fast0 + cols, dtype=np.int64)

    def band(r0: int) -> tuple[float, int]:
        r1 = min(rows, r0 + step)
        slow = np.arange(slow0 + r0, slow0 + r1, dtype=np.int64)
        index = (slow[:, None] * fast_pixels + fast[None, :]).reshape(-1)
        counts = _counts_cpu(expected[r0:r1].reshape(-1), index, seed, frame)
        values = counts + adc_offset
        if keep_all is not None:
            keep = keep_all[r0:r1].reshape(-1)
            counts = np.where(keep, counts, 0.0)
            values = np.where(keep, values, 0.0)
        if values.size == 0:
            return 0.0, 0
        over = 0
        if values.max() > 65535.0:
            over = int(np.count_nonzero(values > 65535.0))
            np.clip(values, 0.0, 65535.0, out=values)
        elif values.min() < 0.0:
            np.clip(values, 0.0, 65535.0, out=values)
        np.copyto(adu[r0:r1].reshape(-1), values, casting="unsafe")
        return float(counts.sum()), over

    starts = range(0, rows, step)
    threads = min(len(starts), torch.get_num_threads())
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(band, starts))
    else:
        parts = [band(r0) for r0 in starts]
    photons = 0.0
    for drawn, _ in parts:
        photons += drawn
    overloads = sum(over for _, over in parts)
    return torch.from_numpy(adu), photons, overloads
