"""Fused pixel kernel: the whole per-pixel sum compiled into one pass over the block.

For a block of ``rows x cols`` pixels the kernel evaluates every sample (sensor layer x
sub-pixel x source x orientation) of every pixel and reduces them in one graph, which
``torch.compile`` (inductor: C++/OpenMP with SIMD on CPU, Triton on CUDA) turns into a
single loop nest per block: no per-sample tensors ever reach memory.

Everything that does not depend on the pixel is hoisted out of the graph into the frame
set-up (rotated cells per phi step and mosaic domain, source directions and wavelengths,
the detector axes decomposed about each incident direction). Pixel geometry is separable:
the graph receives per-row and per-column coordinates (one vector per sub-pixel offset)
instead of per-pixel positions.

The graph depends only on the *structure* of a frame (sample counts, crystal shape and N,
flags, block shape, dtype, device); every frame constant enters as a tensor, so one
compiled graph serves all blocks and frames with that structure. Blocks have fixed shapes
(ragged blocks are padded, the padding discarded), so a pixel's value never depends on the
window it was rendered in. Compiled artifacts are cached on disk by inductor
(``TORCHINDUCTOR_CACHE_DIR``), so a restarted worker skips code generation.

``BRAGGTILE_COMPILE=0`` (or :func:`set_compile` ("off")) selects the eager kernel,
``BRAGGTILE_COMPILE=1`` compiles every frame, ``auto`` (default) frames big enough to pay.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass

import torch

from engine.model import CrystalShape
from engine.setup import R_E_SQR, FrameSetup

COMPILE_ENV = "BRAGGTILE_COMPILE"
#: Chebyshev form of sin(N x)/sin(x) up to this N; sin ratio above (accuracy ~ N eps).
CHEBYSHEV_MAX_N = 16
_ROUND_NORM = 0.723601254558268
_BIG = 1 << 30

# Keep the whole sample sum in one loop nest: never spill per-sample intermediates.
_INDUCTOR_OPTIONS = {
    "realize_cpu_opcount_threshold": 1000,
    "realize_opcount_threshold": 1000,
}

_override: str | None = None
_lock = threading.Lock()
_graphs: dict = {}
_failed: set = set()


def set_compile(mode: bool | str | None) -> None:
    """Override BRAGGTILE_COMPILE for this process: True/"on", False/"off", "auto", or None."""
    global _override
    if isinstance(mode, bool):
        mode = "on" if mode else "off"
    if mode is not None and mode not in ("on", "off", "auto"):
        raise ValueError(f"compile mode must be on, off or auto, got {mode!r}")
    _override = mode


def compile_mode() -> str:
    """The mode, "on", "off" or "auto": set_compile, else BRAGGTILE_COMPILE (1/0/auto)."""
    if _override is not None:
        return _override
    value = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    if value in ("1", "true", "yes", "on"):
        return "on"
    return "auto"


def _configure_inductor() -> None:
    """Persistent caches (reuse across processes) and a recompile budget for many configs."""
    os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR",
        os.path.join(os.path.expanduser("~"), ".cache", "braggtile", "inductor"),
    )
    import torch._dynamo.config as dconf
    import torch._inductor.config as iconf

    iconf.fx_graph_cache = True
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dconf, name):
            setattr(dconf, name, max(getattr(dconf, name), 512))
    if hasattr(dconf, "accumulated_recompile_limit"):
        dconf.accumulated_recompile_limit = max(dconf.accumulated_recompile_limit, 4096)
    if hasattr(dconf, "accumulated_cache_size_limit"):
        dconf.accumulated_cache_size_limit = max(dconf.accumulated_cache_size_limit, 4096)


@dataclass(frozen=True)
class Structure:
    """The static part of a frame: what the compiled graph is specialised on."""

    layers: int
    oversample: int
    sources: int
    orientations: int
    shape: CrystalShape
    ns: tuple[int, int, int]
    nopolar: bool
    kahn: bool  # polarization != 0
    oversample_polar: bool
    oversample_omega: bool
    oversample_thick: bool
    thick: bool
    point_pixel: bool
    dmin: bool
    sf_mode: str  # "const", "nearest", "tricubic"
    sf_bounds: tuple[int, ...]  # h_min, h_max, k_min, k_max, l_min, l_max, hkls
    default_F: float


def structure_of(setup: FrameSetup) -> Structure:
    exp = setup.experiment
    samp = exp.sampling
    lat = setup.lattice
    table = setup.sf_table
    if table.hkls == 0:
        sf_mode = "const"
    else:
        sf_mode = "tricubic" if setup.interpolate else "nearest"
    bounds = (table.h_min, table.h_max, table.k_min, table.k_max, table.l_min, table.l_max)
    return Structure(
        layers=setup.sensor.layers,
        oversample=setup.oversample,
        sources=setup.n_sources,
        orientations=max(1, setup.n_orientations),
        shape=setup.shape,
        ns=(lat.na, lat.nb, lat.nc),
        nopolar=exp.beam.nopolar,
        kahn=exp.beam.polarization != 0.0,
        oversample_polar=samp.oversample_polar,
        oversample_omega=samp.oversample_omega,
        oversample_thick=samp.oversample_thick,
        thick=setup.sensor.thick,
        point_pixel=setup.detector.point_pixel,
        dmin=setup.dmin_m > 0.0,
        sf_mode=sf_mode,
        sf_bounds=(*bounds, table.hkls) if sf_mode != "const" else (),
        default_F=float(table.default_F),
    )


def supported(setup: FrameSetup) -> bool:
    """Frames the fused kernel renders (the curved detector is not separable: eager)."""
    return not setup.detector.curved


# ----------------------------------------------------------------------------- physics


def _frac(x: torch.Tensor) -> torch.Tensor:
    """x - nearest integer (C's ceil(x - 0.5))."""
    return x - torch.ceil(x - 0.5)


def sincg(delta: torch.Tensor, n: int) -> torch.Tensor:
    """sin(N pi d)/sin(pi d) for d = h - round(h) in [-1/2, 1/2].

    Small N: the Chebyshev polynomial U_{N-1}(cos pi d) (one cos, N-2 multiply-adds, exactly
    N at d = 0 with no special case). Large N: the sine ratio.
    """
    if n <= CHEBYSHEV_MAX_N:
        x2 = 2.0 * torch.cos(math.pi * delta)
        u_prev, u = torch.ones_like(x2), x2  # U_0, U_1
        if n == 1:
            return u_prev
        for _ in range(n - 2):
            u_prev, u = u, x2 * u - u_prev
        return u
    num = torch.sin((n * math.pi) * delta)
    den = torch.sin(math.pi * delta)
    safe = torch.where(den == 0, 1.0, den)
    return torch.where(den == 0, float(n), num / safe)


def _sinc3(x: torch.Tensor) -> torch.Tensor:
    """3 (sin x / x - cos x) / x^2, with a series below x = 0.5 to avoid cancellation."""
    x2 = x * x
    safe = torch.where(x < 0.5, 1.0, x)
    direct = 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe)
    series = 1.0 + x2 * (-1 / 10 + x2 * (1 / 280 + x2 * (-1 / 15120 + x2 / 1330560)))
    return torch.where(x < 0.5, series, direct)


