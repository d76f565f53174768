"""Typed, frozen per-frame state: what every window of one frame shares.

:class:`FrameSetup` is built once per frame by :func:`engine.setup.prepare_frame` and never
changed afterwards. The kernel receives its :class:`FrameTensors` (named tensors on the
frame's device and dtype) and its :class:`Structure` (the static part a compiled graph is
specialised on); nothing is cached on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from engine.model import CrystalShape

if TYPE_CHECKING:
    import torch

    from engine.geometry import DetectorGeometry
    from engine.lattice import Lattice
    from engine.model import Experiment
    from engine.plan import FramePlan, Sensor
    from engine.structure_factors import StructureFactorTable
    from engine.window import Roi, Window


class FrameTensors(NamedTuple):
    """Pixel-independent tensors of a frame, in the frame's dtype unless marked float64.

    S sources, M orientations (phi steps x mosaic domains, padded to a bucket of
    :func:`orientation_bucket` with copies of the first, weighted 0), L sensor layers.
    """

    depth: torch.Tensor  # (L,) float64 layer depths, m
    par: torch.Tensor  # (S, 4) beam spot, fast, slow, normal axes along each incident dir.
    perp: torch.Tensor  # (S, 4, 3) the same, perpendicular to each incident direction
    odet_par: torch.Tensor  # (4,) beam spot, fast, slow, normal axes . normal axis
    incident: torch.Tensor  # (S, 3) incident unit vectors
    inv_lambda: torch.Tensor  # (S,) 1/wavelength, 1/m
    e_in: torch.Tensor  # (S, 3) polarization E direction of each source
    b_in: torch.Tensor  # (S, 3) polarization B direction of each source
    cells_lambda: torch.Tensor  # (S, 3, 3M) a, b, c of each orientation (columns) / lambda_s
    source_shift: torch.Tensor  # (S, 3M) a, b, c . (i_0 - i_s) / lambda_s
    recip: torch.Tensor  # (3, 3) a*, b*, c* (rows), 1/A
    sf_values: torch.Tensor  # structure-factor table (padding included), or (1,) zeros
    scale: torch.Tensor  # () r_e^2 x fluence / steps, m^2 photons/m^2
    background: torch.Tensor  # () C's I_bg before the final scale
    omega_num: torch.Tensor  # () pixel_size^2 x close_distance, m^3
    mu: torch.Tensor  # () sensor attenuation, 1/m
    step_mu: torch.Tensor  # () layer thickness x mu
    kahn_factor: torch.Tensor  # () polarization K
    dmin: torch.Tensor  # () resolution limit, m (0: none)
    fudge: torch.Tensor  # () shape-transform fudge factor
    axes64: torch.Tensor  # (4, 3) float64 beam spot, fast, slow, normal axes (curved detector)
    spot64: torch.Tensor  # (3,) float64 distance x beam direction (curved detector), m
    distance64: torch.Tensor  # () float64 sample-detector distance (curved detector), m
    ns: torch.Tensor  # (2, 3) cells Na, Nb, Nc; the same x pi
    shape_n: torch.Tensor  # (3,) NaNbNc, its square, NaNbNc x the round shape's norm
    orientation_weight: torch.Tensor  # (M,) 1 for each orientation, 0 for bucket padding


@dataclass(frozen=True)
class Structure:
    """The static part of a frame: the Python values a compiled graph is specialised on.

    Only counts and switches: every value an experiment varies from frame to frame (cell,
    orientation, N, mosaic spread, wavelength, distance, fluence, water) is a tensor of
    :class:`FrameTensors`, and the one count that varies (orientations) is padded to
    buckets, so a varied dataset compiles one graph per bucket (of N, a graph keeps only
    which axes have more than one cell)."""

    layers: int
    oversample: int
    sources: int
    orientations: int  # the bucket: orientation_weight's length
    shape: CrystalShape
    many_cells: tuple[bool, bool, bool]  # per axis N > 1 (square shape), else all False
    nopolar: bool
    kahn: bool  # polarization != 0
    oversample_polar: bool
    oversample_omega: bool
    oversample_thick: bool
    thick: bool
    point_pixel: bool
    curved: bool
    dmin: bool
    sf_mode: str  # "const", "nearest", "tricubic"
    sf_bounds: tuple[int, ...]  # h_min, h_max, k_min, k_max, l_min, l_max, hkls
    default_F: float


def orientation_bucket(n: int) -> int:
    """Orientations a frame of ``n`` computes: the least of 1, 2, 3, 4, 6, 8, 12, 16, 24, ...
    (powers of two and 1.5 x them) not below ``n``, so at most a third is padding."""
    power = 1
    while n > power:
        if power >= 2 and n <= power + power // 2:
            return power + power // 2
        power *= 2
    return power


@dataclass(frozen=True, eq=False)
class FrameSetup:
    """Pixel-independent state of one frame, on ``device`` in ``dtype``; immutable."""

    experiment: Experiment
    plan: FramePlan  # the torch-free numbers the tensors were built from
    detector: DetectorGeometry
    lattice: Lattice
    dtype: torch.dtype
    device: torch.device
    oversample: int
    sensor: Sensor
    n_sources: int
    n_orientations: int  # phi steps x mosaic domains
    steps: int  # sources x orientations x oversample^2, C's normaliser
    shape: CrystalShape
    interpolate: bool
    fluence: float
    background: float  # C's I_bg, per pixel before the final scale
    dmin_m: float
    roi: Roi  # half-open pixel bounds of the region of interest
    sf_table: StructureFactorTable
    structure: Structure
    tensors: FrameTensors
    pixel_mask: np.ndarray | None = None  # -mask: bool (slow, fast), False = not rendered

    def skipped(self, window: Window) -> np.ndarray | None:
        """Pixels of ``window`` (bool, its shape) that ``-mask`` skips inside the ROI, as C
        leaves them: at 0, and out of the sum, mean and rms; None without a mask."""
        if self.pixel_mask is None:
            return None
        skip = ~self.pixel_mask[window.slow0 : window.slow1, window.fast0 : window.fast1]
        in_roi = self.roi.part_of(window)
        return skip if in_roi is None else skip & in_roi

    @property
    def subpixel_size(self) -> float:
        """Sub-pixel size, m."""
        return self.detector.pixel_size / self.oversample

    @property
    def samples(self) -> int:
        """Samples of the frame's ROI: pixels x layers x sub-pixels x sources x orientations."""
        return self.roi.pixels * self.steps * self.sensor.layers
