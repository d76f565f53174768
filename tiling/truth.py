"""Ground truth of a job's frames: what was rendered, in nanoBragg's and in DIALS's terms.

:func:`frame_truth` resolves frame k's experiment (:meth:`tiling.job.JobSpec.frame_experiment`)
into a :class:`FrameTruth`: the drawn or tabled values, the oriented crystal, the beam, the
detector and the spindle in nanoBragg's lab frame (SI, as C prints them), and the same as dxtbx
models (beam, detector, crystal with its A = UB matrix, goniometer and scan for rotation
frames) in dxtbx's lab frame. The client stores it when it plans the frame, so a partial store
carries the truth of its finished frames; :func:`write_truth_expt` and
:func:`write_truth_jsonl` write a store's truths. Torch-free.

Lab frames. nanoBragg's beam travels along ``beam`` (+x for MOSFLM) and the crystal turns
about ``spindle``; dxtbx's beam travels along -z and a single-axis goniometer turns about +x.
The rotation taking one to the other maps beam -> -z and the spindle (its part normal to the
beam) -> +x; for MOSFLM it is (x, y, z) -> (z, y, -x), which puts the first pixel's corner at
the DIALS_ORIGIN C nanoBragg writes into its SMV headers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine.geometry import RTD, rotate_axis
from engine.plan import FramePlan, plan

if TYPE_CHECKING:
    from tiling.job import JobSpec
    from tiling.store import StoreReader

__all__ = ["FrameTruth", "frame_truth", "lab_to_dxtbx", "write_truth_expt", "write_truth_jsonl"]

Vec = tuple[float, float, float]


class FrameTruth(BaseModel):
    """What frame ``frame`` was rendered with. nanoBragg-frame vectors are unit-less or metres;
    ``dxtbx`` holds the frame's models as dxtbx serialises them (mm, Angstrom, degrees)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    frame: int = Field(ge=0)
    phi0_deg: float = Field(description="spindle angle at the frame's start, degrees")
    osc_deg: float = Field(description="rotation within the frame, degrees")
    values: dict[str, Any] = Field(description="the frame's drawn or tabled values")
    cell: tuple[float, float, float, float, float, float] = Field(
        description="a, b, c (Angstrom), alpha, beta, gamma (degrees)"
    )
    misset_deg: Vec | None = Field(description="misset about x, y, z, degrees")
    cells: tuple[int, int, int] = Field(description="unit cells along a, b, c")
    mosaic_spread_deg: float
    mosaic_domains: int
    wavelength_A: float
    fluence: float = Field(description="photons/m^2")
    flux: float = Field(description="photons/s")
    water_um: float
    distance_mm: float
    beam_center_mm: tuple[float, float] = Field(description="header X, Y (convention's), mm")
    nanobragg: dict[str, Any] = Field(description="lab vectors in nanoBragg's frame (m)")
    A_matrix: tuple[float, ...] = Field(description="dxtbx A = UB, row-major, 1/Angstrom")
    dxtbx: dict[str, Any] = Field(description="beam, detector, crystal[, goniometer, scan]")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def lab_to_dxtbx(beam: np.ndarray, spindle: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) from nanoBragg's lab frame to dxtbx's: beam -> -z, spindle -> +x."""
    b = _unit(np.asarray(beam, dtype=float))
    s = np.asarray(spindle, dtype=float) - np.dot(spindle, b) * b
    if np.linalg.norm(s) < 1e-9:  # spindle along the beam: any normal will do
        s = np.cross(b, [0.0, 1.0, 0.0] if abs(b[1]) < 0.9 else [1.0, 0.0, 0.0])
    s = _unit(s)
    source = np.stack([b, s, np.cross(b, s)], axis=1)
    target = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]).T
    return target @ source.T


def _list(v: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(v).ravel()]


def _real_space(frame: FramePlan, m: np.ndarray, rotating: bool) -> np.ndarray:
    """Rows a, b, c (Angstrom, dxtbx frame) at phi = 0 (rotating) or at the frame's phi0."""
    lattice, spindle = frame.lattice, frame.detector.spindle
    cell = [np.asarray(v, dtype=float) * 1e10 for v in (lattice.a, lattice.b, lattice.c)]
    if not rotating and frame.phi0_deg != 0.0:
        cell = [rotate_axis(v, spindle, frame.phi0_deg / RTD) for v in cell]
    return np.stack([m @ v for v in cell])


def _dxtbx_beam(frame: FramePlan, m: np.ndarray) -> dict[str, Any]:
    beam, geo = frame.experiment.beam, frame.detector
    normal = np.cross(geo.beam, geo.polar)
    return {
        "direction": _list(-(m @ geo.beam)),
        "wavelength": beam.wavelength_A,
        "divergence": 0.0,
        "sigma_divergence": 0.0,
        "polarization_normal": _list(m @ _unit(normal)),
        "polarization_fraction": 0.5 * (1.0 + beam.polarization),
        "flux": beam.flux,
        "transmission": 1.0,
    }


