"""One file per frame: C nanoBragg's SMV (``-noisefile`` style) and float files, and mini-CBF.

Each writer takes a finished frame's level-0 photons and writes one file; the SMV header is
C's (:func:`engine.smv.smv_header` of the frame's plan), the CBF header Pilatus's mini-CBF
fields (:mod:`tiling.exports.cbf`).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.plan import plan
from engine.smv import int_image, smv_header, write_float_image, write_smv
from tiling.exports.cbf import write_cbf
from tiling.exports.series import FrameFile, Scale

#: SMV holds unsigned 16-bit ADU; C's -noisefile clips there.
SMV_TOP = 65535


Writer = Callable[[FrameFile, Scale, str], None]


def write_smv_frame(item: FrameFile, scale: Scale, path: str) -> None:
    """SMV with C's header of the frame; ADU = photons x gain + offset, uint16 clipped at
    65535 and rounded as C's ``-noisefile`` (through float32)."""
    experiment = item.reader.job.frame_experiment(item.frame)
    adu, _ = int_image(item.photons, scale.gain, scale.offset)
    write_smv(path, adu, smv_header(plan(experiment)))


def write_float_frame(item: FrameFile, scale: Scale, path: str) -> None:
    """C's ``-floatfile``: the photons as raw little-endian float32 (no scale)."""
    write_float_image(path, item.photons)


def write_cbf_frame(item: FrameFile, scale: Scale, path: str) -> None:
    """A Pilatus-style mini-CBF, int32 ADU (see :mod:`tiling.exports.cbf`)."""
    write_cbf(item, scale, path)


#: Per-frame formats: name -> (writer, file extension).
FRAME_FORMATS: dict[str, tuple[Writer, str]] = {
    "cbf": (write_cbf_frame, "cbf"),
    "smv": (write_smv_frame, "img"),
    "float": (write_float_frame, "bin"),
}