def lattice_transform(st: Structure, h, k, l, recip, fudge):  # noqa: E741
    """F_latt of fractional indices h, k, l for the frame's crystal shape and size."""
    ns = st.ns
    if st.shape is CrystalShape.SQUARE:
        out = None
        for x, n in zip((h, k, l), ns, strict=True):
            if n > 1:
                term = sincg(_frac(x), n)
                out = term if out is None else out * term
        return out if out is not None else torch.ones_like(h)
    dh, dk, dl = _frac(h), _frac(k), _frac(l)
    nnn = float(ns[0] * ns[1] * ns[2])
    if st.shape is CrystalShape.ROUND:
        sh, sk, sl = dh * ns[0], dk * ns[1], dl * ns[2]
        hrad = sh * sh + sk * sk + sl * sl
        return nnn * _ROUND_NORM * _sinc3(math.pi * torch.sqrt(hrad * fudge))
    dx = dh * recip[0, 0] + dk * recip[1, 0] + dl * recip[2, 0]
    dy = dh * recip[0, 1] + dk * recip[1, 1] + dl * recip[2, 1]
    dz = dh * recip[0, 2] + dk * recip[1, 2] + dl * recip[2, 2]
    rad = (dx * dx + dy * dy + dz * dz) * (nnn * nnn)
    if st.shape is CrystalShape.GAUSS:
        return nnn * torch.exp(-(rad / 0.63 * fudge))
    return nnn * (rad * fudge < 0.3969).to(h.dtype)


