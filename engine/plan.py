"""The plan of a frame: what C nanoBragg resolves before its pixel loop, without torch.

``plan(experiment)`` derives the detector geometry (C's float64 values: basis, pix0, beam
centre, distances), the phi steps, mosaic domains and sensor layers; the crystal lattice,
oversampling, sources and orientations follow on first use. :func:`engine.setup.prepare_frame`
builds its tensors from a plan; the service counts a job's work, writes SMV headers and store
attributes from one without importing torch. Units: SI (m, rad) unless a name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from engine.geometry import RTD, DetectorGeometry, detector_geometry, rotate_axis
from engine.lattice import Lattice, auto_oversample, build_lattice
from engine.model import Experiment
from engine.scan import resolve_phi
from engine.sources import beam_sources, resolve_steps

__all__ = [
    "FramePlan",
    "Sensor",
    "Sources",
    "frame_experiment",
    "plan",
    "resolve_mosaic",
    "resolve_sensor",
]


@dataclass(frozen=True)
class Sensor:
    """Detector sensor layers: count, layer thickness (m) and attenuation coefficient (1/m)."""

    layers: int
    step: float
    mu: float

    @property
    def thick(self) -> bool:
        return self.step > 0.0


class Sources(NamedTuple):
    """Incident unit vectors (S, 3) and wavelengths (S,), m."""

    incident: np.ndarray
    wavelengths_m: np.ndarray


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


def frame_experiment(exp: Experiment, frame: int) -> Experiment:
    """Frame ``frame`` of ``exp``'s oscillation series: phi starts at phi0 + frame*osc (degrees),
    same steps; frame 0 is ``exp`` itself."""
    if frame == 0:
        return exp
    phi0, osc, _, _ = resolve_phi(exp.scan)
    scan = exp.scan.model_copy(update={"phi0_deg": phi0 + frame * osc})  # same series
    return exp.model_copy(update={"scan": scan})


def _given(value: float | None, per_unit: float = 1.0) -> float:
    return -1.0 if value is None else value / per_unit


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.zeros(3)


@dataclass(frozen=True, eq=False)
class FramePlan:
    """The resolved, pixel-independent numbers of one frame (no tensors)."""

    experiment: Experiment
    detector: DetectorGeometry
    phi0_deg: float
    osc_deg: float
    phistep_deg: float
    phisteps: int
    mosaic_spread: float  # rad
    mosaic_domains: int
    sensor: Sensor

    @property
    def phi_angles_deg(self) -> list[float]:
        """Spindle angle of each phi step of the frame, degrees."""
        return [self.phi0_deg + self.phistep_deg * i for i in range(self.phisteps)]

    @property
    def orientations(self) -> int:
        """Crystal orientations per frame: phi steps x mosaic domains."""
        return self.phisteps * self.mosaic_domains

    @cached_property
    def lattice(self) -> Lattice:
        """The crystal lattice (misset applied, size clipped by the beam)."""
        exp = self.experiment
        misset = exp.crystal.misset_deg
        misset_rad = tuple(x / RTD for x in misset) if misset is not None else None
        return build_lattice(
            exp.crystal, exp.beam.wavelength_A, misset_rad, exp.beam.beamsize_mm / 1000.0
        )

    @cached_property
    def oversample(self) -> int:
        """Sub-pixels per pixel edge: the given one, else C's automatic choice."""
        lam0 = self.experiment.beam.wavelength_A / 1e10  # C: lambda0 = atof(A)/1e10
        geo = self.detector
        return self.experiment.sampling.oversample or auto_oversample(
            self.lattice, lam0, geo.distance, geo.pixel_size
        )

    @property
    def source_bound(self) -> int:
        """Sources before C's round-divergence filter (an upper bound of the source count)."""
        beam = self.experiment.beam
        if beam.sources:
            return len(beam.sources)
        h = resolve_steps(
            _given(beam.hdivrange_mrad, 1e3),
            _given(beam.hdivstep_mrad, 1e3),
            int(_given(beam.hdivsteps)),
            "-hdivsteps",
        )
        v = resolve_steps(
            _given(beam.vdivrange_mrad, 1e3),
            _given(beam.vdivstep_mrad, 1e3),
            int(_given(beam.vdivsteps)),
            "-vdivsteps",
        )
        dispersion = 0.0 if beam.dispersion is None else beam.dispersion
        d = resolve_steps(
            dispersion, _given(beam.dispstep), int(_given(beam.dispsteps)), "-dispsteps"
        )
        return h.steps * v.steps * d.steps

    @cached_property
    def sources(self) -> Sources:
        """The sources (explicit ones, else C's divergence x dispersion grid)."""
        beam, geo = self.experiment.beam, self.detector
        if beam.sources:
            directions = np.array([_unit(np.array(s.position, dtype=float)) for s in beam.sources])
            return Sources(-directions, np.array([s.wavelength_A * 1e-10 for s in beam.sources]))
        src = beam_sources(beam, geo.beam, geo.polar)
        incident = -np.asarray(src.directions, dtype=float)
        return Sources(incident, np.asarray(src.wavelengths_m, dtype=float))

    def source_count(self, max_steps: int | None = None) -> int:
        """Sources, counted exactly (after C's round-divergence filter) unless their upper
        bound alone gives far more than ``max_steps`` inner steps per pixel."""
        bound = self.source_bound
        rest = self.orientations * self.oversample**2 * self.sensor.layers
        if self.experiment.beam.sources or (max_steps is not None and bound * rest > 4 * max_steps):
            return bound
        return len(self.sources.wavelengths_m)

    @cached_property
    def cells(self) -> np.ndarray:
        """Real-space cell vectors (m) of every phi step x mosaic domain: (M, 3, 3) rows a, b, c."""
        from engine.orientation import mosaic_umats

        spread, lattice = self.mosaic_spread, self.lattice
        seed = -self.experiment.crystal.mosaic_seed
        umats = mosaic_umats(spread, self.mosaic_domains, seed) if spread > 0.0 else np.eye(3)[None]
        out = []
        for phi_deg in self.phi_angles_deg:
            phi = phi_deg / RTD
            cell = [lattice.a, lattice.b, lattice.c]
            if phi != 0.0:
                cell = [rotate_axis(v, self.detector.spindle, phi) for v in cell]
            for u in umats:
                out.append([u @ v for v in cell] if spread > 0.0 else cell)
        return np.array(out, dtype=float)

    @property
    def steps(self) -> int:
        """C's normaliser: sources x orientations x oversample^2 (sensor layers not counted)."""
        return len(self.sources.wavelengths_m) * self.orientations * self.oversample**2


def plan(exp: Experiment) -> FramePlan:
    """The plan of ``exp``'s frame: detector geometry, phi steps, mosaic domains, sensor."""
    phi0, osc, phistep, phisteps = resolve_phi(exp.scan)
    spread, domains = resolve_mosaic(exp)
    return FramePlan(
        experiment=exp,
        detector=detector_geometry(exp),
        phi0_deg=phi0,
        osc_deg=osc,
        phistep_deg=phistep,
        phisteps=phisteps,
        mosaic_spread=spread,
        mosaic_domains=domains,
        sensor=resolve_sensor(exp),
    )
