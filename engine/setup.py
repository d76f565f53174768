"""Per-frame set-up: everything the kernel needs that does not depend on the pixel.

``prepare_frame`` turns an :class:`~engine.model.Experiment` into a frozen
:class:`~engine.frame.FrameSetup` of small named tensors (sources, rotated cells for every
phi step and mosaic domain, detector axes decomposed about each incident direction) on the
target device and dtype, built from the frame's torch-free :func:`engine.plan.plan`. It is
computed once per frame, with no call into the kernel, and reused by every window of that frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from engine.errors import InputError
from engine.frame import FrameSetup, FrameTensors, Structure, orientation_bucket
from engine.geometry import DetectorGeometry
from engine.lattice import Lattice
from engine.model import CrystalShape, Experiment
from engine.physics import (
    R_E_SQR,
    in_interpolation_range,
    sample_geometry,
    shape_constants,
    subpixel_coordinates,
)
from engine.plan import Sensor, plan, resolve_mosaic, resolve_sensor
from engine.precision import torch_dtype
from engine.structure_factors import StructureFactorTable, constant, read_fdump, read_hkl
from engine.window import Window, roi_window

__all__ = ["FrameSetup", "Sensor", "prepare_frame", "resolve_mosaic", "resolve_sensor"]

AVOGADRO = 6.02214179e23
WATER_F = 2.57
WATER_MW = 18.0


def load_structure_factors(exp: Experiment) -> StructureFactorTable:
    """The structure-factor table: HKL file, else a C Fdump file, else default_F everywhere."""
    cr = exp.crystal
    if cr.hkl_file is not None:
        return read_hkl(cr.hkl_file, cr.default_F)
    if cr.fdump_file is not None:
        return read_fdump(cr.fdump_file, cr.default_F)
    if cr.default_F == 0.0:
        raise InputError("-default_F", "no -hkl file and default_F is 0: every pixel would be 0")
    return constant(cr.default_F)


def prepare_frame(
    exp: Experiment, dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu"
) -> FrameSetup:
    """Compute the per-frame set-up of ``exp`` for rendering in ``dtype`` on ``device``."""
    dtype = torch_dtype(dtype)
    device = torch.device(device)
    frame = plan(exp)
    geo, lattice, sensor, oversample = frame.detector, frame.lattice, frame.sensor, frame.oversample
    incident, lambdas = frame.sources
    cells = frame.cells
    sf = load_structure_factors(exp)
    interpolate = exp.crystal.interpolate
    if interpolate is None:
        interpolate = min(lattice.na, lattice.nb, lattice.nc) <= 2
    water = exp.sampling.water_um * 1e-6
    fluence = exp.beam.fluence
    background = WATER_F**2 * R_E_SQR * fluence * water**3 * 1e6 * AVOGADRO / WATER_MW
    n_src, n_orient = len(lambdas), len(cells)
    steps = frame.steps
    scalars = {
        "scale": R_E_SQR * fluence / steps,
        "background": background,
        "omega_num": geo.pixel_size**2 * geo.close_distance,
        "mu": sensor.mu,
        "step_mu": sensor.step * sensor.mu,
        "kahn_factor": exp.beam.polarization,
        "dmin": exp.sampling.dmin_A * 1e-10,
        "fudge": exp.crystal.fudge,
    }
    tensors = _frame_tensors(
        geo, lattice, sensor, sf, incident, lambdas, cells, scalars, dtype, device
    )
    roi = roi_window(exp)
    st = _structure(
        exp, geo, lattice, sensor, sf, oversample, n_src, len(tensors.orientation_weight)
    )
    if interpolate and sf.hkls:
        tricubic = dataclasses.replace(st, sf_mode="tricubic")
        if _interpolation_in_range(tricubic, tensors, sf, geo, roi):
            st = tricubic
    return FrameSetup(
        experiment=exp,
        plan=frame,
        detector=geo,
        lattice=lattice,
        dtype=dtype,
        device=device,
        oversample=oversample,
        sensor=sensor,
        n_sources=n_src,
        n_orientations=n_orient,
        steps=steps,
        shape=exp.crystal.shape,
        interpolate=st.sf_mode == "tricubic",
        fluence=fluence,
        background=background,
        dmin_m=scalars["dmin"],
        roi=roi,
        sf_table=sf,
        structure=st,
        tensors=tensors,
        pixel_mask=_pixel_mask(exp, geo),
    )


def _pixel_mask(exp: Experiment, geo: DetectorGeometry) -> np.ndarray | None:
    """The -mask pixels (bool (slow, fast), False = not rendered), or None."""
    path = exp.sampling.mask_file
    if path is None:
        return None
    from engine.smv_input import read_pixel_mask

    mask = read_pixel_mask(path)
    if mask.shape != (geo.slow_pixels, geo.fast_pixels):
        raise InputError(
            "-mask",
            f"{path} is {mask.shape[1]}x{mask.shape[0]} pixels but the detector is "
            f"{geo.fast_pixels}x{geo.slow_pixels}",
        )
    return mask


def _structure(
    exp: Experiment,
    geo: DetectorGeometry,
    lat: Lattice,
    sensor: Sensor,
    table: StructureFactorTable,
    oversample: int,
    sources: int,
    orientations: int,
) -> Structure:
    """The static part of the frame (what a compiled graph is specialised on); structure
    factors by nearest lookup (or default_F everywhere when no table was read)."""
    samp = exp.sampling
    bounds = (table.h_min, table.h_max, table.k_min, table.k_max, table.l_min, table.l_max)
    sf_mode = "nearest" if table.hkls else "const"
    return Structure(
        layers=sensor.layers,
        oversample=oversample,
        sources=sources,
        orientations=orientations,
        shape=exp.crystal.shape,
        many_cells=_many_cells(exp.crystal.shape, lat),
        nopolar=exp.beam.nopolar,
        kahn=exp.beam.polarization != 0.0,
        oversample_polar=samp.oversample_polar,
        oversample_omega=samp.oversample_omega,
        oversample_thick=samp.oversample_thick,
        thick=sensor.thick,
        point_pixel=geo.point_pixel,
        curved=geo.curved,
        dmin=samp.dmin_A > 0.0,
        sf_mode=sf_mode,
        sf_bounds=(*bounds, table.hkls) if table.hkls else (),
        default_F=float(table.default_F),
    )


def _many_cells(shape: CrystalShape, lat: Lattice) -> tuple[bool, bool, bool]:
    """What a compiled graph keeps of the cells: per axis whether N > 1 (square shape: an
    axis of one cell contributes 1); nothing for the other shapes (N is a tensor only)."""
    if shape is not CrystalShape.SQUARE:
        return (False, False, False)
    return (lat.na > 1, lat.nb > 1, lat.nc > 1)


def _padded_orientations(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells (M, 3, 3) padded to :func:`orientation_bucket` (M) with copies of the first
    orientation, and the weights (1 real, 0 padding): a padded sample adds exactly 0."""
    count = max(1, len(cells))
    bucket = orientation_bucket(count)
    cells = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    pad = np.repeat(cells[:1], bucket - len(cells), axis=0)
    weight = np.zeros(bucket)
    weight[: len(cells)] = 1.0
    return np.concatenate([cells, pad]), weight


