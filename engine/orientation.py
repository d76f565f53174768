"""Crystal orientation set-up reproduced from C nanoBragg: rotations, random misset, mosaic.

All angles are radians; matrices are float64 (3, 3) and act on column vectors (``U @ v``, C's
``rotate_umat``; row ``i`` is ``umat[3*i:3*i+3]`` in C).  Scalars are computed with
:mod:`math` (the platform libm, as C uses it) in C's own operation order, and ``powf`` in
float32 through numpy (which calls the same libm ``powf``).

Random number order.  C draws from one process-wide :class:`~engine.crandom.Ran1` shuffle
table: first ``-misset random`` (3 deviates from ``misset_seed``), then the mosaic domains
(3 deviates per domain, from ``mosaic_seed``, the first domain's included although it is then
replaced by the identity).  To reproduce it, share one generator::

    rng = Ran1(0)
    if misset_is_random:
        rotx, roty, rotz = random_misset(misset_seed, rng)
    umats = mosaic_umats(mosaic_spread_rad, mosaic_domains, mosaic_seed, rng)

Each call re-seeds ``rng`` with its own seed variable (as C passes ``&misset_seed`` /
``&mosaic_seed``), keeping the shuffle table.  Seeds are C's stored values, i.e. already
negated: ``-misset_seed N`` gives ``-N``, ``-mosaic_seed N`` gives ``-N`` (default
``-12345678``); without ``-misset_seed`` C uses ``-time()``, not ``-seed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.crandom import Ran1

#: Degrees per radian exactly as C computes it (``180.0*M_1_PI``); convert with ``deg / RTD``.
RTD: float = 180.0 * (1.0 / math.pi)

#: C passes a "mosaicity" of 90 (radians, as a float) to get a random orientation.
_RANDOM_MISSET_MOSAICITY = 90.0

_F32_THIRD = np.float32(1.0 / 3.0)

Vector = Sequence[float] | np.ndarray


def rotate_xyz(v: Vector, rotx: float, roty: float, rotz: float) -> np.ndarray:
    """C's ``rotate``: rotate ``v`` about x, then y, then z (radians; zero angles skipped)."""
    x, y, z = (float(c) for c in v)
    if rotx != 0:
        c, s = math.cos(rotx), math.sin(rotx)
        y, z = y * c + z * -s, y * s + z * c
    if roty != 0:
        c, s = math.cos(roty), math.sin(roty)
        x, z = x * c + y * 0.0 + z * s, x * -s + y * 0.0 + z * c
    if rotz != 0:
        c, s = math.cos(rotz), math.sin(rotz)
        x, y = x * c + y * -s, x * s + y * c
    return np.array([x, y, z])


def rotate_axis(v: Vector, axis: Vector, angle: float) -> np.ndarray:
    """C's ``rotate_axis``: rotate ``v`` by ``angle`` (radians) about the unit vector ``axis``."""
    vx, vy, vz = (float(c) for c in v)
    ax, ay, az = (float(c) for c in axis)
    s, c = math.sin(angle), math.cos(angle)
    dot = (ax * vx + ay * vy + az * vz) * (1.0 - c)
    return np.array(
        [
            ax * dot + vx * c + (-az * vy + ay * vz) * s,
            ay * dot + vy * c + (+az * vx - ax * vz) * s,
            az * dot + vz * c + (-ay * vx + ax * vy) * s,
        ]
    )


def mosaic_rotation_umat(mosaicity_rad: float, rng: Ran1) -> np.ndarray:
    """C's ``mosaic_rotation_umat``: a random rotation on a cap of size ``mosaicity_rad``.

    Draws three deviates from ``rng``.  ``mosaicity_rad`` is rounded to float32 and the
    rotation angle is computed in float32 (``mosaicity * powf(1 - r3^2, 1/3)``) as C does.
    """
    r1 = 2.0 * rng.next() - 1.0
    r2 = 2.0 * rng.next() - 1.0
    r3 = 2.0 * rng.next() - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    rot = float(np.float32(mosaicity_rad) * np.power(np.float32(1.0 - r3 * r3), _F32_THIRD))
    v1 = xyrad * math.sin(math.pi * r1)
    v2 = xyrad * math.cos(math.pi * r1)
    v3 = r2

    t1 = math.cos(rot)
    t2 = 1.0 - t1
    t6 = t2 * v1
    t7 = t6 * v2
    t8 = math.sin(rot)
    t9 = t8 * v3
    t11 = t6 * v3
    t12 = t8 * v2
    t19 = t2 * v2 * v3
    t20 = t8 * v1
    return np.array(
        [
            [t1 + t2 * (v1 * v1), t7 - t9, t11 + t12],
            [t7 + t9, t1 + t2 * (v2 * v2), t19 - t20],
            [t11 - t12, t19 + t20, t1 + t2 * (v3 * v3)],
        ]
    )


