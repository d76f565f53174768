"""The experiment description: beam, detector, crystal, goniometer/scan and sampling.

Units follow the nanoBragg command line: lengths of the detector in mm, wavelengths and
cells in Angstrom, angles in degrees, sensor thickness in micrometres. Values that C
nanoBragg derives from others (beam centre, oversampling, pivot) may be left ``None``
and are derived by :mod:`engine.geometry` exactly as the C program does.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Vec3 = tuple[float, float, float]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


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

    position: Vec3
    intensity: float = 1.0
    wavelength_A: PositiveFloat


class Beam(_Model):
    """Incident X-ray beam."""

    wavelength_A: PositiveFloat = 1.0
    fluence: PositiveFloat = 125932015286227086360700780544.0  # photons/m^2
    flux: NonNegFloat = 0.0  # photons/s, informational once fluence is resolved
    exposure_s: float = 1.0
    beamsize_mm: float = 0.1
    polarization: float = Field(0.0, ge=-1, le=1)  # Kahn factor
    nopolar: bool = False
    beam_vector: Vec3 | None = None  # None: the convention's
    polar_vector: Vec3 | None = None  # None: the convention's
    # spectral dispersion (fraction, not percent) and divergence (mrad)
    dispersion: float = -1.0
    dispstep: float = -1.0
    dispsteps: int = -1
    hdivrange_mrad: float = -1.0
    hdivstep_mrad: float = -1.0
    hdivsteps: int = -1
    vdivrange_mrad: float = -1.0
    vdivstep_mrad: float = -1.0
    vdivsteps: int = -1
    round_div: bool = True
    sources: tuple[Source, ...] | None = None  # explicit list (from -sourcefile)


class Detector(_Model):
    """Flat (or curved) pixel-array detector."""

    fast_pixels: int = Field(1024, ge=1, le=1 << 17)
    slow_pixels: int = Field(1024, ge=1, le=1 << 17)
    pixel_size_mm: PositiveFloat = 0.1
    distance_mm: PositiveFloat | None = 100.0
    close_distance_mm: PositiveFloat | None = None
    convention: Convention = Convention.MOSFLM
    pivot: Pivot | None = None  # None: the convention's (BEAM for CUSTOM)
    xbeam_mm: float | None = None
    ybeam_mm: float | None = None
    xclose_mm: float | None = None
    yclose_mm: float | None = None
    orgx: float | None = None  # XDS ORGX, pixels
    orgy: float | None = None
    rotx_deg: float = 0.0
    roty_deg: float = 0.0
    rotz_deg: float = 0.0
    twotheta_deg: float = 0.0
    twotheta_axis: Vec3 | None = None
    fdet_vector: Vec3 | None = None
    sdet_vector: Vec3 | None = None
    odet_vector: Vec3 | None = None
    pix0_vector_m: Vec3 | None = None  # vector from sample to the first pixel, metres
    spindle_axis: Vec3 | None = None
    curved: bool = False
    point_pixel: bool = False
    thick_um: NonNegFloat = 0.0
    absorption_um: float | None = None  # attenuation depth; None: C's default
    thicksteps: int = -1

    @property
    def resolved_pivot(self) -> Pivot:
        if self.convention in CONVENTION_PIVOT:
            return CONVENTION_PIVOT[self.convention]
        return self.pivot or Pivot.BEAM


class Crystal(_Model):
    """Nanocrystal: cell (or MOSFLM A matrix), orientation, size, shape and structure factors."""

    cell: tuple[float, float, float, float, float, float] | None = None  # A, A, A, deg x3
    a_matrix: tuple[Vec3, Vec3, Vec3] | None = None  # MOSFLM A rows (includes wavelength)
    a_matrix_wavelength_A: float | None = None
    misset_deg: Vec3 | None = None
    na: int = Field(1, ge=1)
    nb: int = Field(1, ge=1)
    nc: int = Field(1, ge=1)
    size_mm: tuple[float, float, float] | None = None  # overrides na/nb/nc when > 0
    shape: CrystalShape = CrystalShape.SQUARE
    fudge: float = 1.0
    default_F: NonNegFloat = 0.0
    hkl_file: str | None = None
    fdump_file: str | None = None
    interpolate: bool | None = None  # None: automatic (on when any N <= 2)
    mosaic_spread_deg: float = -1.0
    mosaic_domains: int = -1
    mosaic_seed: int = 12345678

    @model_validator(mode="after")
    def _need_cell(self) -> Crystal:
        if self.cell is None and self.a_matrix is None:
            raise ValueError("crystal needs a cell or an a_matrix")
        return self


class Goniometer(_Model):
    """Spindle rotation during one frame: start, oscillation range and steps."""

    phi0_deg: float = 0.0
    osc_deg: float = -1.0
    phistep_deg: float = -1.0
    phisteps: int = -1


class ROI(_Model):
    """Rendered pixels (inclusive as -roi): fast (x) xmin..xmax, slow (y) ymin..ymax."""

    xmin: int = Field(ge=0)
    xmax: int = Field(ge=0)
    ymin: int = Field(ge=0)
    ymax: int = Field(ge=0)


class Sampling(_Model):
    """Sub-pixel sampling, region of interest and resolution cut."""

    oversample: int | None = None  # None: C's automatic choice
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    roi: ROI | None = None
    dmin_A: NonNegFloat = 0.0
    water_um: NonNegFloat = 0.0


class Experiment(_Model):
    """Everything needed to render a frame; immutable and JSON-serialisable."""

    beam: Beam = Beam()
    detector: Detector = Detector()
    crystal: Crystal
    goniometer: Goniometer = Goniometer()
    sampling: Sampling = Sampling()

    def with_frame(self, k: int) -> Experiment:
        """Frame k of an oscillation series: phi starts at phi0 + k*osc, same steps."""
        from engine.scan import resolve_phi

        phi0, osc, _, _ = resolve_phi(self.goniometer)
        gonio = self.goniometer.model_copy(update={"phi0_deg": phi0 + k * osc})
        return self.model_copy(update={"goniometer": gonio})