def _fcell_squared(st: Structure, table, h, k, l, sfv):  # noqa: E741
    if st.sf_mode == "const":
        return st.default_F * st.default_F
    from engine.structure_factors import lookup_nearest, lookup_tricubic

    look = lookup_tricubic if st.sf_mode == "tricubic" else lookup_nearest
    f = look(sfv, table, h, k, l)
    return f * f


# Indices into the per-frame scalar vector.
_SCALE, _BG, _OMEGA_NUM, _MU, _STEP_MU, _POLAR, _DMIN, _FUDGE = range(8)
_NSCALARS = 8


def block_kernel(
    st: Structure,
    table,
    gs,
    gf,
    depth,
    pa,
    pe,
    inv_lam,
    cells,
    ai,
    odet_par,
    e_in,
    b_in,
    recip,
    sfv,
    scal,
):
    """One block of pixels: (rows, cols) photons/pixel (the graph torch.compile fuses).

    gs (A, R), gf (B, F): slow/fast sub-pixel centre coordinates relative to the beam spot;
    depth (L,): layer depths. Samples span dims (L, A, B, S, M, R, F) and are reduced here.
    """
    nl, na_, nb_ = depth.shape[0], gs.shape[0], gf.shape[0]
    ns_, nm = pa.shape[0], cells.shape[1] // 3
    rows, cols = gs.shape[1], gf.shape[1]

    def src(t):  # (S,) -> 7D
        return t.view(1, 1, 1, ns_, 1, 1, 1)

    g_s = gs.view(1, na_, 1, 1, 1, rows, 1)
    g_f = gf.view(1, 1, nb_, 1, 1, 1, cols)
    dep = depth.view(nl, 1, 1, 1, 1, 1, 1)
    # pixel position about each incident direction: (L, A, B, S, 1, R, F)
    p_par = src(pa[:, 0]) + g_f * src(pa[:, 1]) + g_s * src(pa[:, 2]) + dep * src(pa[:, 3])
    pp = [
        src(pe[:, 0, j]) + g_f * src(pe[:, 1, j]) + g_s * src(pe[:, 2, j]) + dep * src(pe[:, 3, j])
        for j in range(3)
    ]
    pp2 = pp[0] * pp[0] + pp[1] * pp[1] + pp[2] * pp[2]
    r = torch.sqrt(p_par * p_par + pp2)
    w = torch.where(p_par >= 0, pp2 / (p_par + r), r - p_par)
    inv = src(inv_lam) / r

    # fractional Miller indices for every orientation: (L, A, B, S, M, R, F)
    c = cells.view(3, nm, 3)
    a_i = ai.view(ns_, nm, 3)
    hkl = []
    for j in range(3):
        cj = [c[i, :, j].view(1, 1, 1, 1, nm, 1, 1) for i in range(3)]
        aj = a_i[:, :, j].view(1, 1, 1, ns_, nm, 1, 1)
        hkl.append((pp[0] * cj[0] + pp[1] * cj[1] + pp[2] * cj[2] - w * aj) * inv)
    h, k, l = hkl  # noqa: E741
    f_latt = lattice_transform(st, h, k, l, recip, scal[_FUDGE])
    intensity = f_latt * f_latt * _fcell_squared(st, table, h, k, l, sfv)

    # per-sample factors
    r0 = r[:, :, :, :1]  # source 0's airpath, as C's omega and parallax use
    need_omega = True
    if st.point_pixel:
        omega = 1.0 / (r0 * r0)
    else:
        omega = scal[_OMEGA_NUM] / (r0 * r0) / r0
    polar = None
    if not st.nopolar:
        inv_r2 = 1.0 / (r * r)
        cos2 = p_par * p_par * inv_r2
        sin2 = pp2 * inv_r2
        factor = 1.0 + cos2
        if st.kahn:
            ev = [src(e_in[:, j]) for j in range(3)]
            bv = [src(b_in[:, j]) for j in range(3)]
            e = pp[0] * ev[0] + pp[1] * ev[1] + pp[2] * ev[2]
            b = pp[0] * bv[0] + pp[1] * bv[1] + pp[2] * bv[2]
            e2, b2 = e * e, b * b
            den = e2 + b2
            cos2psi = torch.where(den > 0, (e2 - b2) / torch.where(den > 0, den, 1.0), 1.0)
            factor = factor - scal[_POLAR] * cos2psi * sin2
        polar = 0.5 * factor
    valid = None
    if st.dmin:
        stol = 0.5 * (torch.sqrt(pp2 + w * w) / r) * src(inv_lam)
        valid = stol * scal[_DMIN] <= 0.5
    capture = None
    if st.thick:
        pos_dot_o = odet_par[0] + g_f * odet_par[1] + g_s * odet_par[2] + dep
        parallax = pos_dot_o / r0
        a = dep * scal[_MU] / parallax
        b = scal[_STEP_MU] / parallax
        capture = -torch.exp(-a) * torch.expm1(-b)  # (L, A, B, 1, 1, R, F)

    weight = None

    def times(x, y):
        return y if x is None else x * y

    if st.oversample_polar and polar is not None:
        weight = times(weight, polar)
    if valid is not None:
        weight = times(weight, valid.to(intensity.dtype))
    if st.oversample_thick and capture is not None:
        weight = times(weight, capture)
    if st.oversample_omega:
        weight = times(weight, omega)
        need_omega = False
    contrib = intensity if weight is None else intensity * weight
    total = contrib.sum(dim=(0, 1, 2, 3, 4))  # (R, F)

    pixel = (total + scal[_BG]) * scal[_SCALE]
    if capture is not None and not st.oversample_thick:
        pixel = pixel * capture[-1, 0, 0, 0, 0]  # C keeps the last layer's value
    if polar is not None and not st.oversample_polar:
        if valid is None:
            first = polar[0, 0, 0, 0, 0]
        else:  # polarization of the first sample (C order) inside the resolution limit
            order = torch.arange(nl * na_ * nb_ * ns_, device=gs.device).view(nl, na_, nb_, ns_)
            key = torch.where(valid, order.view(nl, na_, nb_, ns_, 1, 1, 1), _BIG)
            kmin = key.amin(dim=(0, 1, 2, 3), keepdim=True)
            pick = (key == kmin) & valid
            first = torch.where(pick, polar, 0.0).sum(dim=(0, 1, 2, 3, 4))
        pixel = pixel * first
    if need_omega:
        pixel = pixel * omega[0, 0, 0, 0, 0]
    return pixel


