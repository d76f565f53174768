"""The per-sample physics of nanoBragg, as torch formulas: the one implementation.

Every render path (compiled or eager, flat or curved detector) and the per-frame
interpolation check call these functions; nothing here knows about frames, windows or
compilation. Lengths are metres unless stated; reciprocal vectors are 1/Angstrom.

Samples are laid out on seven dimensions (L, A, B, S, M, R, F): sensor layer, slow and fast
sub-pixel offset, source, orientation (phi step x mosaic domain), pixel row, pixel column.
Float32 accuracy comes from stable forms: the scattering vector is built from the part of the
pixel position perpendicular to the incident beam (no ``d - i`` cancellation), and the lattice
transform is evaluated on ``h - round(h)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch

from engine import vml
from engine.model import CrystalShape
from engine.structure_factors import StructureFactorTable

if TYPE_CHECKING:
    from engine.frame import FrameTensors, Structure

vml.resolve_dispatch()  # MKL chooses its sqrt, sin, exp... kernels before any render runs

R_E_SQR = 7.94079248018965e-30  # m^2, Thomson cross-section
_ROUND_NORM = 0.723601254558268

# Lagrange denominators prod_{j != i} (x_i - x_j) for the nodes floor(x) - 1 .. floor(x) + 2.
_DENOMS = (-6.0, 2.0, -2.0, 6.0)


# ------------------------------------------------------------------------- pixel positions


def subpixel_coordinates(lo: int, n: int, oversample: int, size: float, ref: float):
    """(oversample, n) float64 sub-pixel centres of pixels lo..lo+n-1 along one axis, minus
    ``ref`` (the beam spot); ``size`` is the sub-pixel size. Metres."""
    idx = torch.arange(lo, lo + n, dtype=torch.float64)
    sub = torch.arange(oversample, dtype=torch.float64)
    return size * (idx[None, :] * oversample + sub[:, None]) + size / 2.0 - ref


def per_source(t: torch.Tensor) -> torch.Tensor:
    """A per-source vector (S,) on the sample dimensions."""
    return t.view(1, 1, 1, -1, 1, 1, 1)


def rotate_about(v: torch.Tensor, axis: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (..., 3) about the unit axis (3,) by angles phi (...), right-handed."""
    s, c = torch.sin(phi).unsqueeze(-1), torch.cos(phi).unsqueeze(-1)
    d = (v * axis).sum(-1, keepdim=True) * (1.0 - c)
    return axis * d + v * c + torch.cross(axis.expand_as(v), v, dim=-1) * s


def flat_positions(par, perp, odet_par, gs, gf, depth, with_depth: bool):
    """Pixel positions on a flat detector, about each incident direction.

    ``par`` (S, 4) and ``perp`` (S, 4, 3): the beam spot and the fast, slow and normal axes
    split along / perpendicular to each incident direction; ``gs`` (A, R), ``gf`` (B, F):
    slow/fast sub-pixel coordinates; ``depth`` (L,): layer depths. Returns ``p_par``
    (L, A, B, S, 1, R, F), the three perpendicular components and, when ``with_depth``,
    the position along the detector normal (L, A, B, 1, 1, R, F).
    """
    nl, na_, nb_ = depth.shape[0], gs.shape[0], gf.shape[0]
    src = per_source
    g_s = gs.view(1, na_, 1, 1, 1, gs.shape[1], 1)
    g_f = gf.view(1, 1, nb_, 1, 1, 1, gf.shape[1])
    dep = depth.view(nl, 1, 1, 1, 1, 1, 1)
    p_par = src(par[:, 0]) + g_f * src(par[:, 1]) + g_s * src(par[:, 2]) + dep * src(par[:, 3])
    pp = [
        src(perp[:, 0, j])
        + g_f * src(perp[:, 1, j])
        + g_s * src(perp[:, 2, j])
        + dep * src(perp[:, 3, j])
        for j in range(3)
    ]
    normal = None
    if with_depth:
        normal = odet_par[0] + g_f * odet_par[1] + g_s * odet_par[2] + dep
    return p_par, pp, normal