def _frame_tensors(
    geo: DetectorGeometry,
    lattice: Lattice,
    sensor: Sensor,
    sf: StructureFactorTable,
    incident: np.ndarray,
    lambdas: np.ndarray,
    cells: np.ndarray,
    scalars: dict[str, float],
    dtype: torch.dtype,
    device: torch.device,
) -> FrameTensors:
    """Decompose the detector about each incident direction (float64), then cast.

    The pixel position is ``r = r0 + dF*fdet + dS*sdet + dO*odet`` with ``r0`` the direct-beam
    spot, so that near the beam every term is small. Each term is split into its component
    along the incident direction ``i`` and perpendicular to it; the kernel forms
    ``d - i`` from the perpendicular part without cancelling nearly equal numbers.
    """
    basis = np.stack([geo.beam_spot, geo.fdet, geo.sdet, geo.odet])  # (4, 3)
    par = basis @ incident.T  # (4, S)
    perp = basis[None, :, :] - par.T[:, :, None] * incident[:, None, :]  # (S, 4, 3)
    b_in = np.array([_unit(np.cross(geo.polar, i)) for i in incident])
    e_in = np.array([_unit(np.cross(i, bb)) for i, bb in zip(incident, b_in, strict=True)])
    cells, weight = _padded_orientations(cells)
    cell_rows = cells.reshape(-1, 3)  # (M*3, 3): a, b, c of each orientation
    # h of source s = (d - i_0) . a / lambda_s + a . (i_0 - i_s) / lambda_s: the kernel forms
    # d - i_0 once per pixel, the second term is this per-source constant (0 for source 0)
    shift = np.einsum("mj,sj->sm", cell_rows, incident[:1] - incident) / lambdas[:, None]
    ns, shape_n = shape_constants(lattice.na, lattice.nb, lattice.nc)
    recip = np.stack([lattice.a_star, lattice.b_star, lattice.c_star])  # 1/A
    kw = {"dtype": dtype, "device": device}
    k64 = {"dtype": torch.float64, "device": device}
    sf_values = sf.to_tensor(dtype, device) if sf.hkls else torch.zeros(1, **kw)
    return FrameTensors(
        depth=torch.tensor([i * sensor.step for i in range(sensor.layers)], **k64),
        par=torch.tensor(par.T, **kw),
        perp=torch.tensor(perp, **kw),
        odet_par=torch.tensor(basis @ geo.odet, **kw),
        incident=torch.tensor(incident, **kw),
        inv_lambda=torch.tensor(1.0 / lambdas, **kw),
        e_in=torch.tensor(e_in, **kw),
        b_in=torch.tensor(b_in, **kw),
        cells_lambda=torch.tensor(cell_rows.T[None] / lambdas[:, None, None], **kw),
        source_shift=torch.tensor(shift, **kw),
        recip=torch.tensor(recip, **kw),
        sf_values=sf_values,
        **{name: torch.tensor(value, **kw) for name, value in scalars.items()},
        axes64=torch.tensor(basis, **k64),
        spot64=torch.tensor(geo.distance * geo.beam, **k64),
        distance64=torch.tensor(geo.distance, **k64),
        ns=torch.tensor(ns, **kw),
        shape_n=torch.tensor(shape_n, **kw),
        orientation_weight=torch.tensor(weight, **kw),
    )


def _interpolation_in_range(
    st: Structure,
    tensors: FrameTensors,
    table: StructureFactorTable,
    geo: DetectorGeometry,
    roi: Window,
) -> bool:
    """True if every sample of the frame's ROI lies inside the tricubic interpolation range.

    C nanoBragg turns interpolation off for the rest of a run at the first sample outside
    the table; deciding it for the whole frame up front keeps windows independent.
    """
    os_, device = st.oversample, tensors.par.device
    size = geo.pixel_size / os_
    cols = roi.fast1 - roi.fast0
    per_row = max(1, cols * st.sources * st.orientations * st.layers * os_ * os_)
    step = max(1, (1 << 22) // per_row)
    gf = subpixel_coordinates(roi.fast0, cols, os_, size, geo.fbeam).to(device)
    with torch.no_grad():
        for r in range(roi.slow0, roi.slow1, step):
            n = min(roi.slow1, r + step) - r
            gs = subpixel_coordinates(r, n, os_, size, geo.sbeam).to(device)
            smp = sample_geometry(st, tensors, gs, gf)
            if not bool(in_interpolation_range(table, smp.h, smp.k, smp.l).all()):
                return False
    return True


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.zeros(3)
