"""The compiled noise draws (``engine/noise.c``), built and loaded by :mod:`engine.native`.

Setting ``braggtile.noise.native`` (dask config): ``auto`` (default) uses the library when it
builds and numpy otherwise; ``off`` always uses numpy. Either way the draws are the same
integers and counts.

On the 2-core build machine a 1024 x 1024 tile of the seed frame (0.013 photons a pixel)
becomes ADU in about 6 ms in one pass (:func:`noise_adu`; 3 ms of it the Philox draws),
against about 19 ms drawing counts and ADU apart and 35-40 ms with numpy; building the
library takes about a second.
"""

from __future__ import annotations

import ctypes
import functools
import os

import numpy as np

from engine import native

_SOURCE = os.path.join(os.path.dirname(__file__), "noise.c")
_SETTING = "noise.native"
_I64 = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")
_F64 = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")


def enabled() -> bool:
    """Whether ``braggtile.noise.native`` allows the compiled draws (auto/on: yes; off: no)."""
    return native.enabled(_SETTING)


def library_path() -> str:
    """Where this source's library for this CPU lives (built or not)."""
    return native.library_path(_SOURCE)


@functools.lru_cache(maxsize=1)
def _load() -> ctypes.CDLL | None:
    """The library with its functions' signatures; None (numpy draws) if it cannot be built."""
    lib = native.load(_SOURCE)
    if lib is None:
        return None
    lib.bt_uniforms.argtypes = [
        _I64, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32,
        _F64, ctypes.c_void_p,
    ]  # fmt: skip
    lib.bt_uniforms.restype = None
    for name, mean in (("bt_poisson_small_f32", np.float32), ("bt_poisson_small_f64", np.float64)):
        function = getattr(lib, name)
        function.argtypes = [
            np.ctypeslib.ndpointer(mean, flags="C_CONTIGUOUS"), _I64, ctypes.c_int64,
            ctypes.c_uint64, ctypes.c_uint32, _F64, _I64,
        ]  # fmt: skip
        function.restype = ctypes.c_int64
    for name, out in (("bt_adu_u16", np.uint16), ("bt_adu_u32", np.uint32)):
        function = getattr(lib, name)
        function.argtypes = [
            _F64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_double,
            ctypes.c_double, ctypes.c_double, np.ctypeslib.ndpointer(out, flags="C_CONTIGUOUS"),
        ]  # fmt: skip
        function.restype = ctypes.c_int64
    for mean in ("f32", "f64"):
        for out in ("u16", "u32"):
            function = getattr(lib, f"bt_noise_adu_{mean}_{out}")
            function.argtypes = [
                ctypes.c_void_p, *[ctypes.c_int64] * 6, ctypes.c_uint64, ctypes.c_uint32,
                ctypes.c_void_p, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                ctypes.c_void_p, _I64, ctypes.POINTER(ctypes.c_int64),
            ]  # fmt: skip
            function.restype = ctypes.c_int64
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded library when the setting allows it and it builds, else None."""
    return _load() if enabled() else None


def uniforms(
    lib: ctypes.CDLL, index: np.ndarray, seed: int, frame: int, draw: int, pair: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Uniforms of 1-D int64 pixel indices: u, and v when ``pair`` (else None)."""
    index = np.ascontiguousarray(index, dtype=np.int64)
    u = np.empty(index.shape, dtype=np.float64)
    v = np.empty_like(u) if pair else None
    pointer = None if v is None else v.ctypes.data_as(ctypes.c_void_p)
    lib.bt_uniforms(index, index.size, seed, frame, draw, u, pointer)
    return u, v


