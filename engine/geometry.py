"""Detector and crystal geometry derived from an :class:`~engine.model.Experiment`.

Follows C nanoBragg's set-up step by step (in float64, SI units: metres, radians,
metres^-1) so that the derived numbers equal the ones it prints: Fbeam/Sbeam, pix0,
close distance, XDS ORGX/ORGY and the DIALS origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine import cvec as cv
from engine.model import Convention, Experiment, Pivot
from engine.orientation import RTD, rotate_axis, rotate_xyz

__all__ = ["RTD", "DetectorGeometry", "detector_geometry", "rotate_axis", "rotate_xyz", "unit"]

# Convention axes: beam, fdet, sdet, odet, twotheta axis, polarisation, spindle.
_X, _Y, _Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
_MX, _MY, _MZ = (-1, 0, 0), (0, -1, 0), (0, 0, -1)
_AXES = {
    Convention.ADXV: (_Z, _X, _MY, _Z, _MX, _X, _X),
    Convention.MOSFLM: (_X, _Z, _MY, _X, _MZ, _Z, _Z),
    Convention.DENZO: (_X, _Z, _MY, _X, _MZ, _Z, _Z),
    Convention.XDS: (_Z, _X, _Y, _Z, _X, _X, _X),
    Convention.DIALS: (_Z, _X, _Y, _Z, _Y, _Y, _Y),
    # CUSTOM starts from nanoBragg's built-in defaults, overridden by explicit vectors
    Convention.CUSTOM: (_X, _Z, _MY, _X, _Z, _Z, _Z),
}


def unit(v: np.ndarray) -> np.ndarray:
    """v / |v| (zero vector stays zero), in C's scalar order."""
    return np.array(cv.unitize(cv.vec(v)))


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    return cv.dot(cv.vec(x), cv.vec(y))


@dataclass(frozen=True)
class DetectorGeometry:
    """Lab-frame detector: unit axes, first-pixel vector and the derived beam centres (SI units)."""

    fast_pixels: int
    slow_pixels: int
    pixel_size: float  # m
    fdet: np.ndarray
    sdet: np.ndarray
    odet: np.ndarray
    pix0: np.ndarray  # m, sample -> corner of first pixel
    beam: np.ndarray  # unit, direction of travel
    polar: np.ndarray  # unit E-vector
    spindle: np.ndarray
    twotheta_axis: np.ndarray
    distance: float  # m, along the beam to the detector plane
    close_distance: float  # m, perpendicular
    xbeam: float  # m, header beam centre (convention units)
    ybeam: float
    xclose: float
    yclose: float
    fbeam: float  # m along fdet from pix0 to the direct-beam spot
    sbeam: float
    fclose: float
    sclose: float
    orgx: float  # pixels
    orgy: float
    dials_origin: tuple[float, float, float]  # mm
    detsize_f: float
    detsize_s: float
    twotheta: float  # rad
    pivot: Pivot
    convention: Convention
    curved: bool
    point_pixel: bool

    @property
    def beam_spot(self) -> np.ndarray:
        """Where the direct beam meets the detector plane, m (lab frame)."""
        return self.pix0 + self.fbeam * self.fdet + self.sbeam * self.sdet

    @property
    def beam_centre_pixels(self) -> tuple[float, float]:
        """The direct-beam spot in (slow, fast) pixel coordinates (pixel edges at integers)."""
        return (self.sbeam / self.pixel_size, self.fbeam / self.pixel_size)

    @property
    def vert(self) -> np.ndarray:
        """Unit beam x polar: the 'vertical' axis of divergence."""
        return unit(np.array(cv.cross(cv.vec(self.beam), cv.vec(self.polar))))