# ---------------------------------------------------------------------- frame tensors


def frame_inputs(setup: FrameSetup) -> dict[str, torch.Tensor]:
    """Hoisted per-frame tensors for the fused graph (cached in ``setup.t``)."""
    cached = setup.t.get("_fused_inputs")
    if cached is not None:
        return cached
    t = setup.t
    geo = setup.detector
    kw = {"dtype": setup.dtype, "device": setup.device}
    sensor = setup.sensor
    depth = torch.tensor([i * sensor.step for i in range(sensor.layers)], **kw)
    scal = [0.0] * _NSCALARS
    scal[_SCALE] = R_E_SQR * setup.fluence / setup.steps
    scal[_BG] = setup.background
    scal[_OMEGA_NUM] = geo.pixel_size**2 * geo.close_distance
    scal[_MU] = sensor.mu
    scal[_STEP_MU] = sensor.step * sensor.mu
    scal[_POLAR] = setup.experiment.beam.polarization
    scal[_DMIN] = setup.dmin_m
    scal[_FUDGE] = setup.experiment.crystal.fudge
    if setup.sf_table.hkls:
        sfv = setup.sf_values()
    else:
        sfv = torch.zeros(1, **kw)
    out = {
        "depth": depth,
        "pa": t["par"].contiguous(),
        "pe": t["perp"].contiguous(),
        "inv_lam": t["inv_lambda"].contiguous(),
        "cells": t["cells"].contiguous(),
        "ai": t["cells_dot_incident"].contiguous(),
        "odet_par": t["odet_par"].contiguous(),
        "e_in": t["e_in"].contiguous(),
        "b_in": t["b_in"].contiguous(),
        "recip": t["recip"].contiguous(),
        "sfv": sfv,
        "scal": torch.tensor(scal, **kw),
    }
    t["_fused_inputs"] = out
    return out


def _coordinates(setup: FrameSetup, lo: int, n: int, ref: float) -> torch.Tensor:
    """(oversample, n) sub-pixel centre coordinates of pixels lo..lo+n-1 minus ref (m)."""
    os_ = setup.oversample
    size = setup.subpixel_size
    idx = torch.arange(lo, lo + n, dtype=torch.float64)
    sub = torch.arange(os_, dtype=torch.float64)
    coords = size * (idx[None, :] * os_ + sub[:, None]) + size / 2.0 - ref
    return coords.to(device=setup.device, dtype=setup.dtype)


# ------------------------------------------------------------------------ block shapes


