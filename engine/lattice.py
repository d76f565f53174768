"""Crystal lattice set-up: real and reciprocal cell vectors, orientation and crystal size.

Reproduces C nanoBragg's construction (cell -> default reciprocal orientation -> misset ->
real-space vectors rebuilt from cross products) so that the cell vectors equal the ones
it prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine import cvec as cv
from engine.errors import InputError
from engine.geometry import RTD, rotate_xyz
from engine.model import Crystal

#: Largest cell count ``-xtal_size`` may give, and largest automatic oversampling.
MAX_CELLS = 10**9
MAX_AUTO_OVERSAMPLE = 256


@dataclass(frozen=True)
class Lattice:
    """Oriented unit cell (phi = 0, no mosaic) and crystal size.

    ``a_len_m`` etc. are C's ``a[0]``: the magnitude of the metre vector, computed as C does
    (they decide the cell counts and the automatic oversampling).
    """

    a: np.ndarray  # real-space cell vectors, metres
    b: np.ndarray
    c: np.ndarray
    a_star: np.ndarray  # reciprocal vectors, 1/Angstrom
    b_star: np.ndarray
    c_star: np.ndarray
    volume_A3: float
    na: int
    nb: int
    nc: int
    a_len_m: float = 0.0
    b_len_m: float = 0.0
    c_len_m: float = 0.0

    @property
    def cell_parameters(self) -> tuple[float, float, float, float, float, float]:
        """a, b, c (Angstrom) and alpha, beta, gamma (degrees) of the oriented cell."""
        a, b, c = (cv.scale(cv.vec(v), 1e10) for v in (self.a, self.b, self.c))
        la, lb, lc = (cv.magnitude(v) for v in (a, b, c))

        def ang(u: cv.Vec, v: cv.Vec, lu: float, lv: float) -> float:
            return math.degrees(math.acos(max(-1.0, min(1.0, cv.dot(u, v) / lu / lv))))

        return la, lb, lc, ang(b, c, lb, lc), ang(a, c, la, lc), ang(a, b, la, lb)

    @property
    def size_m(self) -> tuple[float, float, float]:
        """C's ``xtalsize_a/b/c``: ``a[0]*Na`` etc., metres."""
        return (self.a_len_m * self.na, self.b_len_m * self.nb, self.c_len_m * self.nc)


def _reciprocal_from_cell(cell: tuple[float, ...]) -> tuple[cv.Vec, cv.Vec, cv.Vec, cv.Vec, float]:
    """C's default orientation of a user cell: a*, b*, c* (1/A), the edges (A) and V_cell."""
    a, b, c, al, be, ga = cell
    if a <= 0:
        raise InputError("-cell", f"cell edge a must be > 0 Angstrom, got {a}")
    b = b if b > 0 else a
    c = c if c > 0 else a
    al = al / RTD if al > 0 else math.pi / 2
    be = be / RTD if be > 0 else math.pi / 2
    ga = ga / RTD if ga > 0 else math.pi / 2
    aavg = (al + be + ga) / 2
    skew = abs(math.sin(aavg) * math.sin(aavg - al) * math.sin(aavg - be) * math.sin(aavg - ga))
    v_cell = 2.0 * a * b * c * math.sqrt(skew)
    if v_cell <= 0.0:
        raise InputError("-cell", f"impossible unit cell {cell}: volume {v_cell:g} A^3")
    v_star = 1.0 / v_cell
    as_, bs, cs = (
        b * c * math.sin(al) * v_star,
        c * a * math.sin(be) * v_star,
        a * b * math.sin(ga) * v_star,
    )
    cos_as = (math.cos(be) * math.cos(ga) - math.cos(al)) / (math.sin(be) * math.sin(ga))
    cos_bs = (math.cos(ga) * math.cos(al) - math.cos(be)) / (math.sin(ga) * math.sin(al))
    cos_gs = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    sin_gs = c * v_star / as_ / bs
    sin_gs = max(-1.0, min(1.0, sin_gs))
    cos_as = 1.0 if cos_as * cos_as > 1.0 else cos_as
    cos_bs = 1.0 if cos_bs * cos_bs > 1.0 else cos_bs
    cos_gs = 1.0 if cos_gs * cos_gs > 1.0 else cos_gs
    a_star = (as_, 0.0, 0.0)
    b_star = (bs * cos_gs, bs * sin_gs, 0.0)
    c_star = (
        cs * cos_bs,
        cs * (cos_as - cos_bs * cos_gs) / sin_gs,
        cs * v_cell / (a * b * c * sin_gs),
    )
    return a_star, b_star, c_star, (a, b, c), v_cell


