"""One file per frame: C nanoBragg's SMV (``-noisefile`` style) and float files, and mini-CBF.

Each writer takes a finished frame's level-0 photons and writes one file; the SMV header is
C's (:func:`engine.smv.smv_header` of the frame's plan), the CBF header Pilatus's mini-CBF
fields (:mod:`tiling.exports.cbf`).

The exported SMV header differs from C's ``-noisefile`` (which ``braggtile nanobragg`` still
writes byte for byte) in BEAM_CENTER_X/Y only: they hold the ADXV-style convention of dxtbx's
``FormatSMVJHSim`` (the reader DIALS picks for ``BEAMLINE=fake``: fast centre =
BEAM_CENTER_X + 1 pixel, slow centre = height - BEAM_CENTER_Y + 1 pixel, mm) instead of C's
MOSFLM Xbeam/Ybeam, so that DIALS's panel origin is the header's DIALS_ORIGIN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from engine.plan import plan
from engine.smv import SMVHeader, c_g, int_image, smv_header, write_float_image, write_smv
from tiling.exports.cbf import write_cbf
from tiling.exports.series import FrameFile, Scale

#: SMV holds unsigned 16-bit ADU; C's -noisefile clips there.
SMV_TOP = 65535


Writer = Callable[[FrameFile, Scale, str], None]


def dxtbx_beam_centre(header: SMVHeader) -> SMVHeader:
    """``header`` with BEAM_CENTER_X/Y (mm) such that dxtbx's ``FormatSMVJHSim`` puts the
    panel origin at DIALS_ORIGIN: it reads the origin as (-(X + px), height - Y + px,
    -DISTANCE) with fast +x, slow -y, px and height from the header's PIXEL_SIZE and SIZE2."""
    px = float(c_g(header.pixel_size_mm))  # the pixel size dxtbx reads back
    origin_x, origin_y, _ = header.dials_origin_mm
    return dataclasses.replace(
        header,
        beam_center_x_mm=-origin_x - px,
        beam_center_y_mm=px * header.slow_pixels - origin_y + px,
    )


def write_smv_frame(item: FrameFile, scale: Scale, path: str) -> None:
    """SMV with C's header of the frame (BEAM_CENTER_X/Y as dxtbx reads them, see
    :func:`dxtbx_beam_centre`); ADU = photons x gain + offset, uint16 clipped at 65535 and
    rounded as C's ``-noisefile`` (through float32)."""
    experiment = item.reader.job.frame_experiment(item.frame)
    adu, _ = int_image(item.photons, scale.gain, scale.offset)
    write_smv(path, adu, dxtbx_beam_centre(smv_header(plan(experiment))))


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