def curved_positions(axes64, spot64, distance, incident, gs, gf, depth, dtype):
    """Pixel positions on C nanoBragg's curved detector (every pixel at ``distance``).

    ``axes64`` (4, 3) float64: beam spot on the flat detector, fast, slow and normal axes;
    ``spot64`` (3,): ``distance`` times the beam direction. C turns the direct-beam point
    about the slow axis by y/distance, then about the fast axis by z/distance (y, z: the
    flat position's lab components). Computed in float64, then split about each incident
    direction (S, 3) and cast to ``dtype``; returns what :func:`flat_positions` returns.
    """
    f64 = torch.float64
    r0, f, s, o = axes64.unbind(0)
    rows, cols = gs.shape[1], gf.shape[1]
    g_s = gs.to(f64).view(1, gs.shape[0], 1, 1, 1, rows, 1, 1)
    g_f = gf.to(f64).view(1, 1, gf.shape[0], 1, 1, 1, cols, 1)
    dep = depth.to(f64).view(-1, 1, 1, 1, 1, 1, 1, 1)
    flat = r0 + g_f * f + g_s * s + dep * o  # (L, A, B, 1, 1, R, F, 3)
    start = spot64.expand_as(flat)
    turned = rotate_about(start, s, flat[..., 1] / distance)
    pos = rotate_about(turned, f, flat[..., 2] / distance)
    inc = incident.to(f64).view(1, 1, 1, -1, 1, 1, 1, 3)
    p_par = (pos * inc).sum(-1)  # (L, A, B, S, 1, R, F)
    pp = [(pos[..., j] - p_par * inc[..., j]).to(dtype) for j in range(3)]
    return p_par.to(dtype), pp, (pos * o).sum(-1).to(dtype)


