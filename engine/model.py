"""The experiment description in dxtbx's terms: beam, detector, crystal, goniometer, scan,
plus sub-pixel sampling.

Units follow the nanoBragg command line: lengths of the detector and crystal in mm,
wavelengths and cells in Angstrom, angles in degrees, divergence in mrad, sensor thickness
in micrometres. ``None`` means "not given": C nanoBragg then derives the value from the
others (beam centre, oversampling, pivot, step counts), and :mod:`engine.plan`
(with :mod:`engine.geometry`, :mod:`engine.scan` and :mod:`engine.sources`) derives it exactly
as the C program does.
The model's JSON schema states each field's unit; it imports neither torch nor numpy.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.legacy import upgrade_experiment

Vec3 = tuple[float, float, float]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Steps = Annotated[int, Field(ge=0)]


class Convention(StrEnum):
    """Detector/beam axis conventions of nanoBragg (and the programs they are named after)."""

    MOSFLM = "MOSFLM"
    DENZO = "DENZO"
    ADXV = "ADXV"
    XDS = "XDS"
    DIALS = "DIALS"
    CUSTOM = "CUSTOM"


class Pivot(StrEnum):
    """What stays fixed when the detector is rotated: the direct-beam spot or the sample."""

    BEAM = "BEAM"
    SAMPLE = "SAMPLE"


class CrystalShape(StrEnum):
    """Lattice transform models: parallelepiped, ellipsoid, Gaussian spots, top-hat spots."""

    SQUARE = "SQUARE"
    ROUND = "ROUND"
    GAUSS = "GAUSS"
    TOPHAT = "TOPHAT"


#: Pivot forced by each convention (CUSTOM takes it from the flags).
CONVENTION_PIVOT = {
    Convention.MOSFLM: Pivot.BEAM,
    Convention.DENZO: Pivot.BEAM,
    Convention.ADXV: Pivot.BEAM,
    Convention.XDS: Pivot.SAMPLE,
    Convention.DIALS: Pivot.SAMPLE,
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Model):
    """One point source: direction from the sample towards the source, weight, wavelength."""

    position: Vec3 = Field(description="sample -> source vector, metres (direction only)")
    intensity: float = Field(1.0, description="relative weight")
    wavelength_A: PositiveFloat = Field(description="wavelength, Angstrom")


def _f(default, description: str, **kw):
    return Field(default, description=description, **kw)


class Beam(_Model):
    """Incident X-ray beam: wavelength, fluence, polarization, divergence and dispersion."""

    wavelength_A: PositiveFloat = _f(1.0, "central wavelength, Angstrom")
    fluence: PositiveFloat = _f(125932015286227086360700780544.0, "photons/m^2 on the sample")
    flux: NonNegFloat = _f(0.0, "photons/s (informational once the fluence is resolved)")
    exposure_s: float = _f(1.0, "exposure time, s")
    beamsize_mm: float = _f(0.1, "beam size, mm (also clips the crystal's y and z size)")
    polarization: float = _f(0.0, "Kahn polarization factor, -1..1", ge=-1, le=1)
    nopolar: bool = _f(False, "no polarization correction at all")
    beam_vector: Vec3 | None = _f(None, "direction of travel (unit-less); None: the convention's")
    polar_vector: Vec3 | None = _f(None, "E-vector direction (unit-less); None: the convention's")
    dispersion: NonNegFloat | None = _f(None, "spectral width, fraction (CLI: percent/100)")
    dispstep: PositiveFloat | None = _f(None, "wavelength step, fraction")
    dispsteps: Steps | None = _f(None, "number of wavelengths; None: C's automatic choice")
    hdivrange_mrad: NonNegFloat | None = _f(None, "horizontal divergence range, mrad")
    hdivstep_mrad: NonNegFloat | None = _f(None, "horizontal divergence step, mrad")
    hdivsteps: Steps | None = _f(None, "horizontal divergence steps; None: automatic")
    vdivrange_mrad: NonNegFloat | None = _f(None, "vertical divergence range, mrad")
    vdivstep_mrad: NonNegFloat | None = _f(None, "vertical divergence step, mrad")
    vdivsteps: Steps | None = _f(None, "vertical divergence steps; None: automatic")
    round_div: bool = _f(True, "trim the divergence grid to an ellipse")
    source_distance_mm: PositiveFloat = _f(10000.0, "sample to source, mm (C: 10 m)")
    sources: tuple[Source, ...] | None = _f(None, "explicit sources (from -sourcefile)")

    @property
    def wavelength_m(self) -> float:
        """C's ``lambda0``: Angstrom / 1e10 (divided, as C does)."""
        return self.wavelength_A / 1e10


