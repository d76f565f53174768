"""Spindle (phi) sampling of one frame, resolved with nanoBragg's automatic rules."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # engine.model imports this module
    from engine.model import Goniometer


def resolve_phi(gonio: Goniometer) -> tuple[float, float, float, int]:
    """Return (phi0, osc, phistep) in degrees and phisteps, as C nanoBragg derives them."""
    phi0, osc, step, steps = gonio.phi0_deg, gonio.osc_deg, gonio.phistep_deg, gonio.phisteps
    if steps < 0:
        if osc < 0.0:
            if step <= 0.0:
                steps, osc, step = 1, 0.0, 0.0
            else:
                osc, steps = step, 2
        elif step <= 0.0:
            steps, step = 2, osc / 2.0
        else:
            steps = math.ceil(osc / step)
    else:
        if steps == 0:
            steps = 1
        if osc < 0.0:
            if step <= 0.0:
                osc = 1.0
                step = osc / steps
            else:
                osc, steps = step, 2
        elif step < 0.0:
            step = osc / steps
    return phi0, osc, step, steps


def phi_angles_deg(gonio: Goniometer) -> list[float]:
    """Spindle angle of each phi step of the frame, degrees."""
    phi0, _, step, steps = resolve_phi(gonio)
    return [phi0 + step * i for i in range(steps)]