def _cell_counts(
    crystal: Crystal, lengths_m: tuple[float, float, float], beamsize_m: float | None
) -> tuple[int, int, int]:
    """C's ``Na = ceil(sample_x/a[0])`` (likewise b, c); the beam clips the y and z sizes."""
    counts = [crystal.na, crystal.nb, crystal.nc]
    if crystal.size_mm is not None:
        sizes = [x / 1000 for x in crystal.size_mm]  # C: atof(mm)/1000
        if beamsize_m is not None and beamsize_m >= 0:
            sizes[1], sizes[2] = min(sizes[1], beamsize_m), min(sizes[2], beamsize_m)
        for i in range(3):
            if sizes[i] > 0:
                n = sizes[i] / lengths_m[i]
                if not n <= MAX_CELLS:
                    raise InputError(
                        "-xtal_size", f"gives {n:g} unit cells along {'abc'[i]}, max {MAX_CELLS}"
                    )
                counts[i] = math.ceil(n)
    na, nb, nc = (max(1, n) for n in counts)
    return na, nb, nc


def build_lattice(
    crystal: Crystal,
    wavelength_A: float,
    misset_rad: tuple[float, float, float] | None,
    beamsize_m: float | None = None,
) -> Lattice:
    """Orient the cell (misset angles in radians, already resolved) and size the crystal.

    Transcribes C nanoBragg's order of operations in scalar float64 (see :mod:`engine.cvec`),
    so that the cell counts from ``-xtal_size`` equal C's on every machine.
    """
    user_cell = crystal.cell is not None
    edges = (0.0, 0.0, 0.0)
    v_cell_user = 0.0
    if user_cell:
        a_star, b_star, c_star, edges, v_cell_user = _reciprocal_from_cell(crystal.cell)
    if crystal.a_matrix is not None:
        m = crystal.a_matrix  # rows: x, y, z of a*, b*, c*
        lambda0_m = (crystal.a_matrix_wavelength_A or wavelength_A) / 1.0e10
        s = 1e-10 / lambda0_m
        a_star, b_star, c_star = (cv.scale((m[0][i], m[1][i], m[2][i]), s) for i in range(3))
    if misset_rad is not None:
        a_star, b_star, c_star = (
            cv.vec(rotate_xyz(v, *misset_rad)) for v in (a_star, b_star, c_star)
        )

    axb, bxc, cxa = cv.cross(a_star, b_star), cv.cross(b_star, c_star), cv.cross(c_star, a_star)
    v_star = cv.dot(a_star, bxc)
    if user_cell:
        bxc = cv.rescale(bxc, edges[0] / v_cell_user)
        cxa = cv.rescale(cxa, edges[1] / v_cell_user)
        axb = cv.rescale(axb, edges[2] / v_cell_user)
        v_star = 1.0 / v_cell_user
    if v_star == 0.0:
        raise InputError("-mat", "degenerate orientation matrix (zero reciprocal volume)")
    v_cell = 1.0 / v_star
    a, b, c = cv.scale(bxc, v_cell), cv.scale(cxa, v_cell), cv.scale(axb, v_cell)
    a_star = cv.scale(cv.cross(b, c), v_star)
    b_star = cv.scale(cv.cross(c, a), v_star)
    c_star = cv.scale(cv.cross(a, b), v_star)

    a_m, b_m, c_m = (cv.scale(v, 1e-10) for v in (a, b, c))
    lengths_m = (cv.magnitude(a_m), cv.magnitude(b_m), cv.magnitude(c_m))
    na, nb, nc = _cell_counts(crystal, lengths_m, beamsize_m)
    return Lattice(
        a=np.array(a_m),
        b=np.array(b_m),
        c=np.array(c_m),
        a_star=np.array(a_star),
        b_star=np.array(b_star),
        c_star=np.array(c_star),
        volume_A3=abs(v_cell),
        na=na,
        nb=nb,
        nc=nc,
        a_len_m=lengths_m[0],
        b_len_m=lengths_m[1],
        c_len_m=lengths_m[2],
    )


def auto_oversample(
    lattice: Lattice, wavelength_m: float, distance_m: float, pixel_m: float
) -> int:
    """C nanoBragg's automatic sub-pixel count: ceil(3 * crystal size / reciprocal pixel size).

    Pass C's own values: ``wavelength_m = wavelength_A / 1e10``, the final detector distance
    and ``pixel_mm / 1000``.
    """
    xa, xb, xc = lattice.size_m
    xmax = xa
    if xmax < xb:
        xmax = xb
    if xmax < xc:
        xmax = xc
    reciprocal_pixel = wavelength_m * distance_m / pixel_m
    if reciprocal_pixel == 0.0 or not math.isfinite(reciprocal_pixel):
        raise InputError(
            "-distance",
            f"the detector distance along the beam is {distance_m:g} m (from -distance, "
            "-pix0_vector or the detector rotations); give -oversample N to render anyway",
        )
    x = 3.0 * xmax / reciprocal_pixel
    if not x <= MAX_AUTO_OVERSAMPLE:
        raise InputError(
            "-oversample",
            f"C's automatic choice would be {x:.4g} sub-pixels per pixel edge (crystal "
            f"{xmax * 1e6:.3g} um, reciprocal pixel {reciprocal_pixel * 1e6:.3g} um); "
            f"give -oversample N (at most 256)",
        )
    return max(1, math.ceil(x))
