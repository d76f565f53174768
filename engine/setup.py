"""Per-frame set-up: everything the kernel needs that does not depend on the pixel.

``prepare_frame`` turns an :class:`~engine.model.Experiment` into a :class:`FrameSetup`
of small tensors (sources, rotated cells for every phi step and mosaic domain, detector
axes decomposed about each incident direction) on the target device and dtype. It is
computed once per frame and reused by every window of that frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.errors import InputError
from engine.geometry import RTD, DetectorGeometry, detector_geometry, rotate_axis
from engine.lattice import Lattice, auto_oversample, build_lattice
from engine.model import CrystalShape, Experiment
from engine.scan import phi_angles_deg
from engine.structure_factors import StructureFactorTable, constant, read_fdump, read_hkl

R_E_SQR = 7.94079248018965e-30  # m^2, Thomson cross-section
AVOGADRO = 6.02214179e23
WATER_F = 2.57
WATER_MW = 18.0


@dataclass(frozen=True)
class Sensor:
    """Detector sensor layers: count, layer thickness (m) and attenuation coefficient (1/m)."""

    layers: int
    step: float
    mu: float

    @property
    def thick(self) -> bool:
        return self.step > 0.0


def resolve_sensor(exp: Experiment) -> Sensor:
    """Sensor layering with C nanoBragg's automatic rules."""
    det = exp.detector
    thick = det.thick_um * 1e-6
    mu = -1.0
    if det.absorption_um is not None:
        if det.absorption_um == 0.0 or math.isinf(det.absorption_um):
            thick, mu = 0.0, 0.0
        else:
            mu = 1.0 / (det.absorption_um * 1e-6)
    steps, step = (-1 if det.thicksteps is None else det.thicksteps), -1.0
    if steps <= 0:
        if thick > 0.0:
            steps, step = 2, thick / 2
        else:
            steps, thick, step = 1, 0.0, 0.0
    elif thick > 0.0:
        steps = max(steps, 2)
        step = thick / (steps - 1)
    else:
        thick = 0.5e-6
        step = thick / steps
    if thick <= 0.0 or step <= 0.0 or steps <= 0:
        steps, thick, step = 1, 0.0, 0.0
    if thick > 0.0 and mu < 0.0:
        mu = 1.0 / thick
    return Sensor(layers=steps, step=step, mu=mu)


def resolve_mosaic(exp: Experiment) -> tuple[float, int]:
    """Mosaic spread (radians) and number of domains, with C's automatic rules."""
    spread = exp.crystal.mosaic_spread_deg
    domains = exp.crystal.mosaic_domains
    spread = -1.0 if spread is None else spread  # C's "not given"
    domains = -1 if domains is None else domains
    if domains <= 0:
        if spread < 0.0:
            return 0.0, 1
        return spread / RTD, (1 if spread == 0.0 else 10)
    if spread <= 0.0:
        return 0.0, 1
    return spread / RTD, domains


def load_structure_factors(exp: Experiment) -> StructureFactorTable:
    """The structure-factor table: HKL file, else a C Fdump file, else default_F everywhere."""
    cr = exp.crystal
    if cr.hkl_file is not None:
        return read_hkl(cr.hkl_file, cr.default_F)
    if cr.fdump_file is not None:
        return read_fdump(cr.fdump_file)
    if cr.default_F == 0.0:
        raise InputError("-default_F", "no -hkl file and default_F is 0: every pixel would be 0")
    return constant(cr.default_F)


@dataclass
class FrameSetup:
    """Pixel-independent state of one frame, as tensors on ``device`` in ``dtype``."""

    experiment: Experiment
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
    roi: tuple[int, int, int, int]  # inclusive fast min, fast max, slow min, slow max
    sf_table: StructureFactorTable
    t: dict[str, torch.Tensor] = field(default_factory=dict)  # small tensors (see below)

    @property
    def subpixel_size(self) -> float:
        return self.detector.pixel_size / self.oversample

    def sf_values(self) -> torch.Tensor:
        """The structure-factor table on the device, converted once per frame."""
        values = self.t.get("sf_values")
        if values is None:
            values = self.t["sf_values"] = self.sf_table.to_tensor(self.dtype, self.device)
        return values


def _orientations(exp: Experiment, lattice: Lattice, geo: DetectorGeometry) -> np.ndarray:
    """Real-space cell vectors (metres) for every phi step x mosaic domain: (M, 3, 3) rows a,b,c."""
    from engine.orientation import mosaic_umats

    spread, domains = resolve_mosaic(exp)
    umats = (
        mosaic_umats(spread, domains, -exp.crystal.mosaic_seed) if spread > 0.0 else np.eye(3)[None]
    )
    out = []
    for phi_deg in phi_angles_deg(exp.scan):
        phi = phi_deg / RTD
        cell = [lattice.a, lattice.b, lattice.c]
        if phi != 0.0:
            cell = [rotate_axis(v, geo.spindle, phi) for v in cell]
        for u in umats:
            out.append([u @ v for v in cell] if spread > 0.0 else cell)
    return np.array(out, dtype=float)


