"""The work of one pixel: how many inner steps a job's kernel takes per pixel.

sources x mosaic domains x phi steps x oversample^2 x sensor layers, with C nanoBragg's
automatic rules, counted without building the sources, orientations or tensors (so a request
for 10^12 steps is refused at once instead of exhausting memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.geometry import RTD, detector_geometry
from engine.lattice import auto_oversample, build_lattice
from engine.model import Experiment
from engine.scan import resolve_phi
from engine.setup import resolve_mosaic, resolve_sensor
from engine.sources import beam_sources, resolve_steps


@dataclass(frozen=True)
class PixelWork:
    """Counts of the loops the kernel runs for every pixel."""

    sources: int
    domains: int
    phi_steps: int
    oversample: int
    layers: int

    @property
    def steps(self) -> int:
        """Inner steps per pixel."""
        return self.sources * self.domains * self.phi_steps * self.oversample**2 * self.layers

    def describe(self) -> str:
        return (
            f"{self.sources} sources x {self.domains} mosaic domains x {self.phi_steps} phi steps"
            f" x {self.oversample}^2 oversample x {self.layers} sensor layers = {self.steps}"
        )


def _given(value: float | None, per_unit: float = 1.0) -> float:
    return -1.0 if value is None else value / per_unit


def source_bound(exp: Experiment) -> int:
    """Sources before C's round-divergence filter (an upper bound of the source count)."""
    beam = exp.beam
    if beam.sources:
        return len(beam.sources)
    h = resolve_steps(_given(beam.hdivrange_mrad, 1e3), _given(beam.hdivstep_mrad, 1e3),
                      int(_given(beam.hdivsteps)), "-hdivsteps")  # fmt: skip
    v = resolve_steps(_given(beam.vdivrange_mrad, 1e3), _given(beam.vdivstep_mrad, 1e3),
                      int(_given(beam.vdivsteps)), "-vdivsteps")  # fmt: skip
    d = resolve_steps(0.0 if beam.dispersion is None else beam.dispersion,
                      _given(beam.dispstep), int(_given(beam.dispsteps)), "-dispsteps")  # fmt: skip
    return h.steps * v.steps * d.steps


def pixel_work(exp: Experiment, max_steps: int | None = None) -> PixelWork:
    """The loop counts of ``exp``. Sources are counted exactly (after C's round-divergence
    filter) unless their upper bound alone is far beyond ``max_steps``."""
    geo = detector_geometry(exp)
    _, domains = resolve_mosaic(exp)
    phi_steps = resolve_phi(exp.scan)[3]
    oversample = exp.sampling.oversample
    if not oversample:
        misset = exp.crystal.misset_deg
        misset_rad = tuple(x / RTD for x in misset) if misset is not None else None
        lattice = build_lattice(
            exp.crystal, exp.beam.wavelength_A, misset_rad, exp.beam.beamsize_mm / 1000.0
        )
        oversample = auto_oversample(
            lattice, exp.beam.wavelength_A / 1e10, geo.distance, geo.pixel_size
        )
    layers = resolve_sensor(exp).layers
    sources = source_bound(exp)
    rest = domains * phi_steps * oversample**2 * layers
    if not exp.beam.sources and (max_steps is None or sources * rest <= 4 * max_steps):
        sources = len(beam_sources(exp.beam, geo.beam, geo.polar).wavelengths_m)
    return PixelWork(sources, domains, phi_steps, oversample, layers)
