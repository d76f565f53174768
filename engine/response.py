"""Detector response: what a detector makes of the rendered photons (nanoBragg leaves it out).

Applied after the photons are rendered, in this order (:func:`detector_image`):

1. point spread (``psf``): the photons convolved with a kernel normalised to sum 1, so photons
   are conserved (those spread past the detector's edge are lost). ``gauss``: a Gaussian of
   the given FWHM; ``fiber``: a fiber-optic taper's ``(1 + r^2/g^2)^(-3/2)`` with
   ``g = FWHM / (2 sqrt(2^(2/3) - 1))``. Sampled at pixel centres, cut where the kernel falls
   below :data:`KERNEL_FLOOR` of its peak or at :data:`MAX_PSF_RADIUS` pixels. The sums run
   over kernel offsets in a fixed order, so a pixel's value never depends on the window.
2. Poisson photon noise (``noise``): counter-based (:mod:`engine.noise`), keyed by the seed,
   the frame and the pixel's index on the detector (slow * fast_pixels + fast).
3. gain: ADU per photon.
4. read-out noise: normal, ``readout_noise`` ADU rms, from its own counter-based stream.
5. ADC offset (ADU), then clipping to [0, ``overload``] and truncation to an integer, as C's
   ``-noisefile`` (overloads: pixels above ``overload`` before clipping).

Every step is a function of the pixel's detector index and of photons within the PSF radius,
so a tile computed from a window enlarged by :func:`psf_radius` pixels (a halo) equals the
same pixels of a whole frame. Torch loads only when noise is drawn.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.window import Window

__all__ = [
    "DetectorResponse",
    "PointSpread",
    "detector_image",
    "psf_kernel",
    "psf_radius",
    "spread",
    "halo_window",
]

#: Kernel values below this fraction of the peak are cut.
KERNEL_FLOOR = 1e-6
#: Largest kernel radius, pixels (a fiber PSF's r^-3 tail reaches 1e-6 only at ~100 g).
MAX_PSF_RADIUS = 32
#: Counter word 'draw' of the read-out noise stream (Poisson draws use 0..63).
READOUT_DRAW = 0x80000000
MAX_OVERLOAD = 2**32 - 1
_GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...
_FIBER_FWHM = 2.0 * math.sqrt(2.0 ** (2.0 / 3.0) - 1.0)


class PointSpread(BaseModel):
    """A detector point-spread function: its shape and full width at half maximum."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: Literal["gauss", "fiber"] = Field(description="Gaussian, or fiber-optic taper")
    fwhm_um: float = Field(gt=0, le=1e5, description="full width at half maximum, micrometres")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        """Also read the command-line form ``gauss:FWHM_UM`` / ``fiber:FWHM_UM``."""
        if not isinstance(data, str):
            return data
        shape, sep, fwhm = data.partition(":")
        if not sep:
            raise ValueError(f"PSF {data!r}: expected gauss:FWHM_UM or fiber:FWHM_UM")
        return {"shape": shape, "fwhm_um": fwhm}

    @classmethod
    def parse(cls, text: str) -> PointSpread:
        """``gauss:FWHM_UM`` or ``fiber:FWHM_UM`` (pydantic's ValidationError, a ValueError,
        otherwise)."""
        return cls.model_validate(text)


class DetectorResponse(BaseModel):
    """How photons become ADU: PSF, Poisson noise, gain, read-out noise, offset, overload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    noise: bool = Field(False, description="Poisson photon noise")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="noise seed (photon and read-out)")
    gain: float = Field(1.0, gt=0, le=1e6, description="ADU per photon")
    adc_offset: float = Field(40.0, ge=0, le=1e6, description="ADC offset, ADU")
    readout_noise: float = Field(0.0, ge=0, le=1e6, description="read-out noise, ADU rms")
    psf: PointSpread | None = Field(None, description="point spread (None: none)")
    overload: int = Field(65535, ge=1, le=MAX_OVERLOAD, description="saturation, ADU")

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type holding ``overload``."""
        return np.dtype(np.uint16 if self.overload <= 65535 else np.uint32)


def psf_kernel(psf: PointSpread | None, pixel_size_m: float) -> np.ndarray:
    """The float64 kernel (2R+1, 2R+1), sum 1, of ``psf`` on pixels of ``pixel_size_m``."""
    if psf is None:
        return np.ones((1, 1))
    width = psf.fwhm_um * 1e-6 / pixel_size_m  # FWHM in pixels
    r = np.arange(-MAX_PSF_RADIUS, MAX_PSF_RADIUS + 1, dtype=np.float64)
    rr = r[:, None] ** 2 + r[None, :] ** 2
    if psf.shape == "gauss":
        sigma = width / _GAUSS_FWHM
        kernel = np.exp(-rr / (2.0 * sigma * sigma))
    else:
        g = width / _FIBER_FWHM
        kernel = (1.0 + rr / (g * g)) ** -1.5
    kept = np.flatnonzero((kernel >= KERNEL_FLOOR).any(axis=0))
    radius = int(max(abs(r[kept[0]]), abs(r[kept[-1]])))
    middle = slice(MAX_PSF_RADIUS - radius, MAX_PSF_RADIUS + radius + 1)
    kernel = np.where(kernel >= KERNEL_FLOOR, kernel, 0.0)[middle, middle]
    return kernel / kernel.sum()


def psf_radius(response: DetectorResponse | None, pixel_size_m: float) -> int:
    """Pixels a photon spreads to on each side (the halo a tile needs)."""
    if response is None or response.psf is None:
        return 0
    return psf_kernel(response.psf, pixel_size_m).shape[0] // 2


