"""Output formats of pixels: one registry from format name (or media type) to serializer.

In the manner of Tiled's serialization registry: every format the service writes (tiles as
npy or png, whole frames in C nanoBragg's float and SMV files, and later exports) is one
:class:`Serializer` registered here, with its media type and file extension. A serializer
turns (slow, fast) pixels in photons/pixel, plus the :class:`FrameContext` of a finished frame
for whole-frame formats, into bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.smv import ADC_OFFSET, SMVHeader, int_image, smv_header_bytes
from engine.statistics import FrameStatistics
from service.imaging import Contrast, to_png


@dataclass(frozen=True)
class FrameContext:
    """What whole-frame formats need besides the pixels: the frame's statistics, ROI mask
    (True = rendered) and SMV header values."""

    statistics: FrameStatistics
    roi_mask: np.ndarray
    header: SMVHeader


@dataclass(frozen=True)
class Options:
    """Format options: PNG contrast; SMV ADC offset (ADU) and scale (ADU per photon, None:
    55000 / max_I as C)."""

    contrast: Contrast = field(default_factory=Contrast)
    adc: float = ADC_OFFSET
    scale: float | None = None


Encoder = Callable[[np.ndarray, "FrameContext | None", Options], bytes]


@dataclass(frozen=True)
class Serializer:
    """A format: its name, media type, file extension and encoder; ``whole_frame`` formats
    are written only for finished frames (their encoder gets a :class:`FrameContext`)."""

    name: str
    media_type: str
    extension: str
    encode: Encoder
    whole_frame: bool = False


REGISTRY: dict[str, Serializer] = {}


def register(
    name: str, media_type: str, extension: str, *, whole_frame: bool = False
) -> Callable[[Encoder], Encoder]:
    """Decorator: register an encoder as format ``name``."""

    def add(encode: Encoder) -> Encoder:
        if name in REGISTRY:
            raise ValueError(f"format {name!r} is registered twice")
        REGISTRY[name] = Serializer(name, media_type, extension, encode, whole_frame)
        return encode

    return add


def serializer(name: str) -> Serializer:
    """The serializer of format ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no format {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def for_media_type(media_type: str) -> list[Serializer]:
    """The serializers writing ``media_type``."""
    return [s for s in REGISTRY.values() if s.media_type == media_type]


@register("npy", "application/x-npy", "npy")
def npy_bytes(pixels: np.ndarray, context: FrameContext | None, options: Options) -> bytes:
    """Exact values as a .npy file, little-endian."""
    out = io.BytesIO()
    np.save(out, np.asarray(pixels, dtype=pixels.dtype.newbyteorder("<")))
    return out.getvalue()


@register("png", "image/png", "png")
def png_bytes(pixels: np.ndarray, context: FrameContext | None, options: Options) -> bytes:
    """A picture, by ``options.contrast`` (see :mod:`service.imaging`)."""
    return to_png(pixels, options.contrast)


@register("float", "application/octet-stream", "bin", whole_frame=True)
def float_file(pixels: np.ndarray, context: FrameContext | None, options: Options) -> bytes:
    """C's ``-floatfile``: raw little-endian float32, slow-major, no header."""
    return np.ascontiguousarray(pixels, dtype="<f4").tobytes()


@register("smv", "application/octet-stream", "img", whole_frame=True)
def smv_file(pixels: np.ndarray, context: FrameContext | None, options: Options) -> bytes:
    """C's ``-intfile``: SMV with C's header, unsigned 16-bit ADU."""
    if context is None:
        raise ValueError("an SMV image needs its frame's statistics and header")
    adu, _ = int_image(
        pixels, options.scale, options.adc, context.roi_mask, max_i=context.statistics.max_I
    )
    return smv_header_bytes(context.header) + np.ascontiguousarray(adu, dtype="<u2").tobytes()
