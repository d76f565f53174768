"""Structure factors |F(hkl)| (unitless amplitudes): reading HKL/Fdump files into a table.

The torch lookups (nearest, tricubic) are in :mod:`engine.physics`.

The table follows C nanoBragg: values[h - h_min, k - k_min, l - l_min] for Miller indices in
[min, max], with one extra zero slot at the end of every axis, so its shape is
(h_range + 1, k_range + 1, l_range + 1) where h_range = h_max - h_min + 1.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import InputError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, eq=False)
class StructureFactorTable:
    """Structure factor amplitudes on an integer hkl grid, with nanoBragg's padding slot.

    hkls is the number of entries read (0 means "no file": every lookup gives default_F).
    """

    h_min: int
    h_max: int
    k_min: int
    k_max: int
    l_min: int
    l_max: int
    values: np.ndarray
    default_F: float
    hkls: int

    @property
    def ranges(self) -> tuple[int, int, int]:
        """(h_range, k_range, l_range): the number of indices along each axis, padding excluded."""
        return (
            self.h_max - self.h_min + 1,
            self.k_max - self.k_min + 1,
            self.l_max - self.l_min + 1,
        )

    def to_tensor(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """The values (padding included) as a contiguous tensor, to pass to the lookups."""
        import torch

        return torch.as_tensor(self.values, dtype=dtype, device=device).contiguous()


_MAX_GRID_POINTS = 1 << 31


def _number(token: str, path: str, lineno: int, name: str) -> float:
    try:
        value = float(token)
    except ValueError:
        message = f"{path}: line {lineno}: {name} = {token!r} is not a number"
        raise InputError("hkl", message) from None
    if name != "F" and not math.isfinite(value):
        raise InputError("hkl", f"{path}: line {lineno}: {name} = {token!r} is not finite")
    return value


def _parse_hkl_text(text: str, name: str) -> np.ndarray:
    """Rows (h, k, l, F) as an (n, 4) float64 array; InputError naming the line when malformed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on empty input; reported below
            data = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=None, ndmin=2)
        if data.shape[0] > 0 and data.shape[1] == 4 and np.isfinite(data[:, :3]).all():
            return data
    except ValueError:
        pass
    rows: list[tuple[float, ...]] = []  # slow path: find the offending line
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 4:
            raise InputError(
                "hkl", f"{name}: line {lineno}: expected 4 values 'h k l F', got {line.strip()!r}"
            )
        rows.append(tuple(_number(t, name, lineno, n) for t, n in zip(tokens, "hklF", strict=True)))
    if not rows:
        raise InputError("hkl", f"{name}: no HKL entries")
    return np.array(rows, dtype=np.float64)


def read_hkl(path: str | PathLike[str], default_F: float = 0.0) -> StructureFactorTable:
    """Read a text file of "h k l F" lines (whitespace separated, blank lines skipped).

    Grid points without an entry get default_F; the padding slots stay 0, as in C. A repeated
    hkl keeps its last F. Non-integer indices are truncated toward zero (as C's %d) with a warning.
    Raises InputError (a ValueError) naming the file when it is unreadable, empty or malformed.
    """
    name = str(path)
    try:
        with open(path, encoding="ascii", errors="replace") as stream:
            text = stream.read()
    except OSError as exc:
        raise InputError("hkl", f"{name}: cannot read: {exc.strerror or exc}") from None
    data = _parse_hkl_text(text, name)
    hkl = np.trunc(data[:, :3])
    fractional = np.flatnonzero((hkl != data[:, :3]).any(axis=1))
    if fractional.size:
        entry_lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        warnings.warn(
            f"{name}: non-integer Miller indices (first at line {entry_lines[fractional[0]]});"
            " truncated",
            stacklevel=2,
        )
    hkl = hkl.astype(np.int64)
    lo, hi = hkl.min(axis=0), hkl.max(axis=0)
    shape = tuple(int(n) + 2 for n in hi - lo)
    if math.prod(shape) > _MAX_GRID_POINTS:
        raise InputError("hkl", f"{name}: index ranges {lo.tolist()}..{hi.tolist()} too large")
    values = np.zeros(shape, dtype=np.float64)
    values[:-1, :-1, :-1] = default_F
    flat_index = np.ravel_multi_index((hkl - lo).T, shape)
    _, last = np.unique(flat_index[::-1], return_index=True)  # a repeated hkl keeps its last F
    keep = len(flat_index) - 1 - last
    values.reshape(-1)[flat_index[keep]] = data[keep, 3]
    bounds = (int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]))
    return StructureFactorTable(*bounds, values, float(default_F), len(data))


_FDUMP_SEP = b"\n\f"


def write_fdump(table: StructureFactorTable, path: str | PathLike[str]) -> None:
    """Write C nanoBragg's Fdump.bin: "h_min h_max k_min k_max l_min l_max\\n\\f", then the
    padded table as little-endian float64 in C order (l fastest)."""
    t = table
    header = f"{t.h_min} {t.h_max} {t.k_min} {t.k_max} {t.l_min} {t.l_max}\n\f".encode("ascii")
    with open(path, "wb") as stream:
        stream.write(header)
        stream.write(np.ascontiguousarray(t.values, dtype="<f8").tobytes())


def read_fdump(path: str | PathLike[str], default_F: float = 0.0) -> StructureFactorTable:
    """Read an Fdump.bin written by C nanoBragg or write_fdump.

    As in C, hkls counts every grid point: h_range * k_range * l_range.
    """
    name = str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        raise InputError("fdump", f"{name}: cannot read: {exc.strerror or exc}") from None
    end = data.find(_FDUMP_SEP, 0, 256)
    try:
        if end < 0:
            raise ValueError
        bounds = [int(v) for v in data[:end].decode("ascii").split()]
        if len(bounds) != 6:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        message = f"{name}: missing 'h_min h_max k_min k_max l_min l_max' header"
        raise InputError("fdump", message) from None
    h_min, h_max, k_min, k_max, l_min, l_max = bounds
    shape = (h_max - h_min + 2, k_max - k_min + 2, l_max - l_min + 2)
    if min(shape) < 1:
        raise InputError("fdump", f"{name}: invalid index bounds {bounds}")
    payload = data[end + len(_FDUMP_SEP) :]
    expected = 8 * math.prod(shape)
    if len(payload) != expected:
        raise InputError("fdump", f"{name}: {len(payload)} data bytes, expected {expected}")
    values = np.frombuffer(payload, dtype="<f8").astype(np.float64).reshape(shape)
    hkls = (shape[0] - 1) * (shape[1] - 1) * (shape[2] - 1)
    return StructureFactorTable(
        h_min, h_max, k_min, k_max, l_min, l_max, values, float(default_F), hkls
    )


def constant(default_F: float) -> StructureFactorTable:
    """No structure factor file: every reflection has amplitude default_F (hkls = 0)."""
    return StructureFactorTable(0, -1, 0, -1, 0, -1, np.zeros((1, 1, 1)), float(default_F), 0)
