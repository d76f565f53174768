"""Crystal lattice set-up: real and reciprocal cell vectors, orientation and crystal size.

Reproduces C nanoBragg's construction (cell -> default reciprocal orientation -> misset ->
real-space vectors rebuilt from cross products) so that the cell vectors equal the ones
it prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import InputError
from engine.geometry import RTD, rotate_xyz
from engine.model import Crystal


@dataclass(frozen=True)
class Lattice:
    """Oriented unit cell (phi = 0, no mosaic) and crystal size."""

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

    @property
    def cell_parameters(self) -> tuple[float, float, float, float, float, float]:
        """a, b, c (Angstrom) and alpha, beta, gamma (degrees) of the oriented cell."""
        a, b, c = (v * 1e10 for v in (self.a, self.b, self.c))
        la, lb, lc = (float(np.linalg.norm(v)) for v in (a, b, c))

        def ang(u: np.ndarray, v: np.ndarray, lu: float, lv: float) -> float:
            return math.degrees(math.acos(max(-1.0, min(1.0, float(np.dot(u, v)) / lu / lv))))

        return la, lb, lc, ang(b, c, lb, lc), ang(a, c, la, lc), ang(a, b, la, lb)

    @property
    def size_m(self) -> tuple[float, float, float]:
        return (
            float(np.linalg.norm(self.a)) * self.na,
            float(np.linalg.norm(self.b)) * self.nb,
            float(np.linalg.norm(self.c)) * self.nc,
        )


def _reciprocal_from_cell(cell: tuple[float, ...]) -> tuple[np.ndarray, ...]:
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
    a_star = np.array([as_, 0.0, 0.0])
    b_star = np.array([bs * cos_gs, bs * sin_gs, 0.0])
    c_star = np.array(
        [
            cs * cos_bs,
            cs * (cos_as - cos_bs * cos_gs) / sin_gs,
            cs * v_cell / (a * b * c * sin_gs),
        ]
    )
    return a_star, b_star, c_star, np.array([a, b, c]), v_cell


def build_lattice(
    crystal: Crystal, wavelength_A: float, misset_rad: tuple[float, float, float] | None
) -> Lattice:
    """Orient the cell (misset angles in radians, already resolved) and size the crystal."""
    user_cell = crystal.cell is not None
    edges = None
    v_cell_user = 0.0
    if user_cell:
        a_star, b_star, c_star, edges, v_cell_user = _reciprocal_from_cell(crystal.cell)
    if crystal.a_matrix is not None:
        m = np.array(crystal.a_matrix, dtype=float)  # rows: x, y, z of a*, b*, c*
        lam = crystal.a_matrix_wavelength_A or wavelength_A
        scale = 1.0 / lam
        a_star, b_star, c_star = m[:, 0] * scale, m[:, 1] * scale, m[:, 2] * scale
    if misset_rad is not None:
        a_star, b_star, c_star = (rotate_xyz(v, *misset_rad) for v in (a_star, b_star, c_star))

    axb, bxc, cxa = np.cross(a_star, b_star), np.cross(b_star, c_star), np.cross(c_star, a_star)
    v_star = float(np.dot(a_star, bxc))
    if user_cell:
        bxc = bxc * (edges[0] / v_cell_user / np.linalg.norm(bxc))
        cxa = cxa * (edges[1] / v_cell_user / np.linalg.norm(cxa))
        axb = axb * (edges[2] / v_cell_user / np.linalg.norm(axb))
        v_star = 1.0 / v_cell_user
    if v_star == 0.0:
        raise InputError("-mat", "degenerate orientation matrix (zero reciprocal volume)")
    v_cell = 1.0 / v_star
    a, b, c = bxc * v_cell, cxa * v_cell, axb * v_cell
    a_star, b_star, c_star = (
        np.cross(b, c) * v_star,
        np.cross(c, a) * v_star,
        np.cross(a, b) * v_star,
    )

    na, nb, nc = crystal.na, crystal.nb, crystal.nc
    if crystal.size_um is not None:
        sx, sy, sz = (x * 1e-6 for x in crystal.size_um)
        lengths = [float(np.linalg.norm(v)) * 1e-10 for v in (a, b, c)]
        if sx > 0:
            na = math.ceil(sx / lengths[0])
        if sy > 0:
            nb = math.ceil(sy / lengths[1])
        if sz > 0:
            nc = math.ceil(sz / lengths[2])
    na, nb, nc = max(1, na), max(1, nb), max(1, nc)
    return Lattice(
        a=a * 1e-10,
        b=b * 1e-10,
        c=c * 1e-10,
        a_star=a_star,
        b_star=b_star,
        c_star=c_star,
        volume_A3=abs(v_cell),
        na=na,
        nb=nb,
        nc=nc,
    )


def auto_oversample(
    lattice: Lattice, wavelength_m: float, distance_m: float, pixel_m: float
) -> int:
    """C nanoBragg's automatic sub-pixel count: ceil(3 * crystal size / reciprocal pixel size)."""
    reciprocal_pixel = wavelength_m * distance_m / pixel_m
    n = math.ceil(3.0 * max(lattice.size_m) / reciprocal_pixel)
    return max(1, n)
