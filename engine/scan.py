"""Spindle (phi) sampling of one frame, resolved with nanoBragg's automatic rules."""

from __future__ import annotations

import math

from engine.model import Scan
from engine.orientation import RTD
from engine.sources import check_steps


def _given(value: float | int | None) -> float | int:
    return -1 if value is None else value  # C's "not given"


def resolve_phi(scan: Scan) -> tuple[float, float, float, int]:
    """Return (phi0, osc, phistep) in degrees and phisteps, as C nanoBragg derives them."""
    phi0 = scan.phi0_deg
    osc, step, steps = _given(scan.osc_deg), _given(scan.phistep_deg), _given(scan.phisteps)
    if steps < 0:
        if osc < 0.0:
            if step <= 0.0:
                steps, osc, step = 1, 0.0, 0.0
            else:
                osc, steps = step, 2
        elif step <= 0.0:
            steps, step = 2, osc / 2.0
        else:
            ratio = (osc / RTD) / (step / RTD)  # C divides the radian values
            check_steps("-osc/-phistep", ratio)
            steps = math.ceil(ratio)
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


def phi_angles_deg(scan: Scan) -> list[float]:
    """Spindle angle of each phi step of the frame, degrees."""
    phi0, _, step, steps = resolve_phi(scan)
    return [phi0 + step * i for i in range(steps)]
