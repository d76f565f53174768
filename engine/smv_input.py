"""SMV (ADSC) files read as C nanoBragg reads ``-mask`` and ``-img``: header keys and pixels.

C looks a keyword up anywhere in the header text and takes the number after the ``=`` that
follows its *last* occurrence, as ``atof`` reads it: so ``ORGX`` finds ``XDS_ORGX`` and, in a
header that has both, ``DISTANCE`` finds the value of ``CLOSE_DISTANCE``. The header is the
first ``HEADER_BYTES`` bytes (cut at the first NUL byte); the pixels are ``SIZE1 x SIZE2``
unsigned 16-bit words right after it (C never swaps their bytes; only 0 or not matters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.sources import _atof

#: What C checks of a file's first bytes before it reads it as an SMV frame.
SMV_MAGIC = b"{\nHEADER_BYT"
#: Header bytes C reads first, before it knows HEADER_BYTES.
FIRST_HEADER_BYTES = 512


@dataclass(frozen=True)
class SMVFrame:
    """An SMV file's header text and size (pixels, fast x slow), and its raw pixel words."""

    path: str
    header: str
    fast_pixels: int
    slow_pixels: int
    pixels: np.ndarray  # uint16, (slow, fast)

    def value(self, keyword: str) -> float:
        """C's ``ValueOf``: the number after the ``=`` after the last ``keyword``; NaN if the
        keyword is absent, 0 if no ``=`` follows it."""
        at = self.header.rfind(keyword)
        if at < 0:
            return math.nan
        equals = self.header.find("=", at + len(keyword))
        if equals < 0:
            return 0.0
        return _atof(self.header[equals + 1 :])


def _header_text(raw: bytes, size: int) -> str:
    return raw[:size].split(b"\0", 1)[0].decode("latin-1")


def _dimension(frame_header: str, flag: str, path: str) -> tuple[int, int]:
    probe = SMVFrame(path, frame_header, 0, 0, np.zeros((0, 0), np.uint16))
    fast, slow = probe.value("SIZE1"), probe.value("SIZE2")
    if math.isfinite(fast) and int(fast) == 0:  # C: other formats give DETECTOR_DIMENSIONS
        fast = slow = probe.value("DETECTOR_DIMENSIONS")
    if not (math.isfinite(fast) and math.isfinite(slow) and int(fast) >= 1 and int(slow) >= 1):
        raise InputError(flag, f"{path}: SMV header has no valid SIZE1/SIZE2 (pixels)")
    if int(fast) > 1 << 17 or int(slow) > 1 << 17:
        raise InputError(flag, f"{path}: SMV header gives more than {1 << 17} pixels across")
    return int(fast), int(slow)


def read_smv_frame(path: str, flag: str, pixels: bool = True) -> SMVFrame:
    """Read an SMV file as C's ``GetFrame`` does; :class:`InputError` naming ``flag`` (one
    line) when it cannot be read, is not an SMV frame or (``pixels``: its pixels are wanted)
    is shorter than its header says. Without ``pixels`` the frame has no pixel array."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise InputError(flag, f"cannot read {path}: {err.strerror or err}") from None
    if len(raw) < FIRST_HEADER_BYTES:
        raise InputError(flag, f"{path}: {len(raw)} bytes, shorter than an SMV header (512)")
    if not raw.startswith(SMV_MAGIC):
        raise InputError(flag, f"{path} does not look like an SMV (ADSC) frame")
    first = SMVFrame(path, _header_text(raw, FIRST_HEADER_BYTES), 0, 0, np.zeros((0, 0)))
    size = first.value("HEADER_BYTES")
    if not (math.isfinite(size) and 1 <= int(size) <= len(raw)):
        raise InputError(flag, f"{path}: SMV header has no valid HEADER_BYTES")
    header = _header_text(raw, int(size))
    fast, slow = _dimension(header, flag, path)
    if not pixels:
        return SMVFrame(path, header, fast, slow, np.zeros((0, 0), dtype=np.uint16))
    offset = int(size) // 2 * 2  # C: header_size / sizeof(unsigned short) words
    need = offset + 2 * fast * slow
    if len(raw) < need:
        raise InputError(
            flag, f"{path}: {len(raw)} bytes, needs {need} for {fast}x{slow} 16-bit pixels"
        )
    words = np.frombuffer(raw, dtype="<u2", count=fast * slow, offset=offset)
    return SMVFrame(path, header, fast, slow, words.reshape(slow, fast))


def read_pixel_mask(path: str) -> np.ndarray:
    """The ``-mask`` file's pixels as C uses them: bool (slow, fast), False where it is 0."""
    frame = read_smv_frame(path, "-mask")
    return frame.pixels != 0