def _unit_rows(u: list[list[float]]) -> list[float]:
    """Normalise each row in place (rows of zero length untouched); return the norms."""
    norms = []
    for row in u:
        m = math.sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2])
        if m > 0:
            row[:] = [row[0] / m, row[1] / m, row[2] / m]
        norms.append(m)
    return norms


def _unit_cross(p: list[float], q: list[float]) -> list[float]:
    x = p[1] * q[2] - p[2] * q[1]
    y = p[2] * q[0] - p[0] * q[2]
    z = p[0] * q[1] - p[1] * q[0]
    m = math.sqrt(x * x + y * y + z * z)
    return [x / m, y / m, z / m] if m > 0 else [x, y, z]


def _fill_empty_rows(u: list[list[float]], norms: list[float]) -> None:
    """Replace rows of zero norm by the unit cross product of the other two (C's order)."""
    xcy = _unit_cross(u[0], u[1])
    ycz = _unit_cross(u[1], u[2])
    zcx = _unit_cross(u[2], u[0])
    for i, cross in enumerate((ycz, zcx, xcy)):
        if norms[i] <= 0:
            u[i] = list(cross)


def umat_to_misset(umat: np.ndarray) -> tuple[float, float, float]:
    """C's ``umat2misset``: (rotx, roty, rotz) in radians such that ``rotate_xyz`` ~ ``umat``."""
    u = [[float(c) for c in row] for row in np.asarray(umat, dtype=np.float64).reshape(3, 3)]
    norms = _unit_rows(u)
    mx, my, mz = norms
    if mx >= 0 and my <= 0 and mz <= 0:
        u[1], u[2] = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my >= 0 and mz <= 0:
        u[0], u[2] = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my <= 0 and mz >= 0:
        u[0], u[1] = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    _fill_empty_rows(u, norms)
    _fill_empty_rows(u, norms)
    _unit_rows(u)
    (uxx, uxy, _), (uyx, uyy, _), (uzx, uzy, uzz) = u
    if uzx * uzx < 1.0:
        rotx = math.atan2(uzy, uzz)
        roty = math.atan2(-uzx, math.sqrt(uzy * uzy + uzz * uzz))
        rotz = math.atan2(uyx, uxx)
    else:
        rotx = math.atan2(1, 1) * 4
        roty = math.atan2(1, 1) * 2
        rotz = math.atan2(uxy, -uyy)
    return rotx, roty, rotz


def random_misset(misset_seed: int, rng: Ran1 | None = None) -> tuple[float, float, float]:
    """``-misset random``: (rotx, roty, rotz) in radians, for :func:`rotate_xyz`.

    ``misset_seed`` is C's stored (negated) value.  ``rng`` is the process-wide generator to
    share (re-seeded with ``misset_seed``, table kept); ``None`` means a fresh process.
    """
    if rng is None:
        rng = Ran1(misset_seed)
    else:
        rng.reseed(misset_seed)
    return umat_to_misset(mosaic_rotation_umat(_RANDOM_MISSET_MOSAICITY, rng))


def mosaic_umats(
    spread_rad: float, domains: int, mosaic_seed: int, rng: Ran1 | None = None
) -> np.ndarray:
    """C's mosaic domains: (domains, 3, 3) rotations, the first forced to the identity.

    ``spread_rad`` is the mosaic spread in radians, ``mosaic_seed`` C's stored (negated) value.
    ``rng`` is the process-wide generator to share (re-seeded with ``mosaic_seed``, table
    kept); ``None`` means a fresh process.  C applies these only when the spread is > 0.
    """
    if domains < 1:
        raise ValueError(f"mosaic domains must be >= 1, got {domains}")
    if rng is None:
        rng = Ran1(mosaic_seed)
    else:
        rng.reseed(mosaic_seed)
    umats = np.stack([mosaic_rotation_umat(spread_rad, rng) for _ in range(domains)])
    umats[0] = np.eye(3)
    return umats