def _bucket(n: int, lo: int, factor: int, hi: int) -> int:
    p = lo
    while p < n and p * factor <= hi:
        p *= factor
    return p


def block_shape(
    setup: FrameSetup, rows: int, cols: int, max_pixels: int | None = None
) -> tuple[int, int]:
    """Fixed (rows, cols) of a block, from a few buckets, so that few graphs are compiled.

    Columns: a power of two from 64 to 1024 (2048 on a GPU); rows: 16 x a power of 4. The
    pixel budget per block depends on the device (a CPU block stays in cache, a GPU block
    fills the device) and shrinks with the samples per pixel, so memory is bounded by the
    block (never by the window) even where the compiler keeps per-sample values.
    """
    cuda = setup.device.type == "cuda"
    if max_pixels is None:
        samples = max(1, setup.steps * setup.sensor.layers)
        if cuda:
            max_pixels = min(1 << 20, max(1 << 16, (1 << 25) // samples))
        else:
            max_pixels = min(1 << 18, max(1 << 12, (1 << 21) // samples))
    fb = _bucket(cols, 64, 2, 2048 if cuda else 1024)
    rb = _bucket(rows, 16, 4, max(16, max_pixels // fb))
    return rb, fb


# --------------------------------------------------------------------------- compiling


def _graph(setup: FrameSetup, st: Structure, compiled: bool):
    key = (st, compiled)
    fn = _graphs.get(key)
    if fn is not None:
        return fn
    with _lock:
        fn = _graphs.get(key)
        if fn is not None:
            return fn
        table = setup.sf_table

        def kernel(*frame_tensors):
            return block_kernel(st, table, *frame_tensors)

        if compiled:
            _configure_inductor()
            fn = torch.compile(kernel, dynamic=False, fullgraph=True, options=_INDUCTOR_OPTIONS)
        else:
            fn = kernel
        _graphs[key] = fn
        return fn


def render_region(
    setup: FrameSetup,
    slow: tuple[int, int],
    fast: tuple[int, int],
    out: torch.Tensor,
    compiled: bool = True,
    max_pixels: int | None = None,
) -> None:
    """Render pixels [slow) x [fast) into ``out`` (rows, cols), block by block."""
    geo = setup.detector
    st = structure_of(setup)
    inputs = frame_inputs(setup)
    rows, cols = slow[1] - slow[0], fast[1] - fast[0]
    rb, fb = block_shape(setup, rows, cols, max_pixels)
    fn = _graph(setup, st, compiled)
    args = [
        inputs[k]
        for k in (
            "depth",
            "pa",
            "pe",
            "inv_lam",
            "cells",
            "ai",
            "odet_par",
            "e_in",
            "b_in",
            "recip",
            "sfv",
            "scal",
        )
    ]
    # separable geometry: per-row and per-column coordinates, built once per region
    n_r, n_c = -(-rows // rb), -(-cols // fb)
    slow_coords = _coordinates(setup, slow[0], n_r * rb, geo.sbeam)
    slow_coords = slow_coords.unflatten(1, (n_r, rb)).transpose(0, 1).contiguous()
    fast_coords = _coordinates(setup, fast[0], n_c * fb, geo.fbeam)
    fast_coords = fast_coords.unflatten(1, (n_c, fb)).transpose(0, 1).contiguous()
    with torch.no_grad():
        for i in range(n_r):
            r0 = i * rb
            nr = min(rb, rows - r0)
            for j in range(n_c):
                c0 = j * fb
                nc = min(fb, cols - c0)
                block = fn(slow_coords[i], fast_coords[j], *args)
                out[r0 : r0 + nr, c0 : c0 + nc] = block[:nr, :nc]


def failed(setup: FrameSetup) -> bool:
    """True if compiling this frame's kernel failed in this process (it renders eager)."""
    return (structure_of(setup), setup.dtype, setup.device.type) in _failed


def try_render_region(setup, slow, fast, out) -> bool:
    """Render with the compiled graph; False (after a warning, once) when it cannot compile."""
    st = structure_of(setup)
    key = (st, setup.dtype, setup.device.type)
    if key in _failed:
        return False
    try:
        render_region(setup, slow, fast, out, compiled=True)
        return True
    except Exception as err:  # compiler missing or failing: eager is always correct
        _failed.add(key)
        warnings.warn(
            f"braggtile: compiled kernel unavailable ({type(err).__name__}: {err});"
            " using the eager kernel",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