def _sources(exp: Experiment, geo: DetectorGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Incident unit vectors (S, 3) and wavelengths (S,) in metres."""
    from engine.sources import beam_sources

    beam = exp.beam
    if beam.sources:
        directions = np.array([_unit(np.array(s.position, dtype=float)) for s in beam.sources])
        return -directions, np.array([s.wavelength_A * 1e-10 for s in beam.sources])
    src = beam_sources(beam, geo.beam, geo.polar)
    incident = -np.asarray(src.directions, dtype=float)
    return incident, np.asarray(src.wavelengths_m, dtype=float)


def prepare_frame(
    exp: Experiment, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> FrameSetup:
    """Compute the per-frame set-up of ``exp`` for rendering in ``dtype`` on ``device``."""
    if dtype not in (torch.float32, torch.float64):
        raise InputError("dtype", f"must be float32 or float64, got {dtype}")
    device = torch.device(device)
    geo = detector_geometry(exp)
    misset = exp.crystal.misset_deg
    misset_rad = tuple(x / RTD for x in misset) if misset is not None else None
    lattice = build_lattice(
        exp.crystal, exp.beam.wavelength_A, misset_rad, exp.beam.beamsize_mm / 1000.0
    )
    lam0 = exp.beam.wavelength_A / 1e10  # C: lambda0 = atof(A)/1e10
    oversample = exp.sampling.oversample or auto_oversample(
        lattice, lam0, geo.distance, geo.pixel_size
    )
    sensor = resolve_sensor(exp)
    incident, lambdas = _sources(exp, geo)
    cells = _orientations(exp, lattice, geo)
    sf = load_structure_factors(exp)
    na, nb, nc = lattice.na, lattice.nb, lattice.nc
    interpolate = exp.crystal.interpolate
    if interpolate is None:
        interpolate = na <= 2 or nb <= 2 or nc <= 2
    if sf.hkls == 0:
        interpolate = False

    water = exp.sampling.water_um * 1e-6
    fluence = exp.beam.fluence
    background = WATER_F**2 * R_E_SQR * fluence * water**3 * 1e6 * AVOGADRO / WATER_MW

    roi = exp.sampling.roi
    fpix, spix = geo.fast_pixels, geo.slow_pixels
    roi_t = (roi.xmin, roi.xmax, roi.ymin, roi.ymax) if roi else (0, fpix, 0, spix)

    n_src, n_orient = len(lambdas), len(cells)
    setup = FrameSetup(
        experiment=exp,
        detector=geo,
        lattice=lattice,
        dtype=dtype,
        device=device,
        oversample=oversample,
        sensor=sensor,
        n_sources=n_src,
        n_orientations=n_orient,
        steps=n_src * n_orient * oversample * oversample,
        shape=exp.crystal.shape,
        interpolate=bool(interpolate),
        fluence=fluence,
        background=background,
        dmin_m=exp.sampling.dmin_A * 1e-10,
        roi=roi_t,
        sf_table=sf,
    )
    setup.t.update(_kernel_tensors(setup, incident, lambdas, cells))
    if setup.interpolate:
        from engine.kernel import interpolation_in_range

        setup.interpolate = interpolation_in_range(setup)
    return setup


def _kernel_tensors(
    setup: FrameSetup, incident: np.ndarray, lambdas: np.ndarray, cells: np.ndarray
) -> dict[str, torch.Tensor]:
    """Decompose the detector about each incident direction (float64), then cast.

    The pixel position is ``r = r0 + dF*fdet + dS*sdet + dO*odet`` with ``r0`` the direct-beam
    spot, so that near the beam every term is small. Each term is split into its component
    along the incident direction ``i`` and perpendicular to it; the kernel forms
    ``d - i`` from the perpendicular part without cancelling nearly equal numbers.
    """
    geo = setup.detector
    r0 = geo.pix0 + geo.fbeam * geo.fdet + geo.sbeam * geo.sdet
    basis = np.stack([r0, geo.fdet, geo.sdet, geo.odet])  # (4, 3)
    par = basis @ incident.T  # (4, S)
    perp = basis[None, :, :] - par.T[:, :, None] * incident[:, None, :]  # (S, 4, 3)
    polar_axis = geo.polar
    b_in = np.array([_unit(np.cross(polar_axis, i)) for i in incident])
    e_in = np.array([_unit(np.cross(i, bb)) for i, bb in zip(incident, b_in, strict=True)])
    cell_rows = cells.reshape(-1, 3)  # (M*3, 3): a, b, c of each orientation
    ai = np.einsum("mj,sj->sm", cell_rows, incident)  # (S, M*3)
    lat = setup.lattice
    recip = np.stack([lat.a_star, lat.b_star, lat.c_star])  # 1/A
    kw = {"dtype": setup.dtype, "device": setup.device}
    return {
        "incident": torch.tensor(incident, **kw),
        "inv_lambda": torch.tensor(1.0 / lambdas, **kw),
        "par": torch.tensor(par.T, **kw),  # (S, 4): r0, f, s, o components along i
        "perp": torch.tensor(perp, **kw),  # (S, 4, 3)
        "e_in": torch.tensor(e_in, **kw),
        "b_in": torch.tensor(b_in, **kw),
        "cells": torch.tensor(cell_rows.T, **kw),  # (3, M*3)
        "cells_dot_incident": torch.tensor(ai, **kw),  # (S, M*3)
        "recip": torch.tensor(recip, **kw),
        "odet_par": torch.tensor(basis @ geo.odet, **kw),  # r0.o, f.o, s.o, o.o
    }


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.zeros(3)
