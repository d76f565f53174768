"""Whole-chunk reads and writes of a local zarr v3 store without zarr's per-call machinery.

Tiles and pyramid chunks are always whole chunks, so a worker encodes a chunk with the array's
own codecs (little-endian bytes, then Blosc when the array has it) and writes the file itself,
atomically (a temporary file, then a rename), exactly where zarr's LocalStore would. Zarr reads
these chunks as its own. Measured on a 1024 x 1024 float32 chunk: about 3 ms for encoding and
writing, against 10-45 ms for ``array[...] = data`` (event-loop hops and copies). Stores given
as fsspec URLs, and arrays with other codecs, go through zarr.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

import numpy as np
import zarr

Encoder = Callable[[np.ndarray], bytes]
Decoder = Callable[[bytes], bytes]


def _codecs(array: zarr.Array) -> tuple[Encoder, Decoder] | None:
    """(encode, decode) of the array's codec chain when this module knows it, else None."""
    from zarr.codecs import BloscCodec, BytesCodec

    codecs = tuple(getattr(array.metadata, "codecs", ()))
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    if codecs[0].endian is not None and codecs[0].endian.value != "little":
        return None
    if len(codecs) == 1:
        return (lambda data: data.tobytes()), (lambda raw: raw)
    if len(codecs) != 2 or not isinstance(codecs[1], BloscCodec):
        return None
    from numcodecs import Blosc

    b = codecs[1]
    shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[b.shuffle.value]
    blosc = Blosc(
        cname=b.cname.value,
        clevel=b.clevel,
        shuffle=shuffle,
        blocksize=b.blocksize,
        typesize=b.typesize or array.dtype.itemsize,
    )
    return (lambda data: bytes(blosc.encode(data))), (lambda raw: bytes(blosc.decode(raw)))


def write_file(path: str, payload: bytes, within: str) -> None:
    """Write ``payload`` to the file ``path`` atomically (a temporary file, then a rename:
    readers see the old file or the new one, never part of it), making its folders below
    ``within``, which must exist (a store removed meanwhile, its job purged, is not made
    again: FileNotFoundError)."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.partial"
    try:
        fh = open(tmp, "wb")
    except FileNotFoundError:
        if not os.path.isdir(within):
            raise
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fh = open(tmp, "wb")
    try:
        with fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:  # a full disk (ENOSPC), an interrupt: leave no partial file
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


class ChunkIO:
    """Whole-chunk access to one array of a store rooted at ``root`` (a local folder, or
    None for stores zarr must handle itself)."""

    def __init__(self, root: str | None, name: str, array: zarr.Array):
        self.array = array
        self.folder = os.path.join(root, name) if root is not None else None
        self.codecs = _codecs(array) if root is not None and array.order == "C" else None
        # the array's geometry, read once (zarr derives each from its metadata per access)
        self.chunks: tuple[int, ...] = tuple(array.chunks)
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype: np.dtype = array.dtype
        self.fill_value = array.fill_value

    def region(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        """The array region of chunk ``coords`` (edge chunks cut at the array's shape)."""
        return tuple(
            slice(c * n, min((c + 1) * n, size))
            for c, n, size in zip(coords, self.chunks, self.shape, strict=True)
        )

    def _path(self, coords: tuple[int, ...]) -> str:
        key = self.array.metadata.encode_chunk_key(coords)
        return os.path.join(self.folder, *key.split("/"))

    def write(self, coords: tuple[int, ...], data: np.ndarray) -> None:
        """Write chunk ``coords`` whole; ``data`` has the shape of :meth:`region`."""
        region = self.region(coords)
        if self.codecs is None:
            self.array[region] = data
            return
        dtype = self.dtype
        full = np.asarray(data, dtype=dtype)
        if full.shape != self.chunks:  # edge chunk: padded with the fill value
            padded = np.full(self.chunks, self.fill_value, dtype=dtype)
            padded[tuple(slice(0, s.stop - s.start) for s in region)] = full
            full = padded
        little = full.astype(dtype.newbyteorder("<"), copy=False)  # no copy on x86/ARM
        payload = self.codecs[0](np.ascontiguousarray(little))
        write_file(self._path(coords), payload, self.folder)

    def read(self, coords: tuple[int, ...]) -> np.ndarray:
        """Chunk ``coords`` cut to :meth:`region` (the fill value where it was never written)."""
        region = self.region(coords)
        if self.codecs is None:
            return np.asarray(self.array[region])
        shape = tuple(s.stop - s.start for s in region)
        try:
            with open(self._path(coords), "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return np.full(shape, self.fill_value, dtype=self.dtype)
        dtype = self.dtype.newbyteorder("<")
        full = np.frombuffer(self.codecs[1](raw), dtype=dtype).reshape(self.chunks)
        return full[tuple(slice(0, n) for n in shape)].astype(self.dtype, copy=False)