def detector_geometry(exp: Experiment) -> DetectorGeometry:
    """Derive the detector geometry exactly as C nanoBragg does."""
    det, beam = exp.detector, exp.beam
    px = det.pixel_size_mm / 1000.0
    fpix, spix = det.fast_pixels, det.slow_pixels
    detsize_f, detsize_s = px * fpix, px * spix
    conv = det.convention
    b, f, s, o, tt_axis, pol, spindle = (np.array(a, dtype=float) for a in _AXES[conv])
    if conv is Convention.CUSTOM:

        def pick(vec: tuple[float, float, float] | None, default: np.ndarray) -> np.ndarray:
            return default if vec is None else np.array(vec, dtype=float)

        f, s, o = pick(det.fdet_vector, f), pick(det.sdet_vector, s), pick(det.odet_vector, o)
        b, pol = pick(beam.beam_vector, b), pick(beam.polar_vector, pol)
        spindle = pick(exp.goniometer.spindle_axis, spindle)
        tt_axis = pick(det.twotheta_axis, tt_axis)

    def opt(v: float | None) -> float:
        return math.nan if v is None else v / 1000.0  # C: atof(mm)/1000.0

    xbeam, ybeam = opt(det.xbeam_mm), opt(det.ybeam_mm)
    xclose, yclose = opt(det.xclose_mm), opt(det.yclose_mm)
    distance = det.distance_mm / 1000.0 if det.distance_mm is not None else 0.1
    close_distance = opt(det.close_distance_mm)

    fclose = (det.orgx - 0.5) * px if det.orgx is not None else math.nan
    sclose = (det.orgy - 0.5) * px if det.orgy is not None else math.nan
    if math.isnan(fclose):
        fclose = detsize_f / 2.0
    if math.isnan(sclose):
        sclose = detsize_s / 2.0
    if math.isnan(xclose):
        xclose = fclose
    if math.isnan(yclose):
        yclose = sclose
    fbeam, sbeam = fclose, sclose

    if conv is Convention.ADXV:
        if math.isnan(xbeam):
            xbeam = (detsize_f + px) / 2.0
        if math.isnan(ybeam):
            ybeam = (detsize_s - px) / 2.0
        fbeam, sbeam = xbeam, detsize_s - ybeam
    elif conv in (Convention.MOSFLM, Convention.DENZO):
        if math.isnan(xbeam):
            xbeam = (detsize_s + px) / 2.0
        if math.isnan(ybeam):
            ybeam = (detsize_f + px) / 2.0
        shift = 0.5 * px if conv is Convention.MOSFLM else 0.0
        fbeam, sbeam = ybeam + shift, xbeam + shift
    elif conv in (Convention.XDS, Convention.DIALS):
        if math.isnan(xbeam):
            xbeam = xclose
        if math.isnan(ybeam):
            ybeam = yclose
        fbeam, sbeam = xbeam, ybeam
    else:  # CUSTOM
        if math.isnan(xbeam):
            xbeam = xclose
        if math.isnan(ybeam):
            ybeam = yclose
        fbeam, sbeam = xbeam, ybeam
        fclose, sclose = xbeam, ybeam

    b, f, s = unit(b), unit(f), unit(s)
    # C keeps odet only if it was already a unit vector, else rebuilds it as f x s
    o = o if cv.magnitude(cv.vec(o)) == 1.0 else unit(np.array(cv.cross(cv.vec(f), cv.vec(s))))
    pol, spindle = unit(pol), unit(spindle)
    tt_axis = np.array(tt_axis, dtype=float)

    pivot = det.resolved_pivot
    rx, ry, rz = det.rotx_deg / RTD, det.roty_deg / RTD, det.rotz_deg / RTD
    twotheta = det.twotheta_deg / RTD

    ratio = _dot(b, rotate_xyz(o, rx, ry, rz))
    if ratio == 0.0:
        ratio = np.finfo(float).tiny
    if math.isnan(close_distance):
        close_distance = abs(ratio * distance)
    distance = close_distance / ratio

    pix0 = np.zeros(3)
    if pivot is Pivot.SAMPLE:
        pix0 = -fclose * f - sclose * s + close_distance * o
        pix0 = rotate_axis(rotate_xyz(pix0, rx, ry, rz), tt_axis, twotheta)
    f = rotate_axis(rotate_xyz(f, rx, ry, rz), tt_axis, twotheta)
    s = rotate_axis(rotate_xyz(s, rx, ry, rz), tt_axis, twotheta)
    o = rotate_axis(rotate_xyz(o, rx, ry, rz), tt_axis, twotheta)
    if pivot is Pivot.BEAM:
        pix0 = -fbeam * f - sbeam * s + distance * b
    if det.pix0_vector_m is not None:
        # an explicit first-pixel vector is final: the beam centres are derived from it
        pix0 = np.array(det.pix0_vector_m, dtype=float)

    fclose = -_dot(pix0, f)
    sclose = -_dot(pix0, s)
    close_distance = _dot(pix0, o)
    hit = close_distance / ratio * b - pix0
    fbeam = _dot(f, hit)
    sbeam = _dot(s, hit)
    distance = close_distance / ratio
    orgx = fclose / px + 0.5
    orgy = sclose / px + 0.5
    dials = (1000.0 * pix0[2], 1000.0 * pix0[1], -1000.0 * pix0[0])

    return DetectorGeometry(
        fast_pixels=fpix,
        slow_pixels=spix,
        pixel_size=px,
        fdet=f,
        sdet=s,
        odet=o,
        pix0=pix0,
        beam=b,
        polar=pol,
        spindle=spindle,
        twotheta_axis=tt_axis,
        distance=distance,
        close_distance=close_distance,
        xbeam=xbeam,
        ybeam=ybeam,
        xclose=xclose,
        yclose=yclose,
        fbeam=fbeam,
        sbeam=sbeam,
        fclose=fclose,
        sclose=sclose,
        orgx=orgx,
        orgy=orgy,
        dials_origin=(float(dials[0]), float(dials[1]), float(dials[2])),
        detsize_f=detsize_f,
        detsize_s=detsize_s,
        twotheta=twotheta,
        pivot=pivot,
        convention=conv,
        curved=det.curved,
        point_pixel=det.point_pixel,
    )
