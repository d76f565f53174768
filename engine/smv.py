"""Output formats of C nanoBragg: SMV (-intfile/-noisefile), PGM (-pgmfile) and raw float.

Images are 2-D arrays indexed (slow, fast), i.e. row ``slow`` holds ``fast_pixels`` values,
and are written slow-major like C's ``floatimage[slow*fpixels + fast]``. Intensities are in
photons per pixel; header lengths are in mm, angles in degrees, wavelength in Angstrom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.orientation import RTD

if TYPE_CHECKING:
    from engine.plan import FramePlan

SMV_HEADER_BYTES = 512
ADC_OFFSET = 40.0
INTFILE_AUTOSCALE_TARGET = 55000.0  # C scales max_I to this many ADU when -scale is not given
PGM_AUTOSCALE_TARGET = 250.0  # C maps 5 rmsd above zero to this grey level
CHUNK_PIXELS = 1 << 16  # pixels converted at a time: float64 temporaries stay in cache

__all__ = [
    "SMVHeader",
    "c_g",
    "smv_header",
    "smv_header_bytes",
    "write_smv",
    "read_smv",
    "int_image",
    "pgm_scale_for",
    "write_pgm",
    "write_float_image",
]


def c_g(x: float) -> str:
    """Format ``x`` as C's ``printf("%g")`` / ``"%lg"`` does (glibc: ``-nan`` for negative NaN)."""
    x = float(x)
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return format(x, "g")


@dataclass(frozen=True)
class SMVHeader:
    """Numbers of the SMV header in C nanoBragg's units (mm, Angstrom, degrees, pixels)."""

    fast_pixels: int
    slow_pixels: int
    pixel_size_mm: float
    distance_mm: float
    wavelength_A: float
    beam_center_x_mm: float
    beam_center_y_mm: float
    adxv_center_x_mm: float
    adxv_center_y_mm: float
    mosflm_center_x_mm: float
    mosflm_center_y_mm: float
    denzo_x_beam_mm: float
    denzo_y_beam_mm: float
    dials_origin_mm: tuple[float, float, float]
    xds_orgx: float
    xds_orgy: float
    close_distance_mm: float
    phi_deg: float
    osc_start_deg: float
    osc_range_deg: float
    twotheta_deg: float


def smv_header(frame: FramePlan) -> SMVHeader:
    """The header values C nanoBragg writes into its SMV images, from a frame's plan."""
    g = frame.detector
    mm = 1000.0
    return SMVHeader(
        fast_pixels=g.fast_pixels,
        slow_pixels=g.slow_pixels,
        pixel_size_mm=g.pixel_size * mm,
        distance_mm=g.distance * mm,
        wavelength_A=frame.experiment.beam.wavelength_A,
        beam_center_x_mm=g.xbeam * mm,
        beam_center_y_mm=g.ybeam * mm,
        adxv_center_x_mm=g.fbeam * mm,
        adxv_center_y_mm=(g.detsize_s - g.sbeam) * mm,
        mosflm_center_x_mm=(g.sbeam - 0.5 * g.pixel_size) * mm,
        mosflm_center_y_mm=(g.fbeam - 0.5 * g.pixel_size) * mm,
        denzo_x_beam_mm=g.sbeam * mm,
        denzo_y_beam_mm=g.fbeam * mm,
        dials_origin_mm=g.dials_origin,
        xds_orgx=g.orgx,
        xds_orgy=g.orgy,
        close_distance_mm=g.close_distance * mm,
        phi_deg=frame.phi0_deg,
        osc_start_deg=frame.phi0_deg,
        osc_range_deg=frame.osc_deg,
        twotheta_deg=g.twotheta * RTD,
    )


