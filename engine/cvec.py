"""3-vectors as C nanoBragg computes them: scalar float64 in C's order, no BLAS.

Anything that ends in an integer (``ceil``, ``floor``, a comparison or a count) must be
computed with these, never with ``np.dot``/``np.cross``/``np.linalg.norm``: those go through
CPU-specific kernels (FMA, other summation orders), so their last bit differs between
machines and a value within an ulp of an integer would round differently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Vec = tuple[float, float, float]


def vec(v: Sequence[float]) -> Vec:
    """``v`` as a tuple of three Python floats."""
    return (float(v[0]), float(v[1]), float(v[2]))


def cross(x: Sequence[float], y: Sequence[float]) -> Vec:
    """C's ``cross_product``: ``x[1]*y[2] - x[2]*y[1]``, ..."""
    return (
        x[1] * y[2] - x[2] * y[1],
        x[2] * y[0] - x[0] * y[2],
        x[0] * y[1] - x[1] * y[0],
    )


def dot(x: Sequence[float], y: Sequence[float]) -> float:
    """C's ``dot_product``: ``x1*y1 + x2*y2 + x3*y3`` summed left to right."""
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]


def magnitude(v: Sequence[float]) -> float:
    """C's ``magnitude``: ``sqrt(x*x + y*y + z*z)``."""
    return math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


def scale(v: Sequence[float], s: float) -> Vec:
    """C's ``vector_scale``: ``s*v`` component by component."""
    return (s * v[0], s * v[1], s * v[2])


def rescale(v: Sequence[float], new_magnitude: float) -> Vec:
    """C's ``vector_rescale``: ``new_magnitude/|v| * v`` (|v| <= 0 counts as 1)."""
    old = magnitude(v)
    if old <= 0.0:
        old = 1.0
    return (new_magnitude / old * v[0], new_magnitude / old * v[1], new_magnitude / old * v[2])


def unitize(v: Sequence[float]) -> Vec:
    """C's ``unitize``: ``v/|v|``, the zero vector for a zero-length ``v``."""
    mag = magnitude(v)
    if mag == 0.0:
        return (0.0, 0.0, 0.0)
    return (v[0] / mag, v[1] / mag, v[2] / mag)
