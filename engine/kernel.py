"""The pixel kernel: renders any rectangular window of a frame from a :class:`FrameSetup`.

:func:`render_block` evaluates every sample (sensor layer x sub-pixel x source x
orientation) of a block of pixels and reduces them in one graph, from the formulas of
:mod:`engine.physics`. :func:`render_window` runs it either compiled by ``torch.compile``
(inductor: C++/OpenMP with SIMD on CPU, Triton on CUDA; a single loop nest per block, no
per-sample tensor ever reaches memory) or eagerly, block by block; the curved detector (not
separable) always runs eagerly. Which one is ``braggtile.compile.mode`` (dask config):
``auto`` compiles frames of at least ``braggtile.compile.threshold`` samples.

Every quantity of a pixel is a function of that pixel's indices and the frame set-up only,
so a window equals the same slice of a full-frame render. The compiled graph depends only on
the frame's :class:`~engine.frame.Structure` and block shape; frame constants enter as
tensors, so one graph serves all blocks and frames with that structure. Compiled blocks have
a few fixed shapes (ragged blocks are padded, the padding discarded); eager blocks hold at
most ``braggtile.kernel.eager-block-samples`` samples, so memory is bounded by the block,
never by the window. Compiled artifacts are cached on disk by inductor
(``TORCHINDUCTOR_CACHE_DIR``), so a restarted worker skips code generation.
"""

from __future__ import annotations

import os
import threading
import warnings

import torch

from engine import config
from engine.frame import FrameSetup, FrameTensors, Structure
from engine.physics import (
    capture_fraction,
    fcell_squared,
    lattice_transform,
    per_source,
    polarization,
    sample_geometry,
    solid_angle,
    subpixel_coordinates,
    within_resolution,
)
from engine.structure_factors import StructureFactorTable
from engine.window import Window

_BIG = 1 << 30
# Keep the whole sample sum in one loop nest: never spill per-sample intermediates.
_INDUCTOR_OPTIONS = {
    "realize_cpu_opcount_threshold": 1000,
    "realize_opcount_threshold": 1000,
}

_lock = threading.Lock()
_graphs: dict = {}  # (structure, compiled) -> block function
_failed: set = set()  # (structure, dtype, device type) that failed to compile here


def render_block(
    st: Structure, table: StructureFactorTable, ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor
) -> torch.Tensor:
    """One block of pixels: (rows, cols) photons/pixel. The graph torch.compile fuses.

    ``gs`` (A, rows), ``gf`` (B, cols): float64 slow/fast sub-pixel coordinates relative to the
    beam spot (A = B = oversample). Samples span (L, A, B, S, M, R, F) and are reduced here.
    """
    smp = sample_geometry(st, ft, gs, gf)
    f_latt = lattice_transform(st.shape, st.ns, smp.h, smp.k, smp.l, ft.recip, ft.fudge)
    f2 = fcell_squared(st.sf_mode, table, ft.sf_values, smp.h, smp.k, smp.l)
    intensity = f_latt * f_latt * f2
    r0 = smp.r[:, :, :, :1]  # source 0's airpath, as C's omega and parallax use
    omega = solid_angle(r0, ft.omega_num, st.point_pixel)
    polar = None
    if not st.nopolar:
        polar = polarization(
            smp.p_par, smp.pp, smp.pp2, smp.r, ft.e_in, ft.b_in, ft.kahn_factor, st.kahn
        )
    valid = None
    if st.dmin:
        valid = within_resolution(smp.pp2, smp.w, smp.r, per_source(ft.inv_lambda), ft.dmin)
    capture = None
    if st.thick:
        depth = ft.depth.to(intensity.dtype).view(-1, 1, 1, 1, 1, 1, 1)
        capture = capture_fraction(smp.normal, r0, depth, ft.mu, ft.step_mu)
    return _reduce(st, ft, intensity, omega, polar, valid, capture)