def poisson_small(
    lib: ctypes.CDLL, mean: np.ndarray, index: np.ndarray, seed: int, frame: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of 1-D means (float32 or float64) below 12, 0 for means <= 0, and the positions
    of the means >= 12 (their counts left 0). ValueError if a mean is NaN or infinite."""
    mean = np.ascontiguousarray(mean)
    if mean.dtype not in (np.float32, np.float64):
        mean = mean.astype(np.float64)
    index = np.ascontiguousarray(index, dtype=np.int64)
    counts = np.empty(mean.shape, dtype=np.float64)
    rest = np.empty(mean.shape, dtype=np.int64)
    function = lib.bt_poisson_small_f32 if mean.dtype == np.float32 else lib.bt_poisson_small_f64
    others = function(mean, index, mean.size, seed, frame, counts, rest)
    if others < 0:
        raise ValueError("expected photon counts must be finite (found NaN or inf)")
    return counts, rest[:others]


def adu(
    lib: ctypes.CDLL,
    counts: np.ndarray,
    extra: np.ndarray | None,
    inside: np.ndarray | None,
    gain: float,
    offset: float,
    overload: int,
    dtype: np.dtype,
) -> tuple[np.ndarray, int]:
    """ADU (``dtype``: uint16 or uint32, the shape of ``counts``) of float64 photon counts:
    counts x gain (+ ``extra``, ADU) + offset, 0 outside ``inside``, clipped to [0,
    overload] and truncated; and the overloads (pixels above ``overload`` before clipping)."""
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    out = np.empty(counts.shape, dtype=dtype)
    pointers = []
    for array, kind in ((extra, np.float64), (inside, np.uint8)):
        if array is None:
            pointers.append(None)
            continue
        array = np.ascontiguousarray(array).view(kind) if array.dtype == bool else array
        array = np.ascontiguousarray(array, dtype=kind)
        if array.size != counts.size:
            raise ValueError(f"{array.size} values for {counts.size} counts")
        pointers.append(array)
    function = lib.bt_adu_u16 if out.dtype == np.uint16 else lib.bt_adu_u32
    c_pointers = [None if a is None else a.ctypes.data_as(ctypes.c_void_p) for a in pointers]
    overloads = function(counts, *c_pointers, counts.size, gain, offset, float(overload), out)
    return out, int(overloads)


def noise_adu(
    lib: ctypes.CDLL,
    means: np.ndarray,
    first: tuple[int, int],
    fast_pixels: int,
    seed: int,
    frame: int,
    inside: np.ndarray | None,
    gain: float,
    offset: float,
    overload: int,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray, int]:
    """ADU (``dtype``: uint16 or uint32) of the Poisson counts of a 2-D window of expected
    photons ``means`` (float32 or float64, rows contiguous) whose first pixel is ``first``
    (slow, fast) of a detector ``fast_pixels`` wide, in one pass: the counts of
    :func:`poisson_small` and the ADU of :func:`adu` (no read-out noise), without the index
    array or the float64 counts. Returns the ADU, the raster positions of the means >= 12
    (ADU 0 there, for the caller to draw) and the other pixels' overloads. ValueError if a
    mean is NaN or infinite."""
    means = np.asarray(means)
    if means.dtype not in (np.float32, np.float64) or means.strides[1] != means.itemsize:
        means = np.ascontiguousarray(means, dtype=np.float64)
    rows, cols = means.shape
    out = np.empty((rows, cols), dtype=dtype)
    rest = np.empty(rows * cols, dtype=np.int64)
    mask = None
    if inside is not None:
        mask = np.ascontiguousarray(inside, dtype=bool).reshape(-1).view(np.uint8)
        if mask.size != out.size:
            raise ValueError(f"{mask.size} mask values for {out.size} pixels")
    mean_type = "f32" if means.dtype == np.float32 else "f64"
    out_type = "u16" if out.dtype == np.uint16 else "u32"
    overloads = ctypes.c_int64(0)
    others = getattr(lib, f"bt_noise_adu_{mean_type}_{out_type}")(
        means.ctypes.data_as(ctypes.c_void_p), rows, cols, means.strides[0] // means.itemsize,
        first[0], first[1], fast_pixels, seed, frame,
        None if mask is None else mask.ctypes.data_as(ctypes.c_void_p), gain, offset,
        float(overload), out.ctypes.data_as(ctypes.c_void_p), rest, ctypes.byref(overloads),
    )  # fmt: skip
    if others < 0:
        raise ValueError("expected photon counts must be finite (found NaN or inf)")
    return out, rest[:others], int(overloads.value)
