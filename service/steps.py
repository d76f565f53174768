"""The work of one pixel: how many inner steps a job's kernel takes per pixel.

sources x mosaic domains x phi steps x oversample^2 x sensor layers, as the engine's frame plan
(:mod:`engine.plan`) resolves them, counted without building the sources unless that is cheap
(so a request for 10^12 steps is refused at once instead of exhausting memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Experiment
from engine.plan import plan


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


def pixel_work(exp: Experiment, max_steps: int | None = None) -> PixelWork:
    """The loop counts of ``exp``. Sources are counted exactly (after C's round-divergence
    filter) unless their upper bound alone is far beyond ``max_steps``."""
    frame = plan(exp)
    return PixelWork(
        sources=frame.source_count(max_steps),
        domains=frame.mosaic_domains,
        phi_steps=frame.phisteps,
        oversample=frame.oversample,
        layers=frame.sensor.layers,
    )