def _reduce(st: Structure, ft: FrameTensors, intensity, omega, polar, valid, capture):
    """Sum the samples of each pixel, applying each factor per sample or, as C does without
    its -oversample_* flag, once per pixel (the first or last sample's value)."""
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
    contrib = intensity if weight is None else intensity * weight
    total = contrib.sum(dim=(0, 1, 2, 3, 4))  # (R, F)

    pixel = (total + ft.background) * ft.scale
    if capture is not None and not st.oversample_thick:
        pixel = pixel * capture[-1, 0, 0, 0, 0]  # C keeps the last layer's value
    if polar is not None and not st.oversample_polar:
        if valid is None:
            first = polar[0, 0, 0, 0, 0]
        else:  # polarization of the first sample (C order) inside the resolution limit
            nl, na_, nb_, ns_ = valid.shape[:4]
            order = torch.arange(nl * na_ * nb_ * ns_, device=valid.device)
            order = order.view(nl, na_, nb_, ns_, 1, 1, 1)
            key = torch.where(valid, order, _BIG)
            kmin = key.amin(dim=(0, 1, 2, 3), keepdim=True)
            pick = (key == kmin) & valid
            first = torch.where(pick, polar, 0.0).sum(dim=(0, 1, 2, 3, 4))
        pixel = pixel * first
    if not st.oversample_omega:
        pixel = pixel * omega[0, 0, 0, 0, 0]
    return pixel


# ------------------------------------------------------------------------ block shapes


#: Columns of a compiled block: on a CPU, the default tile edge (512), so tiles of 512 and
#: multiples are never padded; on a GPU, wider blocks fill the device.
BLOCK_COLS = {"cpu": 512, "cuda": 2048}