def smv_header_bytes(h: SMVHeader) -> bytes:
    """The 512-byte SMV header exactly as C nanoBragg writes it (little-endian pixels)."""
    dials = ",".join(c_g(v) for v in h.dials_origin_mm)
    lines = [
        "{",
        f"HEADER_BYTES={SMV_HEADER_BYTES};",
        "DIM=2;",
        "BYTE_ORDER=little_endian;",
        "TYPE=unsigned_short;",
        f"SIZE1={int(h.fast_pixels)};",
        f"SIZE2={int(h.slow_pixels)};",
        f"PIXEL_SIZE={c_g(h.pixel_size_mm)};",
        f"DISTANCE={c_g(h.distance_mm)};",
        f"WAVELENGTH={c_g(h.wavelength_A)};",
        f"BEAM_CENTER_X={c_g(h.beam_center_x_mm)};",
        f"BEAM_CENTER_Y={c_g(h.beam_center_y_mm)};",
        f"ADXV_CENTER_X={c_g(h.adxv_center_x_mm)};",
        f"ADXV_CENTER_Y={c_g(h.adxv_center_y_mm)};",
        f"MOSFLM_CENTER_X={c_g(h.mosflm_center_x_mm)};",
        f"MOSFLM_CENTER_Y={c_g(h.mosflm_center_y_mm)};",
        f"DENZO_X_BEAM={c_g(h.denzo_x_beam_mm)};",
        f"DENZO_Y_BEAM={c_g(h.denzo_y_beam_mm)};",
        f"DIALS_ORIGIN={dials}",  # C writes this line without the semicolon
        f"XDS_ORGX={c_g(h.xds_orgx)};",
        f"XDS_ORGY={c_g(h.xds_orgy)};",
        f"CLOSE_DISTANCE={c_g(h.close_distance_mm)};",
        f"PHI={c_g(h.phi_deg)};",
        f"OSC_START={c_g(h.osc_start_deg)};",
        f"OSC_RANGE={c_g(h.osc_range_deg)};",
        f"TWOTHETA={c_g(h.twotheta_deg)};",
        "DETECTOR_SN=000;",
        "BEAMLINE=fake;",
    ]
    text = ("\n".join(lines) + "\n}\f").encode("ascii")
    if len(text) > SMV_HEADER_BYTES:
        raise ValueError(f"SMV header text is {len(text)} bytes, more than {SMV_HEADER_BYTES}")
    return text.ljust(SMV_HEADER_BYTES, b" ")


def _write_bytes(path: str | Path, chunks: list, what: str) -> None:
    """Write ``chunks`` (bytes-like) to ``path``, re-raising OS errors with the file's role."""
    try:
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {what} ({e.strerror})", str(path)) from e


def _raw(image: np.ndarray, dtype) -> np.ndarray:
    """The bytes of ``image`` as ``dtype``, slow-major, as a flat uint8 view (no copy if it can)."""
    return np.ascontiguousarray(image, dtype=dtype).reshape(-1).view(np.uint8)


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name} must be 2-D (slow, fast), got shape {image.shape}")
    return image


def write_smv(path: str | Path, image_u16: np.ndarray, header: SMVHeader) -> None:
    """Write a uint16 image of shape (slow_pixels, fast_pixels) as an SMV file (512-byte header)."""
    image = _check_image(image_u16, "image_u16")
    if image.dtype != np.uint16:
        raise TypeError(f"image_u16 must have dtype uint16, got {image.dtype}")
    if image.shape != (header.slow_pixels, header.fast_pixels):
        raise ValueError(
            f"image shape {image.shape} does not match header "
            f"(slow_pixels, fast_pixels) = ({header.slow_pixels}, {header.fast_pixels})"
        )
    _write_bytes(path, [smv_header_bytes(header), _raw(image, "<u2")], "SMV image")


def read_smv(path: str | Path) -> tuple[dict[str, str], np.ndarray]:
    """Read an SMV file: (header key -> value string, uint16 image of shape (SIZE2, SIZE1))."""
    raw = Path(path).read_bytes()
    if not raw.startswith(b"{"):
        raise ValueError(f"{path}: not an SMV file (no '{{' at byte 0)")
    end = raw.find(b"}")
    if end < 0:
        raise ValueError(f"{path}: SMV header has no closing '}}'")
    header: dict[str, str] = {}
    for line in raw[1:end].decode("ascii", errors="replace").splitlines():
        line = line.strip().rstrip(";")
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip()
    try:
        header_bytes = int(header["HEADER_BYTES"])
        fast, slow = int(header["SIZE1"]), int(header["SIZE2"])
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: SMV header lacks a valid HEADER_BYTES/SIZE1/SIZE2: {e}") from e
    if header.get("TYPE", "unsigned_short") != "unsigned_short":
        raise ValueError(f"{path}: unsupported SMV TYPE={header['TYPE']}")
    order = ">" if header.get("BYTE_ORDER") == "big_endian" else "<"
    n = fast * slow
    if len(raw) < header_bytes + 2 * n:
        raise ValueError(
            f"{path}: file has {len(raw)} bytes, expected {header_bytes + 2 * n} "
            f"for a {slow}x{fast} image"
        )
    data = np.frombuffer(raw, dtype=f"{order}u2", count=n, offset=header_bytes)
    return header, data.reshape(slow, fast).astype(np.uint16)