class Detector(_Model):
    """Flat (or curved) pixel-array detector."""

    fast_pixels: int = _f(1024, "pixels along the fast axis", ge=1, le=1 << 17)
    slow_pixels: int = _f(1024, "pixels along the slow axis", ge=1, le=1 << 17)
    pixel_size_mm: PositiveFloat = _f(0.1, "pixel size, mm")
    distance_mm: PositiveFloat | None = _f(100.0, "sample to detector along the beam, mm")
    close_distance_mm: PositiveFloat | None = _f(None, "sample to detector plane, mm")
    convention: Convention = _f(Convention.MOSFLM, "axis convention")
    pivot: Pivot | None = _f(None, "None: the convention's (BEAM for CUSTOM)")
    xbeam_mm: float | None = _f(None, "beam centre X, mm (convention's header value)")
    ybeam_mm: float | None = _f(None, "beam centre Y, mm (convention's header value)")
    xclose_mm: float | None = _f(None, "point nearest the sample, X, mm")
    yclose_mm: float | None = _f(None, "point nearest the sample, Y, mm")
    orgx: float | None = _f(None, "XDS ORGX, pixels")
    orgy: float | None = _f(None, "XDS ORGY, pixels")
    rotx_deg: float = _f(0.0, "detector rotation about x, degrees")
    roty_deg: float = _f(0.0, "detector rotation about y, degrees")
    rotz_deg: float = _f(0.0, "detector rotation about z, degrees")
    twotheta_deg: float = _f(0.0, "detector two-theta swing, degrees")
    twotheta_axis: Vec3 | None = _f(None, "two-theta axis (unit-less); None: the convention's")
    fdet_vector: Vec3 | None = _f(None, "fast axis (unit-less); None: the convention's")
    sdet_vector: Vec3 | None = _f(None, "slow axis (unit-less); None: the convention's")
    odet_vector: Vec3 | None = _f(None, "normal (unit-less); None: the convention's")
    pix0_vector_m: Vec3 | None = _f(None, "sample -> first pixel corner, metres")
    curved: bool = _f(False, "spherical detector (every pixel at the same distance)")
    point_pixel: bool = _f(False, "solid angle of a point, not of the pixel area")
    thick_um: NonNegFloat = _f(0.0, "sensor thickness, micrometres")
    absorption_um: float | None = _f(None, "sensor attenuation depth, micrometres (0: none)")
    thicksteps: Steps | None = _f(None, "sensor layers; None: C's automatic choice")

    @property
    def resolved_pivot(self) -> Pivot:
        if self.convention in CONVENTION_PIVOT:
            return CONVENTION_PIVOT[self.convention]
        return self.pivot or Pivot.BEAM