def block_shape(
    setup: FrameSetup, rows: int = 0, cols: int = 0, max_pixels: int | None = None
) -> tuple[int, int]:
    """Fixed (rows, cols) of a compiled block: one shape per frame structure and device.

    The shape never depends on the window (``rows``, ``cols`` are ignored), so every tile
    size and the whole frame run the same compiled graph: no compile ever happens mid-job
    for a new tile size (windows are padded to whole blocks, the padding discarded).
    Columns: :data:`BLOCK_COLS`; rows: 16 x a power of 4 within a pixel budget that depends
    on the device (a CPU block stays in cache, a GPU block fills the device) and shrinks with
    the samples per pixel, so memory is bounded by the block even where the compiler keeps
    per-sample values.
    """
    cuda = setup.device.type == "cuda"
    if max_pixels is None:
        samples = max(1, setup.steps * setup.sensor.layers)
        if cuda:
            max_pixels = min(1 << 20, max(1 << 16, (1 << 25) // samples))
        else:
            max_pixels = min(1 << 18, max(1 << 12, (1 << 21) // samples))
    fb = BLOCK_COLS["cuda" if cuda else "cpu"]
    rb = 16
    while rb * 4 * fb <= max_pixels:
        rb *= 4
    return rb, fb


def eager_block_shape(setup: FrameSetup, rows: int, cols: int) -> tuple[int, int]:
    """(rows, cols) of an eager block: at most eager-block-samples samples, one pixel at least."""
    samples = max(1, setup.steps * setup.sensor.layers)
    pixels = max(1, int(config.get("kernel.eager-block-samples")) // samples)
    fb = max(1, min(cols, pixels))
    return max(1, min(rows, pixels // fb)), fb


# --------------------------------------------------------------------------- compiling


def _configure_inductor() -> None:
    """Persistent caches (reuse across processes) and a recompile budget for many configs."""
    os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR",
        os.path.join(os.path.expanduser("~"), ".cache", "braggtile", "inductor"),
    )
    import torch._dynamo.config as dconf
    import torch._inductor.config as iconf

    iconf.fx_graph_cache = True
    per_graph = int(config.get("compile.recompile-limit"))
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dconf, name):
            setattr(dconf, name, max(getattr(dconf, name), per_graph))
    for name in ("accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(dconf, name):
            setattr(dconf, name, max(getattr(dconf, name), 8 * per_graph))


def _graph(setup: FrameSetup, compiled: bool):
    """The block function of the frame's structure, compiled or not (one per process)."""
    key = (setup.structure, compiled)
    fn = _graphs.get(key)
    if fn is not None:
        return fn
    with _lock:
        fn = _graphs.get(key)
        if fn is not None:
            return fn
        st, table = setup.structure, setup.sf_table

        def block(ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
            return render_block(st, table, ft, gs, gf)

        if compiled:
            _configure_inductor()
            fn = torch.compile(block, dynamic=False, fullgraph=True, options=_INDUCTOR_OPTIONS)
        else:
            fn = block
        _graphs[key] = fn
        return fn


def compile_count() -> int:
    """Graphs torch.compile has built in this process (dynamo's count of unique graphs): each
    new frame structure, dtype or device adds one; a new tile size must never add one."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def supported(setup: FrameSetup) -> bool:
    """Frames the compiled kernel renders (the curved detector is not separable: eager)."""
    return not setup.structure.curved


def use_compiled(setup: FrameSetup) -> bool:
    """Whether this frame renders compiled (the same for every window of the frame)."""
    mode = config.compile_mode()
    if mode == "off" or not supported(setup):
        return False
    return mode == "on" or setup.samples >= int(config.get("compile.threshold"))


def failed(setup: FrameSetup) -> bool:
    """True if compiling this frame's kernel failed in this process (it renders eager)."""
    return (setup.structure, setup.dtype, setup.device.type) in _failed


def render_region(
    setup: FrameSetup,
    slow: tuple[int, int],
    fast: tuple[int, int],
    out: torch.Tensor,
    compiled: bool = True,
) -> None:
    """Render pixels [slow) x [fast) into ``out`` (rows, cols), block by block."""
    geo = setup.detector
    rows, cols = slow[1] - slow[0], fast[1] - fast[0]
    if compiled:
        rb, fb = block_shape(setup, rows, cols)
    else:
        rb, fb = eager_block_shape(setup, rows, cols)
    fn = _graph(setup, compiled)
    ft = setup.tensors
    os_, size, dev = setup.oversample, setup.subpixel_size, setup.device
    # separable geometry: per-row and per-column coordinates, built once per region
    n_r, n_c = -(-rows // rb), -(-cols // fb)
    slow_coords = subpixel_coordinates(slow[0], n_r * rb, os_, size, geo.sbeam).to(dev)
    slow_coords = slow_coords.unflatten(1, (n_r, rb)).transpose(0, 1).contiguous()
    fast_coords = subpixel_coordinates(fast[0], n_c * fb, os_, size, geo.fbeam).to(dev)
    fast_coords = fast_coords.unflatten(1, (n_c, fb)).transpose(0, 1).contiguous()
    with torch.no_grad():
        for i in range(n_r):
            r0 = i * rb
            nr = min(rb, rows - r0)
            for j in range(n_c):
                c0 = j * fb
                nc = min(fb, cols - c0)
                block = fn(ft, slow_coords[i], fast_coords[j])
                out[r0 : r0 + nr, c0 : c0 + nc] = block[:nr, :nc]


def _try_compiled(setup: FrameSetup, slow, fast, out: torch.Tensor) -> bool:
    """Render compiled; False (after a warning, once) when it cannot compile."""
    key = (setup.structure, setup.dtype, setup.device.type)
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
            stacklevel=3,
        )
        return False


def render_window(setup: FrameSetup, window: Window) -> torch.Tensor:
    """Render ``window`` of the frame: tensor (rows, cols) of photons/pixel; 0 outside the ROI."""
    geo = setup.detector
    window = Window(*window).validate(geo.slow_pixels, geo.fast_pixels)
    out = torch.zeros(window.shape, dtype=setup.dtype, device=setup.device)
    inside = window.intersect(setup.roi)
    if inside is None:
        return out
    region = out[
        inside.slow0 - window.slow0 : inside.slow1 - window.slow0,
        inside.fast0 - window.fast0 : inside.fast1 - window.fast0,
    ]
    slow, fast = (inside.slow0, inside.slow1), (inside.fast0, inside.fast1)
    if not (use_compiled(setup) and _try_compiled(setup, slow, fast, region)):
        render_region(setup, slow, fast, region, compiled=False)
    return out
