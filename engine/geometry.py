"""Detector and crystal geometry derived from an :class:`~engine.model.Experiment`.

Follows C nanoBragg's set-up step by step (in float64, SI units: metres, radians,
metres^-1) so that the derived numbers equal the ones it prints: Fbeam/Sbeam, pix0,
close distance, XDS ORGX/ORGY and the DIALS origin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

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


class _Axes(NamedTuple):
    """A convention's lab-frame axes (unit-less; unit vectors once resolved)."""

    beam: np.ndarray
    fdet: np.ndarray
    sdet: np.ndarray
    odet: np.ndarray
    twotheta: np.ndarray
    polar: np.ndarray
    spindle: np.ndarray


class _Plane(NamedTuple):
    """Beam-centre inputs, m: pixel and detector size, the given beam and close points (NaN: not
    given) and C's default close point (from ORGX/ORGY, else the detector centre)."""

    px: float
    detsize_f: float
    detsize_s: float
    xbeam: float
    ybeam: float
    xclose: float
    yclose: float
    fclose: float
    sclose: float


class _Centre(NamedTuple):
    """Beam centre in convention (x, y) and detector (fast, slow) terms, close point; m."""

    xbeam: float
    ybeam: float
    fbeam: float
    sbeam: float
    fclose: float
    sclose: float


def _mm(v: float | None) -> float:
    return math.nan if v is None else v / 1000.0  # C: atof(mm)/1000.0


def _plane(exp: Experiment) -> _Plane:
    """The beam-centre inputs of ``exp``'s detector, with C's defaults of the close point."""
    det = exp.detector
    px = det.pixel_size_mm / 1000.0
    detsize_f, detsize_s = px * det.fast_pixels, px * det.slow_pixels
    xclose, yclose = _mm(det.xclose_mm), _mm(det.yclose_mm)
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
    return _Plane(px, detsize_f, detsize_s, _mm(det.xbeam_mm), _mm(det.ybeam_mm),
                  xclose, yclose, fclose, sclose)  # fmt: skip


def _axes(conv: Convention) -> _Axes:
    return _Axes(*(np.array(a, dtype=float) for a in _AXES[conv]))


def _adxv(exp: Experiment, p: _Plane) -> tuple[_Axes, _Centre]:
    """ADXV: beam centre from the first pixel's corner, y up from the bottom edge."""
    xbeam = (p.detsize_f + p.px) / 2.0 if math.isnan(p.xbeam) else p.xbeam
    ybeam = (p.detsize_s - p.px) / 2.0 if math.isnan(p.ybeam) else p.ybeam
    centre = _Centre(xbeam, ybeam, xbeam, p.detsize_s - ybeam, p.fclose, p.sclose)
    return _axes(Convention.ADXV), centre


def _mosflm_centre(p: _Plane, shift: float) -> _Centre:
    """MOSFLM/DENZO beam centre: x along slow, y along fast, shifted by ``shift`` (m)."""
    xbeam = (p.detsize_s + p.px) / 2.0 if math.isnan(p.xbeam) else p.xbeam
    ybeam = (p.detsize_f + p.px) / 2.0 if math.isnan(p.ybeam) else p.ybeam
    return _Centre(xbeam, ybeam, ybeam + shift, xbeam + shift, p.fclose, p.sclose)


def _mosflm(exp: Experiment, p: _Plane) -> tuple[_Axes, _Centre]:
    """MOSFLM: beam centre at pixel centres (half a pixel from DENZO's)."""
    return _axes(Convention.MOSFLM), _mosflm_centre(p, 0.5 * p.px)


def _denzo(exp: Experiment, p: _Plane) -> tuple[_Axes, _Centre]:
    """DENZO: MOSFLM's axes, beam centre at pixel corners."""
    return _axes(Convention.DENZO), _mosflm_centre(p, 0.0)


def _xds_centre(p: _Plane) -> _Centre:
    """XDS/DIALS beam centre: x along fast, y along slow, default the close point."""
    xbeam = p.xclose if math.isnan(p.xbeam) else p.xbeam
    ybeam = p.yclose if math.isnan(p.ybeam) else p.ybeam
    return _Centre(xbeam, ybeam, xbeam, ybeam, p.fclose, p.sclose)


def _xds(exp: Experiment, p: _Plane) -> tuple[_Axes, _Centre]:
    """XDS: beam along +z, fast +x, slow +y."""
    return _axes(Convention.XDS), _xds_centre(p)


def _dials(exp: Experiment, p: _Plane) -> tuple[_Axes, _Centre]:
    """DIALS: XDS's detector axes, spindle and polarisation along +y."""
    return _axes(Convention.DIALS), _xds_centre(p)


def _custom(exp: Experiment, p: _Plane) -> tuple[_Axes, _Centre]:
    """CUSTOM: nanoBragg's default axes overridden by explicit vectors; the beam centre is
    also the close point."""
    det, default = exp.detector, _axes(Convention.CUSTOM)

    def pick(vec: tuple[float, float, float] | None, fallback: np.ndarray) -> np.ndarray:
        return fallback if vec is None else np.array(vec, dtype=float)

    axes = _Axes(
        beam=pick(exp.beam.beam_vector, default.beam),
        fdet=pick(det.fdet_vector, default.fdet),
        sdet=pick(det.sdet_vector, default.sdet),
        odet=pick(det.odet_vector, default.odet),
        twotheta=pick(det.twotheta_axis, default.twotheta),
        polar=pick(exp.beam.polar_vector, default.polar),
        spindle=pick(exp.goniometer.spindle_axis, default.spindle),
    )
    centre = _xds_centre(p)
    return axes, centre._replace(fclose=centre.xbeam, sclose=centre.ybeam)