def _panel(frame: FramePlan, m: np.ndarray) -> dict[str, Any]:
    geo = frame.detector
    pixel_mm = geo.pixel_size * 1e3
    return {
        "name": "Panel",
        "type": "SENSOR_PAD" if abs(pixel_mm - 0.172) < 1e-9 else "SENSOR_CCD",
        "fast_axis": _list(m @ geo.fdet),
        "slow_axis": _list(m @ geo.sdet),
        "origin": _list(m @ geo.pix0 * 1e3),
        "raw_image_offset": [0, 0],
        "image_size": [geo.fast_pixels, geo.slow_pixels],
        "pixel_size": [pixel_mm, pixel_mm],
        "trusted_range": [-1.0, 65535.0],
        "thickness": frame.experiment.detector.thick_um * 1e-3,
        "material": "",
        "mu": 0.0,
        "identifier": "",
        "mask": [],
        "gain": 1.0,
        "pedestal": 0.0,
        "px_mm_strategy": {"type": "SimplePxMmStrategy"},
    }


def _dxtbx_detector(frame: FramePlan, m: np.ndarray) -> dict[str, Any]:
    root = {**_panel(frame, m), "name": "", "type": "", "children": [{"panel": 0}]}
    root.update(fast_axis=[1.0, 0.0, 0.0], slow_axis=[0.0, 1.0, 0.0], origin=[0.0, 0.0, 0.0])
    return {"panels": [_panel(frame, m)], "hierarchy": root}


def _dxtbx_models(frame: FramePlan, index: int, real: np.ndarray, m: np.ndarray) -> dict:
    """The frame's dxtbx models (goniometer and scan only for a rotation frame)."""
    identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    models: dict[str, Any] = {
        "beam": _dxtbx_beam(frame, m),
        "detector": _dxtbx_detector(frame, m),
        "crystal": {
            "__id__": "crystal",
            "real_space_a": _list(real[0]),
            "real_space_b": _list(real[1]),
            "real_space_c": _list(real[2]),
            "space_group_hall_symbol": " P 1",
        },
    }
    if frame.osc_deg > 0.0:
        models["goniometer"] = {
            "rotation_axis": _list(m @ _unit(frame.detector.spindle)),
            "fixed_rotation": identity,
            "setting_rotation": identity,
        }
        models["scan"] = {
            "image_range": [index + 1, index + 1],
            "batch_offset": 0,
            "oscillation": [frame.phi0_deg, frame.osc_deg],
            "exposure_time": [frame.experiment.beam.exposure_s],
            "epochs": [0.0],
            "valid_image_ranges": {},
        }
    return models


def frame_truth(job: JobSpec, frame: int) -> FrameTruth:
    """The truth of frame ``frame`` of ``job`` (see the module docstring)."""
    exp = job.frame_experiment(frame)
    fp = plan(exp)
    geo, lattice = fp.detector, fp.lattice
    m = lab_to_dxtbx(geo.beam, geo.spindle)
    real = _real_space(fp, m, fp.osc_deg > 0.0)
    crystal = exp.crystal
    return FrameTruth(
        frame=frame,
        phi0_deg=fp.phi0_deg,
        osc_deg=fp.osc_deg,
        values=job.frame_values(frame),
        cell=lattice.cell_parameters,
        misset_deg=crystal.misset_deg,
        cells=(lattice.na, lattice.nb, lattice.nc),
        mosaic_spread_deg=fp.mosaic_spread * RTD,
        mosaic_domains=fp.mosaic_domains,
        wavelength_A=exp.beam.wavelength_A,
        fluence=exp.beam.fluence,
        flux=exp.beam.flux,
        water_um=exp.sampling.water_um,
        distance_mm=geo.distance * 1e3,
        beam_center_mm=(geo.xbeam * 1e3, geo.ybeam * 1e3),
        nanobragg={
            name: _list(getattr(geo, name))
            for name in ("pix0", "fdet", "sdet", "odet", "beam", "polar", "spindle")
        },
        A_matrix=tuple(_list(np.linalg.inv(real))),
        dxtbx=_dxtbx_models(fp, frame, real, m),
    )


def _truths(reader: StoreReader) -> list[dict[str, Any]]:
    """The store's frame truths in frame order (frames not yet planned have none)."""
    return [reader.frame_truth(k) for k in sorted(reader.truth_frames())]


def experiment_list(truths: list[dict[str, Any]]) -> dict[str, Any]:
    """A dxtbx ExperimentList (its JSON dict): one experiment per frame truth."""
    out: dict[str, Any] = {"__id__": "ExperimentList", "experiment": [], "imageset": []}
    kinds = ("beam", "detector", "goniometer", "scan", "crystal")
    for kind in kinds:
        out[kind] = []
    for truth in truths:
        models = truth["dxtbx"]
        entry: dict[str, Any] = {"__id__": "Experiment", "identifier": f"frame-{truth['frame']}"}
        for kind in kinds:
            if kind in models:
                entry[kind] = len(out[kind])
                out[kind].append(models[kind])
        out["experiment"].append(entry)
    return out


def write_truth_expt(reader: StoreReader, path: str | Path) -> int:
    """Write the store's frame truths as a dxtbx ExperimentList JSON file; returns the frame
    count. ``ExperimentListFactory.from_json_file(path, check_format=False)`` loads it."""
    truths = _truths(reader)
    Path(path).write_text(json.dumps(experiment_list(truths), indent=1, allow_nan=False))
    return len(truths)


def write_truth_jsonl(reader: StoreReader, path: str | Path) -> int:
    """Write the store's frame truths, one JSON object a line (:class:`FrameTruth`)."""
    truths = _truths(reader)
    with open(path, "w", encoding="utf-8") as f:
        for truth in truths:
            f.write(json.dumps(truth, allow_nan=False) + "\n")
    return len(truths)