class Crystal(_Model):
    """Nanocrystal: cell (or MOSFLM A matrix), orientation, size, shape and structure factors."""

    cell: tuple[float, float, float, float, float, float] | None = _f(
        None, "a, b, c (Angstrom), alpha, beta, gamma (degrees)"
    )
    a_matrix: tuple[Vec3, Vec3, Vec3] | None = _f(
        None, "MOSFLM A matrix rows (includes the wavelength), 1/Angstrom"
    )
    a_matrix_wavelength_A: float | None = _f(None, "wavelength of the A matrix, Angstrom")
    misset_deg: Vec3 | None = _f(None, "misset rotations about x, y, z, degrees")
    na: int = _f(1, "unit cells along a", ge=1)
    nb: int = _f(1, "unit cells along b", ge=1)
    nc: int = _f(1, "unit cells along c", ge=1)
    size_mm: tuple[float, float, float] | None = _f(
        None, "crystal size x, y, z, mm; a size > 0 overrides na/nb/nc"
    )
    shape: CrystalShape = _f(CrystalShape.SQUARE, "lattice transform model")
    fudge: float = _f(1.0, "shape-transform width factor")
    default_F: NonNegFloat = _f(0.0, "structure factor of unlisted reflections, electrons")
    hkl_file: str | None = _f(None, "structure factors, text h k l F")
    fdump_file: str | None = _f(None, "C nanoBragg Fdump.bin binary structure factors")
    interpolate: bool | None = _f(None, "tricubic F interpolation; None: on when any N <= 2")
    mosaic_spread_deg: NonNegFloat | None = _f(None, "mosaic spread, degrees")
    mosaic_domains: Steps | None = _f(None, "mosaic domains; None: C's automatic choice")
    mosaic_seed: int = _f(12345678, "seed of the mosaic domain orientations")

    @model_validator(mode="after")
    def _need_cell(self) -> Crystal:
        if self.cell is None and self.a_matrix is None:
            raise ValueError("crystal needs a cell or an a_matrix")
        return self


class Goniometer(_Model):
    """The crystal rotation axis."""

    spindle_axis: Vec3 | None = _f(None, "spindle rotation axis (unit-less); None: convention's")


class Scan(_Model):
    """The rotation series: start, oscillation range and steps of a frame, number of frames.

    Frame k of the series starts at ``phi0_deg + k * oscillation`` with the same steps.
    """

    phi0_deg: float = _f(0.0, "spindle angle at the start of the first frame, degrees")
    osc_deg: NonNegFloat | None = _f(None, "oscillation range of one frame, degrees")
    phistep_deg: NonNegFloat | None = _f(None, "spindle step, degrees")
    phisteps: Steps | None = _f(None, "spindle steps per frame; None: C's automatic choice")
    frames: int = _f(1, "consecutive oscillation frames of the series", ge=1)


class ROI(_Model):
    """Rendered pixels (inclusive as -roi): fast (x) xmin..xmax, slow (y) ymin..ymax."""

    xmin: int = Field(ge=0, description="first fast pixel, inclusive")
    xmax: int = Field(ge=0, description="last fast pixel, inclusive")
    ymin: int = Field(ge=0, description="first slow pixel, inclusive")
    ymax: int = Field(ge=0, description="last slow pixel, inclusive")


class Sampling(_Model):
    """Sub-pixel sampling, region of interest and resolution cut."""

    oversample: int | None = _f(None, "sub-pixels per pixel edge; None: C's automatic choice")
    oversample_thick: bool = _f(False, "sensor capture per sub-pixel")
    oversample_polar: bool = _f(False, "polarization per sub-pixel")
    oversample_omega: bool = _f(False, "solid angle per sub-pixel")
    roi: ROI | None = _f(None, "rendered pixels; None: the whole detector")
    mask_file: str | None = _f(None, "SMV file: pixels 0 in it are not rendered (stay 0)")
    dmin_A: NonNegFloat = _f(0.0, "resolution cut, Angstrom (0: none)")
    water_um: NonNegFloat = _f(0.0, "water background thickness, micrometres")


class Experiment(_Model):
    """Everything needed to render a frame; immutable and JSON-serialisable."""

    beam: Beam = _f(Beam(), "incident beam")
    detector: Detector = _f(Detector(), "pixel-array detector")
    crystal: Crystal = Field(description="the nanocrystal")
    goniometer: Goniometer = _f(Goniometer(), "crystal rotation axis")
    scan: Scan = _f(Scan(), "spindle rotation of one frame")
    sampling: Sampling = _f(Sampling(), "sub-pixel sampling, region of interest, cuts")

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data):
        """Read the pre-0.2 spelling too (-1 sentinels, spindle axis on the detector, ...)."""
        return upgrade_experiment(data)