def airpath(p_par: torch.Tensor, pp2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|r| and w = |r| - p_par (without cancellation) from the components of r (m)."""
    r = torch.sqrt(p_par * p_par + pp2)
    w = torch.where(p_par >= 0, pp2 / (p_par + r), r - p_par)
    return r, w


def miller_indices(q, cells_lambda, source_shift):
    """Fractional Miller indices h, k, l (L, A, B, S, M, R, F) of every source and orientation.

    ``q`` (three (L, A, B, 1, 1, R, F)): d - i0, the scattering vector times lambda of source
    0 (:func:`scattering_vector`); h = a . (d - i_s) / lambda_s = q . (a / lambda_s) + shift:
    ``cells_lambda`` (S, 3, 3M) real-space cell vectors over each source's wavelength (rows
    x, y, z; columns a, b, c of each orientation), ``source_shift`` (S, 3M) the constant
    a . (i0 - i_s) / lambda_s (0 for source 0). A sample costs three products per index.
    """
    ns_, nm = source_shift.shape[0], source_shift.shape[1] // 3
    c = cells_lambda.view(ns_, 3, nm, 3)
    shift = source_shift.view(ns_, nm, 3)
    hkl = []
    for j in range(3):
        cj = [c[:, i, :, j].view(1, 1, 1, ns_, nm, 1, 1) for i in range(3)]
        sj = shift[:, :, j].view(1, 1, 1, ns_, nm, 1, 1)
        hkl.append(q[0] * cj[0] + q[1] * cj[1] + q[2] * cj[2] + sj)
    return hkl


def scattering_vector(pp, w, r, incident):
    """d - i (three components, dimensionless) from the position's part perpendicular to
    the incident direction ``incident`` (3,): (p_perp - w i) / |r|, without cancellation.
    float32 multiplies by one reciprocal of |r| (a vector division costs as much as ten
    multiplies; the result moves by at most an ulp); float64 divides each, as C does."""
    if r.dtype == torch.float32:
        inv_r = 1.0 / r
        return [(pp[j] - w * incident[j]) * inv_r for j in range(3)]
    return [(pp[j] - w * incident[j]) / r for j in range(3)]


class Samples(NamedTuple):
    """Geometry of every sample of a block, on the (L, A, B, S, M, R, F) dimensions.

    The positions are those of every source (S) when a per-source factor needs them
    (``per_source``), else of source 0 only (S = 1): C evaluates polarization, omega and
    parallax once per pixel, at the first source, unless told otherwise.
    """

    p_par: torch.Tensor  # position along the incident direction, m
    pp: list[torch.Tensor]  # the three components perpendicular to it, m
    pp2: torch.Tensor  # |perpendicular part|^2, m^2
    r: torch.Tensor  # airpath |r|, m
    w: torch.Tensor  # |r| - p_par, m
    normal: torch.Tensor | None  # position along the detector normal (thick sensors), m
    q: list[torch.Tensor]  # d - i of source 0 (L, A, B, 1, 1, R, F), per pixel
    h: torch.Tensor  # fractional Miller indices
    k: torch.Tensor
    l: torch.Tensor  # noqa: E741


def sample_geometry(st: Structure, ft: FrameTensors, gs, gf, per_source: bool = True) -> Samples:
    """Positions and Miller indices of every sample of a block of pixels.

    ``gs`` (A, R), ``gf`` (B, F): slow/fast sub-pixel coordinates relative to the beam spot
    (:func:`subpixel_coordinates`), float64, or the frame's dtype for a flat detector (which
    casts them to it anyway). Flat detectors are separable in (slow, fast); the
    curved detector is computed per pixel in float64. The Miller indices of every source
    come from source 0's geometry (:func:`miller_indices`); ``per_source``: return the
    positions of every source too (else of source 0 only).
    """
    dtype = ft.par.dtype
    if st.curved:
        p_par, pp, normal = curved_positions(
            ft.axes64, ft.spot64, ft.distance64, ft.incident, gs, gf, ft.depth, dtype
        )
    else:
        p_par, pp, normal = flat_positions(
            ft.par, ft.perp, ft.odet_par, gs.to(dtype), gf.to(dtype), ft.depth.to(dtype), st.thick
        )
    p0, pp0 = p_par[:, :, :, :1], [x[:, :, :, :1] for x in pp]  # source 0
    pp2_0 = pp0[0] * pp0[0] + pp0[1] * pp0[1] + pp0[2] * pp0[2]
    r0, w0 = airpath(p0, pp2_0)
    q = scattering_vector(pp0, w0, r0, ft.incident[0])
    h, k, l = miller_indices(q, ft.cells_lambda, ft.source_shift)  # noqa: E741
    if not per_source or p_par.shape[3] == 1:
        return Samples(p0, pp0, pp2_0, r0, w0, normal, q, h, k, l)
    pp2 = pp[0] * pp[0] + pp[1] * pp[1] + pp[2] * pp[2]
    r, w = airpath(p_par, pp2)
    return Samples(p_par, pp, pp2, r, w, normal, q, h, k, l)


# ------------------------------------------------------------------------ lattice transform


def _frac(x: torch.Tensor) -> torch.Tensor:
    """x - nearest integer (C's ceil(x - 0.5))."""
    return x - torch.ceil(x - 0.5)


#: sin(pi f) ~ f (c0 + c1 f^2 + ... + c4 f^8) on [-1/2, 1/2], relative error 7e-9 (a least-squares
#: fit on Chebyshev nodes): below float32's rounding, at a fraction of a library sine's cost.
_SINPI_COEFFS = (
    3.141592641045632,
    -5.167710083391768,
    2.550077521718418,
    -0.598291240430149,
    0.07765757136364598,
)


def _sinpi_poly(f: torch.Tensor) -> torch.Tensor:
    """sin(pi f) for f in [-1/2, 1/2], by :data:`_SINPI_COEFFS` (float32 kernels)."""
    f2 = f * f
    c = _SINPI_COEFFS
    return f * (c[0] + f2 * (c[1] + f2 * (c[2] + f2 * (c[3] + f2 * c[4]))))


def _sinpi(x: torch.Tensor) -> torch.Tensor:
    """sin(pi x) for any x: (-1)^k sin(pi (x - k)), k = round(x) (the reduction is exact)."""
    k = torch.round(x)
    odd = k - 2.0 * torch.floor(k * 0.5)  # 0 or 1
    return _sinpi_poly(x - k) * (1.0 - 2.0 * odd)


#: float32: |sin(pi d)| below this counts as 0 (sincg = N): the ratio differs from N by a
#: relative (N pi d)^2 / 6, under float32's rounding there, and a product of three
#: denominators stays above float32's smallest normal (1e-38).
SINCG_TINY_F32 = 1e-9


def sincg_ratio(
    delta: torch.Tensor, n: torch.Tensor, n_pi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sincg` as (numerator, denominator), (N, 1) where sin(pi d) is 0 (float32: below
    :data:`SINCG_TINY_F32`), so a product of several ratios takes one division."""
    if delta.dtype == torch.float32:
        num = _sinpi(n * delta)
        den = _sinpi_poly(delta)
        zero = den.abs() < SINCG_TINY_F32
    else:
        num = torch.sin(n_pi * delta)
        den = torch.sin(math.pi * delta)
        zero = den == 0
    return torch.where(zero, n, num), torch.where(zero, 1.0, den)


def sincg(delta: torch.Tensor, n: torch.Tensor, n_pi: torch.Tensor) -> torch.Tensor:
    """sin(N pi d)/sin(pi d) for d = h - round(h) in [-1/2, 1/2] (N at d = 0), as C's sincg.

    N is a tensor, ``n`` () cells and ``n_pi`` () N x pi, both in delta's dtype (rounded once
    from float64), so frames differing in N share a compiled graph. The sine ratio for every
    N: a Chebyshev recurrence U_{N-1}(cos pi d) runs N - 2 steps, a count a graph would keep
    (or mask to a bucket), and inductor's lowering re-evaluates each read of an unrealized
    value, so its cost grows exponentially with the steps (a 14-step masked recurrence did
    not lower in 15 minutes; two sines lower at once and run faster than 8 steps). In float32
    both sines are polynomials after an exact reduction (:func:`_sinpi`), float64 uses sin.
    """
    num, den = sincg_ratio(delta, n, n_pi)
    return num / den


def _sinc3(x: torch.Tensor) -> torch.Tensor:
    """3 (sin x / x - cos x) / x^2, with a series below x = 0.5 to avoid cancellation."""
    x2 = x * x
    safe = torch.where(x < 0.5, 1.0, x)
    direct = 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe)
    series = 1.0 + x2 * (-1 / 10 + x2 * (1 / 280 + x2 * (-1 / 15120 + x2 / 1330560)))
    return torch.where(x < 0.5, series, direct)


def lattice_transform(shape: CrystalShape, many, h, k, l, ns, shape_n, recip, fudge):  # noqa: E741
    """F_latt of fractional indices h, k, l for a crystal of ``shape``; ``recip`` (3, 3)
    reciprocal vectors a*, b*, c* (rows, 1/A).

    Cells as tensors (so frames differing in N share a graph): ``ns`` (2, 3) rows Na, Nb, Nc
    and their multiples of pi; ``shape_n`` (3,) NaNbNc, its square and NaNbNc x the round
    shape's norm, each rounded once from float64 as C's double expressions are. ``many``:
    per axis, whether N > 1 (square shape only; an axis of one cell contributes 1)."""
    if shape is CrystalShape.SQUARE:
        axes = [(x, j) for j, (x, more) in enumerate(zip((h, k, l), many, strict=True)) if more]
        if not axes:
            return torch.ones_like(h)
        if h.dtype == torch.float32:
            # one division for the product (one axis: sincg itself): the ratios' numerators
            # and denominators multiply (numerators in [-N, N]; denominators in [-1, 1], each
            # at least SINCG_TINY_F32)
            num, den = None, None
            for x, j in axes:
                a, b = sincg_ratio(_frac(x), ns[0, j], ns[1, j])
                num, den = (a, b) if num is None else (num * a, den * b)
            return num / den
        out = None
        for x, j in axes:
            term = sincg(_frac(x), ns[0, j], ns[1, j])
            out = term if out is None else out * term
        return out
    dh, dk, dl = _frac(h), _frac(k), _frac(l)
    if shape is CrystalShape.ROUND:
        sh, sk, sl = dh * ns[0, 0], dk * ns[0, 1], dl * ns[0, 2]
        hrad = sh * sh + sk * sk + sl * sl
        return shape_n[2] * _sinc3(math.pi * torch.sqrt(hrad * fudge))
    dx = dh * recip[0, 0] + dk * recip[1, 0] + dl * recip[2, 0]
    dy = dh * recip[0, 1] + dk * recip[1, 1] + dl * recip[2, 1]
    dz = dh * recip[0, 2] + dk * recip[1, 2] + dl * recip[2, 2]
    rad = (dx * dx + dy * dy + dz * dz) * shape_n[1]
    if shape is CrystalShape.GAUSS:
        return shape_n[0] * torch.exp(-(rad / 0.63 * fudge))
    return shape_n[0] * (rad * fudge < 0.3969).to(h.dtype)


def shape_constants(na: int, nb: int, nc: int) -> tuple[list[list[float]], list[float]]:
    """The float64 values of :func:`lattice_transform`'s ``ns`` and ``shape_n``."""
    nnn = float(na * nb * nc)
    ns = [[float(na), float(nb), float(nc)], [n * math.pi for n in (na, nb, nc)]]
    return ns, [nnn, nnn * nnn, nnn * _ROUND_NORM]


# ----------------------------------------------------------------------- structure factors


def in_interpolation_range(
    meta: StructureFactorTable,
    h: torch.Tensor,
    k: torch.Tensor,
    l: torch.Tensor,  # noqa: E741
) -> torch.Tensor:
    """True where C nanoBragg can interpolate: its test
    (x - x_min + 3) > x_range || x - 2 < x_min is false on all three axes (and hkls > 0)."""
    h, k, l = torch.broadcast_tensors(h, k, l)  # noqa: E741
    inside = torch.full(h.shape, meta.hkls > 0, dtype=torch.bool, device=h.device)
    for x, x_min, x_range in zip(
        (h, k, l), (meta.h_min, meta.k_min, meta.l_min), meta.ranges, strict=True
    ):
        inside = inside & ~(((x - x_min + 3) > x_range) | ((x - 2) < x_min))
    return inside


def _strides(table_tensor: torch.Tensor) -> tuple[int, int]:
    _, kd, ld = table_tensor.shape
    return kd * ld, ld


def lookup_nearest(
    table_tensor: torch.Tensor,
    meta: StructureFactorTable,
    h: torch.Tensor,
    k: torch.Tensor,
    l: torch.Tensor,  # noqa: E741
) -> torch.Tensor:
    """F at the nearest grid point h0 = ceil(h - 0.5) (likewise k, l); default_F outside
    [min, max] or when the table holds no entries. Fractional Miller indices in, F out
    (dtype of table_tensor, shape of the broadcast h, k, l)."""
    h, k, l = torch.broadcast_tensors(h, k, l)  # noqa: E741
    if meta.hkls == 0:
        return torch.full(h.shape, meta.default_F, dtype=table_tensor.dtype, device=h.device)
    sh, sk = _strides(table_tensor)
    flat_index = torch.zeros(h.shape, dtype=torch.long, device=h.device)
    inside = torch.ones(h.shape, dtype=torch.bool, device=h.device)
    for x, x_min, x_max, stride in (
        (h, meta.h_min, meta.h_max, sh),
        (k, meta.k_min, meta.k_max, sk),
        (l, meta.l_min, meta.l_max, 1),
    ):
        x0 = torch.ceil(x - 0.5)
        inside_x = (x0 >= x_min) & (x0 <= x_max)
        inside &= inside_x
        flat_index += torch.where(inside_x, x0 - x_min, 0).long() * stride
    values = table_tensor.reshape(-1)[flat_index]
    return torch.where(inside, values, torch.full_like(values, meta.default_F))


def _lagrange_numerators(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """C polint's products prod_{j != i} (x - x_j), from t = x - floor(x) (exact in float)."""
    d0, d1, d2, d3 = t + 1.0, t, t - 1.0, t - 2.0
    return (d1 * d2 * d3, d0 * d2 * d3, d0 * d1 * d3, d0 * d1 * d2)


def _polint(numerators: tuple[torch.Tensor, ...], ys: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """C polint: sum_i (numerator_i * y_i) / denominator_i, in C's evaluation order."""
    n, y = numerators, ys
    return (
        n[0] * y[0] / _DENOMS[0]
        + n[1] * y[1] / _DENOMS[1]
        + n[2] * y[2] / _DENOMS[2]
        + n[3] * y[3] / _DENOMS[3]
    )


def lookup_tricubic(
    table_tensor: torch.Tensor,
    meta: StructureFactorTable,
    h: torch.Tensor,
    k: torch.Tensor,
    l: torch.Tensor,  # noqa: E741
) -> torch.Tensor:
    """Tricubic Lagrange interpolation of F on the 4x4x4 grid points floor(x) - 1 .. floor(x) + 2,
    as C polin3 (along l, then k, then h). Where in_interpolation_range is false: default_F."""
    h, k, l = torch.broadcast_tensors(h, k, l)  # noqa: E741
    dtype = table_tensor.dtype
    if min(meta.ranges) < 5 or meta.hkls == 0:  # no sample can be in range
        return torch.full(h.shape, meta.default_F, dtype=dtype, device=h.device)
    inside = in_interpolation_range(meta, h, k, l)
    sh, sk = _strides(table_tensor)
    base = torch.zeros(h.shape, dtype=torch.long, device=h.device)
    numerators = []
    for x, x_min, x_range, stride in zip(
        (h, k, l),
        (meta.h_min, meta.k_min, meta.l_min),
        meta.ranges,
        (sh, sk, 1),
        strict=True,
    ):
        floor = torch.floor(x)
        numerators.append(_lagrange_numerators((x - floor).to(dtype)))
        first = torch.nan_to_num(floor - (x_min + 1), nan=0.0).clamp(0, x_range - 3).long()
        base += first * stride
    nh, nk, nl = numerators
    flat = table_tensor.reshape(-1)
    along_k = []
    for i in range(4):
        along_l = []
        for j in range(4):
            # flat[offset:][base] == flat[base + offset], without an index temporary
            ys = tuple(flat[i * sh + j * sk + m :][base] for m in range(4))
            along_l.append(_polint(nl, ys))
        along_k.append(_polint(nk, tuple(along_l)))
    values = _polint(nh, tuple(along_k))
    return torch.where(inside, values, torch.full_like(values, meta.default_F))


def fcell_squared(mode: str, meta: StructureFactorTable, values, h, k, l):  # noqa: E741
    """|F_cell|^2: ``mode`` "const" (default_F everywhere), "nearest" or "tricubic"."""
    if mode == "const":
        return meta.default_F * meta.default_F
    look = lookup_tricubic if mode == "tricubic" else lookup_nearest
    f = look(values, meta, h, k, l)
    return f * f


# ------------------------------------------------------------------- per-sample factors


def polarization(p_par, pp, pp2, r, e_in, b_in, kahn_factor, kahn: bool):
    """Kahn polarization factor 0.5 (1 + cos^2 2theta - K cos 2psi sin^2 2theta).

    ``e_in``, ``b_in`` (S, 3): the incident E and B directions; without ``kahn`` the
    unpolarized form 0.5 (1 + cos^2 2theta).
    """
    inv_r2 = 1.0 / (r * r)
    cos2 = p_par * p_par * inv_r2
    sin2 = pp2 * inv_r2
    factor = 1.0 + cos2
    if kahn:
        ns_ = p_par.shape[3]  # every source, or source 0 only
        ev = [per_source(e_in[:ns_, j]) for j in range(3)]
        bv = [per_source(b_in[:ns_, j]) for j in range(3)]
        e = pp[0] * ev[0] + pp[1] * ev[1] + pp[2] * ev[2]
        b = pp[0] * bv[0] + pp[1] * bv[1] + pp[2] * bv[2]
        e2, b2 = e * e, b * b
        den = e2 + b2
        cos2psi = torch.where(den > 0, (e2 - b2) / torch.where(den > 0, den, 1.0), 1.0)
        factor = factor - kahn_factor * cos2psi * sin2
    return 0.5 * factor


def solid_angle(r0, omega_num, point_pixel: bool):
    """Solid angle of a pixel at airpath ``r0``: 1/r0^2 for a point pixel, else
    ``omega_num`` / r0^3 with omega_num = pixel_size^2 x close_distance (m^3)."""
    if point_pixel:
        return 1.0 / (r0 * r0)
    if r0.dtype == torch.float32:  # one division (float64 keeps C's two)
        return omega_num / ((r0 * r0) * r0)
    return omega_num / (r0 * r0) / r0


def within_resolution(pp2, w, r, inv_lambda, dmin):
    """True where sin(theta)/lambda x dmin <= 1/2 (the sample is inside the dmin cut)."""
    stol = 0.5 * (torch.sqrt(pp2 + w * w) / r) * inv_lambda
    return stol * dmin <= 0.5


def capture_fraction(normal, r0, depth, mu, step_mu):
    """Fraction of photons absorbed in the sensor layer at ``depth``: exp(-a) - exp(-a-b)
    with a = depth mu / parallax, b = step mu / parallax, parallax = normal / r0."""
    parallax = normal / r0
    a = depth * mu / parallax
    b = step_mu / parallax
    return -torch.exp(-a) * torch.expm1(-b)
