"""The pixel kernel: renders any rectangular window of a frame from a :class:`FrameSetup`.

:func:`render_block` evaluates every sample (sensor layer x sub-pixel x source x
orientation) of a block of pixels and reduces them in one graph, from the formulas of
:mod:`engine.physics`. :func:`render_window` runs it either compiled by inductor (C++/OpenMP
with SIMD on CPU, from AOTInductor packages; Triton on CUDA, through ``torch.compile``; a
single loop nest per block, no per-sample tensor ever reaches memory) or eagerly, block by
block; the curved detector (not separable) always runs eagerly. Which one is
``braggtile.compile.mode`` (dask config): ``auto`` compiles frames of at least
``braggtile.compile.threshold`` samples.

Every quantity of a pixel is a function of that pixel's indices and the frame set-up only,
so a window equals the same slice of a full-frame render. The compiled graph depends only on
the frame's :class:`~engine.frame.Structure` and block shape; frame constants enter as
tensors, so one graph serves all blocks and frames with that structure. Compiled blocks have
a few fixed shapes (ragged blocks are padded, the padding discarded); eager blocks hold at
most ``braggtile.kernel.eager-block-samples`` samples, so memory is bounded by the block,
never by the window. Compiled artifacts are cached on disk (``TORCHINDUCTOR_CACHE_DIR``): a
new process loads a CPU package in milliseconds, and torch.compile's graphs hit inductor's
cache, so a restarted worker skips code generation.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import threading
import warnings

import dask.config
import torch

from engine import config
from engine.frame import FrameSetup, FrameTensors, Structure
from engine.memory import keep_freed_memory
from engine.native import cpu_flags_digest
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
# With several samples per sub-pixel: never store a per-sample value however often it is read
# (d - i0, a graph output, is stored once per sub-pixel and bounds the inlined expressions).
_SAMPLE_LOOP_OPTIONS = {
    **_INDUCTOR_OPTIONS,
    "realize_reads_threshold": 1000,
    "realize_acc_reads_threshold": 1000,
}


def _sample_loop(st: Structure) -> bool:
    """Whether a sub-pixel has several samples (sources x orientations) to loop over."""
    return st.sources * st.orientations > 1


def _inductor_options(st: Structure) -> dict:
    return dict(_SAMPLE_LOOP_OPTIONS if _sample_loop(st) else _INDUCTOR_OPTIONS)


def _compile_options(st: Structure) -> dict:
    """:func:`_inductor_options` less those this torch's inductor does not know (torch 2.11,
    say, has no ``realize_cpu_opcount_threshold`` and rejects a compile that names it); imports
    inductor, so only where a kernel is compiled (package names keep the full options)."""
    import torch._inductor.config as iconf

    known = iconf.get_config_copy()
    return {k: v for k, v in _inductor_options(st).items() if k in known}


def render_block(
    st: Structure, table: StructureFactorTable, ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor
) -> torch.Tensor:
    """One block of pixels: (rows, cols) photons/pixel.

    ``gs`` (A, rows), ``gf`` (B, cols): slow/fast sub-pixel coordinates relative to the beam
    spot (A = B = oversample), float64 (the frame's dtype will do for a flat detector).
    Samples span (L, A, B, S, M, R, F) and are reduced here.
    """
    return block_outputs(st, table, ft, gs, gf)[0]


def block_outputs(
    st: Structure, table: StructureFactorTable, ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The graph torch.compile fuses: the block's pixels (:func:`render_block`), then, with
    several samples per sub-pixel, the scattering vector d - i0 (three (L, A, B, 1, 1, R, F)).

    Returning d - i0 makes the compiler store it once per sub-pixel; the sample loop (every
    source and orientation of a sub-pixel, innermost) then reads it instead of recomputing
    the pixel's geometry per sample, and every per-sample value stays in registers (the
    inductor options keep them unstored however often they are read).
    """
    # every source's positions only for factors evaluated per source (else source 0's)
    per_src = st.dmin or (st.oversample_polar and not st.nopolar)
    smp = sample_geometry(st, ft, gs, gf, per_source=per_src)
    f_latt = lattice_transform(
        st.shape, st.many_cells, smp.h, smp.k, smp.l, ft.ns, ft.shape_n, ft.recip, ft.fudge
    )
    f2 = fcell_squared(st.sf_mode, table, ft.sf_values, smp.h, smp.k, smp.l)
    # x 1 leaves a real orientation's value as it is; bucket padding adds exactly 0
    intensity = f_latt.square() * f2 * ft.orientation_weight.view(1, 1, 1, 1, -1, 1, 1)
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
    pixel = _reduce(st, ft, intensity, omega, polar, valid, capture)
    return (pixel, *smp.q) if _sample_loop(st) else (pixel,)


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
    # sources and orientations first: an inner loop in which a pixel's geometry is invariant
    total = contrib.sum(dim=(3, 4)).sum(dim=(0, 1, 2))  # (R, F)

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


#: Columns of a compiled block (defined torch-free in :mod:`engine.config` for the graph).
BLOCK_COLS = config.BLOCK_COLS


def _samples_per_pixel(setup: FrameSetup) -> int:
    """Samples a pixel computes (bucket padding included): a function of the structure."""
    st = setup.structure
    return max(1, st.layers * st.oversample**2 * st.sources * st.orientations)


def block_shape(setup: FrameSetup, max_pixels: int | None = None) -> tuple[int, int]:
    """Fixed (rows, cols) of a compiled block: one shape per frame structure and device.

    The shape never depends on the window (it is not an argument), so every tile size and
    the whole frame run the same compiled graph: no compile ever happens mid-job for a new
    tile size (windows are padded to whole blocks, the padding discarded).
    Columns: :data:`BLOCK_COLS`; rows: 16 x a power of 4 within a pixel budget that depends
    on the device (a CPU block stays in cache, a GPU block fills the device) and shrinks with
    the samples per pixel, so memory is bounded by the block even where the compiler keeps
    per-sample values.
    """
    cuda = setup.device.type == "cuda"
    if max_pixels is None:
        samples = _samples_per_pixel(setup)
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
    samples = _samples_per_pixel(setup)
    pixels = max(1, config.integer("kernel.eager-block-samples") // samples)
    fb = max(1, min(cols, pixels))
    return max(1, min(rows, pixels // fb)), fb


# --------------------------------------------------------------------------- compiling


def _cache_dir() -> str:
    """Inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, default
    ``~/.cache/braggtile/inductor``), shared by every process of the user."""
    return os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR",
        os.path.join(os.path.expanduser("~"), ".cache", "braggtile", "inductor"),
    )


def _configure_inductor() -> None:
    """Persistent caches (reuse across processes) and a recompile budget for many configs."""
    _cache_dir()
    import torch._dynamo.config as dconf
    import torch._inductor.config as iconf

    iconf.fx_graph_cache = True
    per_graph = config.integer("compile.recompile-limit")
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dconf, name):
            setattr(dconf, name, max(getattr(dconf, name), per_graph))
    for name in ("accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(dconf, name):
            setattr(dconf, name, max(getattr(dconf, name), 8 * per_graph))


class KernelCache:
    """The block functions one owner has made, by frame structure: compiled graphs, loaded
    AOTInductor packages, and the structures that failed to compile (they render eager).

    A Dask worker's :class:`~tiling.worker.TilingPlugin` owns one; an in-process render uses
    :meth:`shared` (or its own instance). Thread-safe: threads of a worker share it.
    """

    _shared: KernelCache | None = None

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._graphs: dict = {}  # (structure, compiled) -> block function
        self._failed: set = set()  # (structure, dtype, device type) that failed to compile
        #: AOTInductor packages this cache loaded (built first or found on disk) / built.
        self.packages_loaded = 0
        self.packages_built = 0

    def __reduce__(self):
        """Block functions belong to their process: a cache arrives elsewhere empty (a worker
        plugin is pickled to reach its worker)."""
        return (KernelCache, ())

    @classmethod
    def shared(cls) -> KernelCache:
        """The process's cache for in-process renders that pass none (CLI, bench, API)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def graph(self, setup: FrameSetup, compiled: bool):
        """The block function of the frame's structure, compiled or not (made once)."""
        key = (setup.structure, compiled)
        fn = self._graphs.get(key)
        if fn is not None:
            return fn
        with self.lock:
            fn = self._graphs.get(key)
            if fn is None:
                fn = self._graphs[key] = self._make(setup, compiled)
            return fn

    def _make(self, setup: FrameSetup, compiled: bool):
        st, table = setup.structure, setup.sf_table

        def block(ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
            return render_block(st, table, ft, gs, gf)

        if not compiled:
            return block

        def outputs(ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor) -> tuple:
            return block_outputs(st, table, ft, gs, gf)

        def torch_compiled():
            _configure_inductor()
            graph = torch.compile(
                outputs,
                dynamic=False,
                fullgraph=True,
                options=_compile_options(st),
            )
            return lambda ft, gs, gf: graph(ft, gs, gf)[0]

        return _AotBlock(st, table, torch_compiled, self) if aot_enabled() else torch_compiled()

    def failed(self, setup: FrameSetup) -> bool:
        """True if compiling this frame's kernel failed here (it renders eager)."""
        return (setup.structure, setup.dtype, setup.device.type) in self._failed

    def mark_failed(self, setup: FrameSetup) -> None:
        """Render this frame's structure eagerly from now on (compiling it failed)."""
        self._failed.add((setup.structure, setup.dtype, setup.device.type))

    def compile_count(self) -> int:
        """Kernels built or loaded: dynamo's unique graphs (process-wide) plus the AOTInductor
        packages of this cache. Each new frame structure, dtype or device adds one; a tile
        size never does."""
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"]) + self.packages_loaded


# ------------------------------------------------------------------- AOTInductor packages


def aot_enabled() -> bool:
    """Whether compiled CPU blocks run from AOTInductor packages (dask config
    ``braggtile.compile.aot``: true, false, or auto = true; CUDA blocks always use
    torch.compile).

    Measured on the seed frame (4096 x 4096, 2 cores): a new process renders its first frame
    0.05 s after loading the package, against 2.0-3.0 s for dynamo tracing plus an inductor
    cache hit (and 0.85 s more to import dynamo); building a package takes about 13 s, once
    per frame structure, against 9.4 s for torch.compile. Pixels are bit-identical."""
    value = str(dask.config.get("braggtile.compile.aot", "auto")).lower()
    return value not in ("false", "0", "no", "off")


def aot_cache_dir() -> str:
    """Folder of the AOTInductor packages (next to inductor's cache)."""
    return os.path.join(_cache_dir(), "braggtile-aoti")


@functools.lru_cache(maxsize=1)
def cpu_fingerprint() -> str:
    """The host's instruction-set identity: packages are built with ``-march=native``, so a
    package is only loaded by a CPU with the same machine, ATen capability and flags."""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{platform.machine()}-{capability}-{cpu_flags_digest()}"


@functools.lru_cache(maxsize=1)
def kernel_source_fingerprint() -> str:
    """Digest of the code a block graph is traced from (this module, :mod:`engine.physics`,
    :mod:`engine.frame`, :mod:`engine.config`), so a changed kernel never loads a package
    built from an older one."""
    import engine.config
    import engine.frame
    import engine.physics

    digest = hashlib.sha256()
    for path in (__file__, engine.physics.__file__, engine.frame.__file__, engine.config.__file__):
        with open(path, "rb") as fh:
            digest.update(fh.read())
    return digest.hexdigest()[:16]


class _BlockModule(torch.nn.Module):
    """The block function with flat tensor inputs (gs, gf, *FrameTensors), for torch.export."""

    def __init__(self, st: Structure, table: StructureFactorTable):
        super().__init__()
        self.st, self.table = st, table

    def forward(self, gs: torch.Tensor, gf: torch.Tensor, *tensors: torch.Tensor) -> tuple:
        return block_outputs(self.st, self.table, FrameTensors(*tensors), gs, gf)


#: Model instances per loaded package: threads of one process may run a block at once.
AOT_RUNNERS = 4
#: Frame tensors whose signature a block function keeps (by identity; then it starts over).
FRAME_KEYS_KEPT = 16


def signature(tensors) -> tuple:
    """((shape, dtype name), ...) of ``tensors``: what a package is built for."""
    return tuple((tuple(t.shape), str(t.dtype)) for t in tensors)


class _AotBlock:
    """A compiled block function served by AOTInductor packages on the CPU.

    A package per (structure, structure-factor table, input shapes and dtypes, CPU) is built
    once (``torch.export`` + ``aoti_compile_and_package``, written atomically) and loaded by
    every later process in milliseconds through torch's C++ package loader: no dynamo, no
    inductor import, no cache look-up at start-up. Any failure falls back, for good in this
    process, to ``make_fallback()`` (torch.compile, made on first use). ``owner``: the
    :class:`KernelCache` whose lock and package counts it uses.
    """

    def __init__(
        self, st: Structure, table: StructureFactorTable, make_fallback, owner: KernelCache
    ):
        self.st, self.table = st, table
        self.owner = owner
        self._make_fallback = make_fallback
        self._fallback = None
        self.runners: dict = {}
        self.broken = False
        # id(ft) -> (ft, signature(ft)): a frame's 20-odd tensors are the same objects for
        # every block, and their signature cost 22 us a block (3 ms of a 4096x4096 frame)
        self._frame_keys: dict[int, tuple[FrameTensors, tuple]] = {}

    def frame_key(self, ft: FrameTensors) -> tuple:
        """:func:`signature` of ``ft``, made once per FrameTensors object (held, so its id
        cannot be reused while kept)."""
        entry = self._frame_keys.get(id(ft))
        if entry is None or entry[0] is not ft:
            if len(self._frame_keys) >= FRAME_KEYS_KEPT:
                self._frame_keys.clear()
            entry = self._frame_keys[id(ft)] = (ft, signature(ft))
        return entry[1]

    def fallback(self, ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback(ft, gs, gf)

    def __call__(self, ft: FrameTensors, gs: torch.Tensor, gf: torch.Tensor) -> torch.Tensor:
        if self.broken or gs.device.type != "cpu":
            return self.fallback(ft, gs, gf)
        inputs = (gs, gf, *ft)
        key = signature((gs, gf)) + self.frame_key(ft)
        runner = self.runners.get(key)
        if runner is None:
            runner = self._runner(key, inputs)
            if runner is None:
                return self.fallback(ft, gs, gf)
        return runner.boxed_run(list(inputs))[0]

    def _runner(self, key: tuple, inputs: tuple):
        """The loaded package for ``key`` (built first if need be), or None if that failed."""
        with self.owner.lock:
            runner = self.runners.get(key)
            if runner is None and not self.broken:
                try:
                    runner = self.runners[key] = self._load_or_build(key, inputs)
                except Exception as err:  # exporter or compiler missing or failing
                    self.broken = True
                    warnings.warn(
                        f"braggtile: AOTInductor package unavailable ({type(err).__name__}:"
                        f" {err}); using torch.compile",
                        RuntimeWarning,
                        stacklevel=3,
                    )
            return runner

    def package_path(self, key: tuple) -> str:
        t = self.table
        text = repr(
            (
                self.st,
                (t.h_min, t.h_max, t.k_min, t.k_max, t.l_min, t.l_max, t.default_F, t.hkls),
                hashlib.sha256(t.values.tobytes()).hexdigest(),
                key,
                sorted(_inductor_options(self.st).items()),
                torch.__version__,
                cpu_fingerprint(),
                kernel_source_fingerprint(),
            )
        )
        name = hashlib.sha256(text.encode()).hexdigest()[:32]
        return os.path.join(aot_cache_dir(), f"block-{name}.pt2")

    def _load_or_build(self, key: tuple, inputs: tuple) -> object:
        path = self.package_path(key)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with _build_lock(path):  # workers sharing the cache build a package once
                if not os.path.exists(path):
                    self._build(path, inputs)
        # torch's C++ loader, as torch._inductor.aoti_load_package uses it (whose import costs
        # 0.85 s); the block's inputs and output are flat tensors, so no pytree specs apply
        runner = torch._C._aoti.AOTIModelPackageLoader(path, "model", False, AOT_RUNNERS, -1)
        self.owner.packages_loaded += 1
        return runner

    def _build(self, path: str, inputs: tuple) -> None:
        """Export the block for these inputs and write its package at ``path``, atomically."""
        _configure_inductor()
        program = torch.export.export(_BlockModule(self.st, self.table), inputs, strict=False)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp.pt2"
        torch._inductor.aoti_compile_and_package(
            program, package_path=tmp, inductor_configs=_compile_options(self.st)
        )
        os.replace(tmp, path)  # atomic: a reader sees all of it or nothing
        self.owner.packages_built += 1


@contextlib.contextmanager
def _build_lock(path: str):
    """An exclusive lock on ``path``.lock (POSIX ``flock``, released if its holder dies), so
    processes sharing a cache wait for one build instead of repeating it; none elsewhere."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent builds, each written atomically
        yield
        return
    with open(f"{path}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def supported(setup: FrameSetup) -> bool:
    """Frames the compiled kernel renders (the curved detector is not separable: eager)."""
    return not setup.structure.curved


def use_compiled(setup: FrameSetup) -> bool:
    """Whether this frame renders compiled (the same for every window of the frame)."""
    mode = config.compile_mode()
    if mode == "off" or not supported(setup):
        return False
    return mode == "on" or setup.samples >= config.integer("compile.threshold")


def render_region(
    setup: FrameSetup,
    slow: tuple[int, int],
    fast: tuple[int, int],
    out: torch.Tensor,
    kernels: KernelCache,
    compiled: bool = True,
) -> None:
    """Render pixels [slow) x [fast) into ``out`` (rows, cols), block by block."""
    geo = setup.detector
    rows, cols = slow[1] - slow[0], fast[1] - fast[0]
    if compiled:
        rb, fb = block_shape(setup)
    else:
        rb, fb = eager_block_shape(setup, rows, cols)
    fn = kernels.graph(setup, compiled)
    ft = setup.tensors
    os_, size, dev = setup.oversample, setup.subpixel_size, setup.device
    # separable geometry: per-row and per-column coordinates, built once per region; a flat
    # detector's positions are made in the frame's dtype, so its coordinates are cast here
    # once rather than in every block row (the same values); the curved one's stay float64
    n_r, n_c = -(-rows // rb), -(-cols // fb)
    kind = {"device": dev, "dtype": torch.float64 if setup.structure.curved else setup.dtype}
    slow_coords = subpixel_coordinates(slow[0], n_r * rb, os_, size, geo.sbeam).to(**kind)
    slow_coords = slow_coords.unflatten(1, (n_r, rb)).transpose(0, 1).contiguous()
    fast_coords = subpixel_coordinates(fast[0], n_c * fb, os_, size, geo.fbeam).to(**kind)
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


def _try_compiled(setup: FrameSetup, slow, fast, out: torch.Tensor, kernels: KernelCache) -> bool:
    """Render compiled; False (after a warning, once per cache) when it cannot compile."""
    if kernels.failed(setup):
        return False
    try:
        render_region(setup, slow, fast, out, kernels, compiled=True)
        return True
    except Exception as err:  # compiler missing or failing: eager is always correct
        kernels.mark_failed(setup)
        warnings.warn(
            f"braggtile: compiled kernel unavailable ({type(err).__name__}: {err});"
            " using the eager kernel",
            RuntimeWarning,
            stacklevel=3,
        )
        return False


def render_window(
    setup: FrameSetup,
    window: Window,
    kernels: KernelCache | None = None,
    compiled: bool | None = None,
) -> torch.Tensor:
    """Render ``window`` of the frame: tensor (rows, cols) of photons/pixel; 0 outside the ROI
    and where the ``-mask`` file is 0.

    ``kernels``: the block functions to use and keep (default :meth:`KernelCache.shared`).
    ``compiled``: the compiled (True) or eager (False) kernel, whatever the dask config says;
    None: :func:`use_compiled`. A caller picks here rather than by ``dask.config.set``, which
    would change the kernel of every thread of the process while it lasts."""
    keep_freed_memory()  # block buffers reused from the heap, not mapped per call
    kernels = kernels or KernelCache.shared()
    geo = setup.detector
    window = Window(*window).validate(geo.slow_pixels, geo.fast_pixels)
    inside = window.intersect(setup.roi)
    make = torch.empty if inside == window else torch.zeros  # blocks fill a window in the ROI
    out = make(window.shape, dtype=setup.dtype, device=setup.device)
    if inside is None:
        return out
    region = out[inside.slices_in(window)]
    slow, fast = (inside.slow0, inside.slow1), (inside.fast0, inside.fast1)
    compiled = use_compiled(setup) if compiled is None else compiled and supported(setup)
    if not (compiled and _try_compiled(setup, slow, fast, region, kernels)):
        render_region(setup, slow, fast, region, kernels, compiled=False)
    skipped = setup.skipped(window)
    if skipped is not None and skipped.any():  # -mask: C skips these pixels, leaving 0
        out[torch.from_numpy(skipped).to(out.device)] = 0
    return out