def halo_window(window: Window, radius: int, slow_pixels: int, fast_pixels: int) -> Window:
    """``window`` enlarged by ``radius`` pixels on each side, clipped to the detector."""
    return Window(
        max(0, window.slow0 - radius),
        min(slow_pixels, window.slow1 + radius),
        max(0, window.fast0 - radius),
        min(fast_pixels, window.fast1 + radius),
    )


def spread(photons: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``photons`` (float64, same shape) convolved with ``kernel``, zero beyond the array.

    One multiply-add per kernel offset in a fixed order, so each pixel's value depends only
    on its neighbours, never on the array's size."""
    radius = kernel.shape[0] // 2
    if radius == 0:
        return np.asarray(photons, dtype=np.float64).copy()
    rows, cols = photons.shape
    padded = np.zeros((rows + 2 * radius, cols + 2 * radius))
    padded[radius : radius + rows, radius : radius + cols] = photons
    out = np.zeros((rows, cols))
    for ds, df in zip(*np.nonzero(kernel), strict=True):
        out += kernel[ds, df] * padded[ds : ds + rows, df : df + cols]
    return out


def _normal(index: np.ndarray, seed: int, frame: int) -> np.ndarray:
    """One standard normal deviate per pixel index (Box-Muller), its own stream."""
    import torch

    from engine.noise import uniform_pair

    u, v = uniform_pair(torch.from_numpy(index), seed, frame, READOUT_DRAW)
    u, v = u.numpy(), v.numpy()
    return np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * math.pi * v)


def detector_image(
    photons: np.ndarray,
    window: Window,
    response: DetectorResponse,
    frame: int,
    fast_pixels: int,
    pixel_size_m: float,
    crop: Window | None = None,
    inside: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """The detector's image (ADU, ``response.dtype``) of ``crop`` and its overloads.

    ``photons``: expected photons/pixel of ``window`` (rows, cols), taken as 0 beyond it;
    ``crop``: the pixels wanted, within ``window`` (default: all of it), at least
    :func:`psf_radius` pixels from its edges unless those are the detector's; ``inside``: mask
    of ``crop``, False where nothing is rendered (ROI): those pixels are 0 ADU, no overloads.
    """
    crop = window if crop is None else crop
    kernel = psf_kernel(response.psf, pixel_size_m)
    if response.noise and kernel.shape == (1, 1):  # no spread: Poisson reads float32 exactly
        blurred = np.asarray(photons)[crop.slices_in(window)]
    else:
        blurred = spread(photons, kernel)[crop.slices_in(window)]
    from engine import noise_native  # dask config and ctypes: not for schema-only imports

    lib = noise_native.library()
    if lib is not None and response.noise and response.readout_noise <= 0:
        return _noise_adu(lib, blurred, crop, response, frame, fast_pixels, inside)
    index = None
    if response.noise or response.readout_noise > 0:
        slow = np.arange(crop.slow0, crop.slow1, dtype=np.int64)
        fast = np.arange(crop.fast0, crop.fast1, dtype=np.int64)
        index = slow[:, None] * fast_pixels + fast[None, :]
    if response.noise:
        import torch

        from engine.noise import poisson_counts

        counts = poisson_counts(
            torch.from_numpy(blurred), response.seed, frame, torch.from_numpy(index)
        )
        adu = counts.numpy()
    else:
        adu = blurred  # float64, a copy of the photons
    if lib is not None:  # one pass in C, the same operations as below
        readout = None
        if response.readout_noise > 0:
            readout = response.readout_noise * _normal(index, response.seed, frame)
        gain, offset = response.gain, response.adc_offset
        return noise_native.adu(
            lib, adu, readout, inside, gain, offset, response.overload, response.dtype
        )
    # in place on the float64 counts: counts x gain (+ read-out noise) + offset, then clipped
    np.multiply(adu, response.gain, out=adu)
    if response.readout_noise > 0:
        adu += response.readout_noise * _normal(index, response.seed, frame)
    adu += response.adc_offset
    if inside is not None:
        np.putmask(adu, ~np.asarray(inside, dtype=bool), 0.0)
    overloads = int(np.count_nonzero(adu > response.overload))
    np.clip(adu, 0.0, float(response.overload), out=adu)
    np.trunc(adu, out=adu)
    return adu.astype(response.dtype), overloads


def _noise_adu(
    lib,
    means: np.ndarray,
    crop: Window,
    response: DetectorResponse,
    frame: int,
    fast_pixels: int,
    inside: np.ndarray | None,
) -> tuple[np.ndarray, int]:
    """:func:`detector_image` of Poisson counts without read-out noise in one compiled pass
    (:func:`engine.noise_native.noise_adu`); the few means >= 12 are drawn as
    :func:`engine.noise.poisson_counts` draws them, then made ADU the same way."""
    from engine import noise_native
    from engine.noise import counts_at, stream_key

    seed, frame = stream_key(response.seed, frame)
    gain, offset, overload = response.gain, response.adc_offset, response.overload
    first = (crop.slow0, crop.fast0)
    out, rest, overloads = noise_native.noise_adu(
        lib, means, first, fast_pixels, seed, frame, inside, gain, offset, overload, response.dtype
    )
    if rest.size:
        rows, cols = divmod(rest, out.shape[1])
        index = (rows + crop.slow0) * fast_pixels + (cols + crop.fast0)
        counts = counts_at(means[rows, cols], index, seed, frame)
        mask = None if inside is None else np.asarray(inside, dtype=bool)[rows, cols]
        adu, more = noise_native.adu(lib, counts, None, mask, gain, offset, overload, out.dtype)
        out[rows, cols] = adu
        overloads += more
    return out, overloads
