"""SMV files for tests, written as C nanoBragg writes them (header keys chosen by the test)."""

from __future__ import annotations

import numpy as np


def smv_bytes(header: dict, pixels: np.ndarray, header_bytes: int = 512) -> bytes:
    """'{', HEADER_BYTES and the KEY=VALUE; lines of ``header``, '}', padding to
    ``header_bytes``, then ``pixels`` as little-endian uint16 (slow-major)."""
    lines = ["{", f"HEADER_BYTES={header_bytes};", "DIM=2;", "BYTE_ORDER=little_endian;"]
    lines += ["TYPE=unsigned_short;"] + [f"{k}={v};" for k, v in header.items()] + ["}"]
    text = "\n".join(lines).encode()
    assert len(text) <= header_bytes
    return text.ljust(header_bytes, b" ") + pixels.astype("<u2").tobytes()