def int_image(
    float_image: np.ndarray,
    scale: float | None = None,
    adc_offset: float = ADC_OFFSET,
    roi_mask: np.ndarray | None = None,
    max_i: float | None = None,
) -> tuple[np.ndarray, float]:
    """C's ``-intfile`` conversion: photons -> ADU as uint16, and the scale used.

    When ``scale`` is None or <= 0 it is 55000/max_I (1 when max_I <= 0), max_I being ``max_i``
    or else the maximum over the ROI pixels (floored at 0 like C). Each pixel becomes
    floorf(clamp(value*scale + adc_offset, 0, 65535) + 0.5), rounded through float32 as C's
    ``floorf`` does. Pixels outside ``roi_mask`` stay 0.
    """
    image = _check_image(float_image, "float_image")
    if scale is None or scale <= 0.0:
        if max_i is None:
            inside = image if roi_mask is None else image[np.asarray(roi_mask, dtype=bool)]
            max_i = max(0.0, float(inside.max())) if inside.size else 0.0
        scale = INTFILE_AUTOSCALE_TARGET / max_i if max_i > 0.0 else 1.0
    out = np.empty(image.shape, dtype=np.uint16)
    buf = np.empty(CHUNK_PIXELS, dtype=np.float64)
    buf32 = np.empty(CHUNK_PIXELS, dtype=np.float32)
    for values, dest, keep in _chunks(image, out, roi_mask):
        adu, adu32 = buf[: values.size], buf32[: values.size]
        np.multiply(values, scale, out=adu, dtype=np.float64)
        adu += adc_offset
        np.clip(adu, 0.0, 65535.0, out=adu)
        adu += 0.5
        adu32[:] = adu  # C's floorf: round to float32, then floor (= truncation, all >= 0.5)
        np.copyto(dest, adu32, casting="unsafe")
        if keep is not None:
            dest *= keep
    return out, float(scale)


def _chunks(image: np.ndarray, out: np.ndarray, roi_mask: np.ndarray | None):
    """Flat pieces of ``image``, of ``out`` (same shape) and of the ROI mask (None: all in)."""
    values, dest = image.reshape(-1), out.reshape(-1)
    mask = None if roi_mask is None else np.asarray(roi_mask, dtype=bool).reshape(-1)
    for start in range(0, values.size, CHUNK_PIXELS):
        part = slice(start, start + CHUNK_PIXELS)
        keep = None if mask is None or mask[part].all() else mask[part]
        yield values[part], dest[part], keep


def pgm_scale_for(pgm_scale: float | None, rmsd: float, intfile_scale: float) -> float:
    """C's ``-pgmscale`` rule: the given scale if > 0, else 250/(5*rmsd), else intfile_scale."""
    if pgm_scale is not None and pgm_scale > 0.0:
        return float(pgm_scale)
    if rmsd > 0.0:
        return PGM_AUTOSCALE_TARGET / (5.0 * rmsd)
    return float(intfile_scale)


def write_pgm(
    path: str | Path,
    float_image: np.ndarray,
    pgm_scale: float | None,
    rmsd: float,
    intfile_scale: float,
    roi_mask: np.ndarray | None = None,
) -> float:
    """Write C's 8-bit ``-pgmfile``; returns the scale used (grey levels per photon).

    Grey = (unsigned char) min(255, value*scale), truncated; negative values become 0 (C's cast
    is undefined there). Pixels outside ``roi_mask`` stay 0.
    """
    image = _check_image(float_image, "float_image")
    scale = pgm_scale_for(pgm_scale, rmsd, intfile_scale)
    grey = np.empty(image.shape, dtype=np.uint8)
    buf = np.empty(CHUNK_PIXELS, dtype=np.float64)
    for values, dest, keep in _chunks(image, grey, roi_mask):
        level = buf[: values.size]
        np.multiply(values, scale, out=level, dtype=np.float64)
        np.clip(level, 0.0, 255.0, out=level)
        np.copyto(dest, level, casting="unsafe")
        if keep is not None:
            dest *= keep
    slow, fast = image.shape
    head = f"P5\n{fast} {slow}\n# pixels scaled by {c_g(scale)}\n255\n".encode("ascii")
    _write_bytes(path, [head, _raw(grey, np.uint8)], "PGM image")
    return scale


def write_float_image(path: str | Path, float_image: np.ndarray) -> None:
    """Write C's ``-floatfile``: raw little-endian float32, slow-major, no header."""
    image = _check_image(float_image, "float_image")
    _write_bytes(path, [_raw(image, "<f4")], "float image")