#: Each convention's axes and beam centre, as C nanoBragg sets them up.
CONVENTIONS: dict[Convention, Callable[[Experiment, _Plane], tuple[_Axes, _Centre]]] = {
    Convention.ADXV: _adxv,
    Convention.MOSFLM: _mosflm,
    Convention.DENZO: _denzo,
    Convention.XDS: _xds,
    Convention.DIALS: _dials,
    Convention.CUSTOM: _custom,
}


def _unit_axes(a: _Axes) -> _Axes:
    """Unit axes; C keeps odet only if it was already a unit vector, else rebuilds it as f x s."""
    b, f, s = unit(a.beam), unit(a.fdet), unit(a.sdet)
    o = a.odet
    if cv.magnitude(cv.vec(o)) != 1.0:
        o = unit(np.array(cv.cross(cv.vec(f), cv.vec(s))))
    tt_axis = np.array(a.twotheta, dtype=float)
    return _Axes(b, f, s, o, tt_axis, unit(a.polar), unit(a.spindle))


class _Placement(NamedTuple):
    """The rotated detector: first-pixel vector (m), axes, and beam . normal."""

    pix0: np.ndarray
    fdet: np.ndarray
    sdet: np.ndarray
    odet: np.ndarray
    ratio: float


def _place(exp: Experiment, a: _Axes, c: _Centre, twotheta: float) -> _Placement:
    """Rotate the detector (rotx, roty, rotz, then two-theta) about its pivot, as C does."""
    det = exp.detector
    distance = det.distance_mm / 1000.0 if det.distance_mm is not None else 0.1
    close_distance = _mm(det.close_distance_mm)
    rx, ry, rz = det.rotx_deg / RTD, det.roty_deg / RTD, det.rotz_deg / RTD

    def rotate(v: np.ndarray) -> np.ndarray:
        return rotate_axis(rotate_xyz(v, rx, ry, rz), a.twotheta, twotheta)

    ratio = _dot(a.beam, rotate_xyz(a.odet, rx, ry, rz))
    if ratio == 0.0:
        ratio = np.finfo(float).tiny
    if math.isnan(close_distance):
        close_distance = abs(ratio * distance)
    distance = close_distance / ratio

    pivot = det.resolved_pivot
    pix0 = np.zeros(3)
    if pivot is Pivot.SAMPLE:
        pix0 = rotate(-c.fclose * a.fdet - c.sclose * a.sdet + close_distance * a.odet)
    f, s, o = rotate(a.fdet), rotate(a.sdet), rotate(a.odet)
    if pivot is Pivot.BEAM:
        pix0 = -c.fbeam * f - c.sbeam * s + distance * a.beam
    if det.pix0_vector_m is not None:
        # an explicit first-pixel vector is final: the beam centres are derived from it
        pix0 = np.array(det.pix0_vector_m, dtype=float)
    return _Placement(pix0, f, s, o, ratio)


def detector_geometry(exp: Experiment) -> DetectorGeometry:
    """Derive the detector geometry exactly as C nanoBragg does."""
    det = exp.detector
    p = _plane(exp)
    axes, centre = CONVENTIONS[det.convention](exp, p)
    axes = _unit_axes(axes)
    twotheta = det.twotheta_deg / RTD
    pix0, f, s, o, ratio = _place(exp, axes, centre, twotheta)
    px = p.px

    fclose = -_dot(pix0, f)
    sclose = -_dot(pix0, s)
    close_distance = _dot(pix0, o)
    hit = close_distance / ratio * axes.beam - pix0
    dials = (1000.0 * pix0[2], 1000.0 * pix0[1], -1000.0 * pix0[0])

    return DetectorGeometry(
        fast_pixels=det.fast_pixels,
        slow_pixels=det.slow_pixels,
        pixel_size=px,
        fdet=f,
        sdet=s,
        odet=o,
        pix0=pix0,
        beam=axes.beam,
        polar=axes.polar,
        spindle=axes.spindle,
        twotheta_axis=axes.twotheta,
        distance=close_distance / ratio,
        close_distance=close_distance,
        xbeam=centre.xbeam,
        ybeam=centre.ybeam,
        xclose=p.xclose,
        yclose=p.yclose,
        fbeam=_dot(f, hit),
        sbeam=_dot(s, hit),
        fclose=fclose,
        sclose=sclose,
        orgx=fclose / px + 0.5,
        orgy=sclose / px + 0.5,
        dials_origin=(float(dials[0]), float(dials[1]), float(dials[2])),
        detsize_f=p.detsize_f,
        detsize_s=p.detsize_s,
        twotheta=twotheta,
        pivot=det.resolved_pivot,
        convention=det.convention,
        curved=det.curved,
        point_pixel=det.point_pixel,
    )
