"""The nanoBragg flag table: each flag's values, where they go and in which unit.

A :class:`Flag` names its spellings, the kinds of its values (``f`` a number, ``i`` an
integer, ``s`` a word or file name; ``"fff"`` is three numbers), its target (``section.field``
of the parse state, see :class:`engine.cli_args.ParsedArgs`), a check of each value and a
conversion to the model's unit. Flags whose effect is more than "store this value" have a
small handler instead of a target. :func:`engine.cli_args.parse_args` reads the table;
``braggtile nanobragg -help`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import InputError

Check = Callable[[str, Any], Any]


def positive(flag: str, v: float) -> float:
    if not v > 0:
        raise InputError(flag, f"must be > 0, got {v:g}")
    return v


def non_negative(flag: str, v: float) -> float:
    if v < 0:
        raise InputError(flag, f"must be >= 0, got {v:g}")
    return v


def at_least_one(flag: str, n: int) -> int:
    if n < 1:
        raise InputError(flag, f"must be >= 1, got {n}")
    return n


MAX_STEPS = 100_000  # engine.sources.MAX_STEPS, without importing numpy here


def steps(flag: str, n: int) -> int:
    if not 0 <= n <= MAX_STEPS:
        raise InputError(flag, f"number of steps must be between 0 and {MAX_STEPS}, got {n}")
    return n


def seed(flag: str, n: int) -> int:
    if not 0 <= n < 2**31:
        raise InputError(flag, f"random seed must be between 0 and 2147483647, got {n}")
    return n


def pixels(flag: str, n: int) -> int:
    if not 1 <= n <= (1 << 17):
        raise InputError(flag, f"must be between 1 and {1 << 17} pixels, got {n}")
    return n


def kahn(flag: str, v: float) -> float:
    if not -1.0 <= v <= 1.0:
        raise InputError(flag, f"Kahn polarization factor must be in [-1, 1], got {v:g}")
    return v


def oversample(flag: str, n: int) -> int:
    if not 0 <= n <= 256:
        raise InputError(flag, f"must be between 0 (automatic) and 256, got {n}")
    return n


def nonzero_vector(flag: str, v: tuple[float, ...]) -> tuple[float, ...]:
    if not any(v):
        raise InputError(flag, "must not be the zero vector")
    return v


def choice(*allowed: str) -> Check:
    def check(flag: str, v: str) -> str:
        if v.lower() not in allowed:
            raise InputError(flag, f"must be one of {', '.join(allowed)}; got {v!r}")
        return v.lower()

    return check


def point_spread(flag: str, v: str) -> str:
    """``gauss:FWHM_UM`` or ``fiber:FWHM_UM`` (FWHM in micrometres, > 0), or ``none``."""
    from engine.response import PointSpread

    text = v.lower()
    if text == "none":
        return "none"
    try:
        psf = PointSpread.parse(text)
    except ValueError:
        raise InputError(
            flag, f"must be gauss:FWHM_UM or fiber:FWHM_UM (0 < FWHM <= 1e5); got {v!r}"
        ) from None
    return f"{psf.shape}:{psf.fwhm_um:g}"


def overload(flag: str, n: int) -> int:
    if not 1 <= n <= 65535:
        raise InputError(flag, f"must be between 1 and 65535 ADU (2-byte SMV), got {n}")
    return n


@dataclass(frozen=True)
class Flag:
    """One nanoBragg flag: spellings, value kinds, target (or handler), check, unit."""

    names: tuple[str, ...]
    kinds: str = ""  # one letter per value: f number, i integer, s word or path
    target: str | None = None  # "section.field" of the parse state, e.g. "beam.fluence"
    help: str = ""
    check: Check | None = None  # applied to each value
    check_all: Check | None = None  # applied to the tuple of values
    convert: Callable[[Any], Any] | None = None  # to the model's unit
    handler: str | None = None  # name of a handler in engine.cli_args (instead of target)
    values: str = ""  # how the values read in the help, e.g. "a b c al be ga"

    @property
    def arity(self) -> int:
        return len(self.kinds)

    def describe_values(self) -> str:
        """'6 numbers', 'an integer', 'a value' ... for error messages."""
        n = self.arity
        if n == 0:
            return "no value"
        word = {"f": "number", "i": "integer", "s": "value"}[self.kinds[0]]
        if n == 1:
            return f"{'an' if word == 'integer' else 'a'} {word}"
        return f"{n} {word}s"


def F(names, kinds="", target=None, help="", **kw) -> Flag:
    """A table entry; ``names`` is one spelling or a tuple of them."""
    if isinstance(names, str):
        names = (names,)
    return Flag(tuple(names), kinds, target, help, **kw)


_mm3 = ("-xtal_size", "-xtalsize", "-sample_size", "-samplesize")
_VECTORS = (
    ("-fdet_vector", "detector.fdet_vector", "fast axis of the detector"),
    ("-sdet_vector", "detector.sdet_vector", "slow axis of the detector"),
    ("-odet_vector", "detector.odet_vector", "detector normal"),
    ("-beam_vector", "beam.beam_vector", "direction of the beam"),
    ("-polar_vector", "beam.polar_vector", "E-vector of the beam"),
    ("-spindle_axis", "goniometer.spindle_axis", "spindle rotation axis"),
    ("-twotheta_axis", "detector.twotheta_axis", "two-theta rotation axis"),
)

FLAGS: tuple[Flag, ...] = (
    # crystal
    F(
        "-cell",
        "ffffff",
        "crystal.cell",
        "unit cell, Angstrom and degrees",
        check=non_negative,
        values="a b c alpha beta gamma",
    ),
    F("-mat", "s", "refs.mat_file", "MOSFLM A matrix file (cell and orientation)", values="FILE"),
    F("-hkl", "s", "crystal.hkl_file", "structure factors, text h k l F", values="FILE"),
    F("-default_F", "f", "crystal.default_F", "F of unlisted reflections", check=non_negative),
    F(
        "-dump",
        "s",
        "outputs.dumpfile",
        "Fdump file written from -hkl (read without -hkl)",
        values="FILE",
    ),
    F(("-N",), "i", None, "unit cells along a, b and c", check=at_least_one, handler="ncells"),
    F(("-Na",), "i", None, "unit cells along a", check=at_least_one, handler="ncells"),
    F(("-Nb",), "i", None, "unit cells along b", check=at_least_one, handler="ncells"),
    F(("-Nc",), "i", None, "unit cells along c", check=at_least_one, handler="ncells"),
    F(
        _mm3,
        "f",
        "size_mm.xyz",
        "crystal size x = y = z, mm (sets N)",
        check=positive,
        handler="size",
    ),
    F(
        ("-xtal_thick", "-xtal_x", "-sample_thick", "-sample_x"),
        "f",
        "size_mm.x",
        "crystal size x, mm",
        check=positive,
        handler="size",
    ),
    F(
        ("-xtal_width", "-xtal_y", "-sample_width", "-sample_y", "-width"),
        "f",
        "size_mm.y",
        "crystal size y, mm",
        check=positive,
        handler="size",
    ),
    F(
        ("-xtal_height", "-xtal_z", "-sample_height", "-sample_z", "-height"),
        "f",
        "size_mm.z",
        "crystal size z, mm",
        check=positive,
        handler="size",
    ),
    F(
        ("-density", "-sample_density", "-MW", "-molecules"),
        "f",
        None,
        "accepted and ignored (C derives these from the cell)",
        handler="ignore",
    ),
    F(
        "-misset",
        "fff",
        None,
        "misset rotations about x, y, z, degrees; or 'random'",
        handler="misset",
        values="rotx roty rotz | random",
    ),
    F(
        "-misset_seed",
        "i",
        "refs.misset_seed",
        "seed of -misset random (default: clock)",
        check=seed,
    ),
    F("-mosaic_seed", "i", "crystal.mosaic_seed", "seed of the mosaic domains", check=seed),
    F(
        ("-mosaic", "-mosaic_spread", "-mosaicity"),
        "f",
        "crystal.mosaic_spread_deg",
        "mosaic spread, degrees",
        check=non_negative,
    ),
    F(
        ("-mosaic_domains", "-mosaic_dom"),
        "i",
        "crystal.mosaic_domains",
        "mosaic domains",
        check=steps,
    ),
    F(("-round_xtal",), "", None, "ellipsoidal crystal", handler="shape"),
    F(("-square_xtal",), "", None, "parallelepiped crystal (default)", handler="shape"),
    F(("-gauss_xtal",), "", None, "Gaussian spots", handler="shape"),
    F(("-tophat_spots", "-binary_spots"), "", None, "top-hat spots", handler="shape"),
    F("-fudge", "f", "crystal.fudge", "shape-transform width factor", check=positive),
    F("-interpolate", "", None, "tricubic F interpolation", handler="interpolate"),
    F("-nointerpolate", "", None, "nearest F (no interpolation)", handler="interpolate"),
    # beam
    F(
        ("-lambda", "-wave", "-wavelength"),
        "f",
        "refs.lambda_A",
        "wavelength, Angstrom",
        check=positive,
    ),
    F(
        "-energy",
        "f",
        "refs.lambda_A",
        "photon energy, eV",
        check=positive,
        convert=lambda ev: 12398.42 / ev,
    ),
    F("-fluence", "f", "beam.fluence", "photons/m^2", check=positive),
    F("-flux", "f", "refs.flux", "photons/s (with -exposure and -beamsize)", check=non_negative),
    F("-exposure", "f", "refs.exposure", "exposure, s", check=non_negative),
    F("-beamsize", "f", "refs.beamsize", "beam size, mm", check=non_negative),
    F("-polar", "f", None, "Kahn polarization factor", check=kahn, handler="polar"),
    F("-nopolar", "", "beam.nopolar", "no polarization correction", convert=lambda _: True),
    F(
        "-dispersion",
        "f",
        "beam.dispersion",
        "spectral width, percent",
        check=non_negative,
        convert=lambda pct: pct / 100.0,
    ),
    F("-dispsteps", "i", "beam.dispsteps", "wavelength steps", check=steps),
    F(
        "-divergence",
        "f",
        None,
        "horizontal and vertical divergence, mrad",
        check=non_negative,
        handler="divergence",
    ),
    F("-hdivrange", "f", "beam.hdivrange_mrad", "horizontal divergence, mrad", check=non_negative),
    F("-vdivrange", "f", "beam.vdivrange_mrad", "vertical divergence, mrad", check=non_negative),
    F(
        "-hdivstep",
        "f",
        "beam.hdivstep_mrad",
        "horizontal divergence step, mrad",
        check=non_negative,
    ),
    F("-vdivstep", "f", "beam.vdivstep_mrad", "vertical divergence step, mrad", check=non_negative),
    F("-hdivsteps", "i", "beam.hdivsteps", "horizontal divergence steps", check=steps),
    F("-vdivsteps", "i", "beam.vdivsteps", "vertical divergence steps", check=steps),
    F(
        "-divsteps",
        "i",
        None,
        "horizontal and vertical divergence steps",
        check=steps,
        handler="divsteps",
    ),
    F(
        "-round_div",
        "",
        "beam.round_div",
        "elliptical divergence (default)",
        convert=lambda _: True,
    ),
    F("-square_div", "", "beam.round_div", "rectangular divergence", convert=lambda _: False),
    F(
        "-sourcefile",
        "s",
        "refs.sourcefile",
        "source list: X Y Z weight lambda per line",
        values="FILE",
    ),
    F(
        ("-source_dist", "-source_distance"),
        "f",
        "beam.source_distance_mm",
        "sample to source, mm (divergence; default 10 m)",
        check=positive,
    ),
    # detector
    F(
        "-mask",
        "s",
        "refs.mask_file",
        "SMV file: its header sets the detector; its 0 pixels stay 0",
        values="FILE",
    ),
    F("-img", "s", "refs.img_file", "SMV file whose header sets the detector", values="FILE"),
    F(
        "-distance",
        "f",
        "detector.distance_mm",
        "sample to detector along the beam, mm",
        check=positive,
        handler="pivot_beam",
    ),
    F(
        "-close_distance",
        "f",
        "detector.close_distance_mm",
        "sample to detector plane, mm",
        check=positive,
        handler="pivot_sample",
    ),
    F("-Xbeam", "f", "detector.xbeam_mm", "beam centre X, mm", handler="pivot_beam"),
    F("-Ybeam", "f", "detector.ybeam_mm", "beam centre Y, mm", handler="pivot_beam"),
    F("-Xclose", "f", "detector.xclose_mm", "nearest point X, mm", handler="pivot_sample"),
    F("-Yclose", "f", "detector.yclose_mm", "nearest point Y, mm", handler="pivot_sample"),
    F("-ORGX", "f", "detector.orgx", "XDS ORGX, pixels", handler="pivot_sample"),
    F("-ORGY", "f", "detector.orgy", "XDS ORGY, pixels", handler="pivot_sample"),
    F(
        "-twotheta",
        "f",
        "detector.twotheta_deg",
        "two-theta swing, degrees",
        handler="pivot_sample",
    ),
    F(
        "-pivot",
        "s",
        None,
        "detector rotation pivot",
        check=choice("sample", "beam"),
        handler="pivot",
        values="sample|beam",
    ),
    F(
        ("-mosflm", "-xds", "-adxv", "-denzo", "-dials"),
        "",
        None,
        "axis convention",
        handler="convention",
    ),
    *(
        F(
            name,
            "fff",
            target,
            f"{what} (CUSTOM convention)",
            check_all=nonzero_vector,
            handler="vector",
        )
        for name, target, what in _VECTORS
    ),
    F(
        "-pix0_vector",
        "fff",
        "detector.pix0_vector_m",
        "sample -> first pixel, metres",
        handler="vector",
    ),
    F("-detector_rotx", "f", "detector.rotx_deg", "detector rotation about x, degrees"),
    F("-detector_roty", "f", "detector.roty_deg", "detector rotation about y, degrees"),
    F("-detector_rotz", "f", "detector.rotz_deg", "detector rotation about z, degrees"),
    F(("-detsize",), "f", None, "detector size, mm", check=positive, handler="detsize"),
    F(("-detsize_f",), "f", None, "fast detector size, mm", check=positive, handler="detsize"),
    F(("-detsize_s",), "f", None, "slow detector size, mm", check=positive, handler="detsize"),
    F(
        ("-detpixels",),
        "i",
        None,
        "detector pixels, fast and slow",
        check=pixels,
        handler="detpixels",
    ),
    F(
        ("-detpixels_f", "-detpixels_x"),
        "i",
        None,
        "fast pixels",
        check=pixels,
        handler="detpixels",
    ),
    F(
        ("-detpixels_s", "-detpixels_y"),
        "i",
        None,
        "slow pixels",
        check=pixels,
        handler="detpixels",
    ),
    F("-pixel", "f", "refs.pixel_mm", "pixel size, mm", check=positive),
    F("-curved_det", "", "detector.curved", "spherical detector", convert=lambda _: True),
    F("-point_pixel", "", "detector.point_pixel", "solid angle of a point", convert=lambda _: True),
    F("-detector_thick", "f", "detector.thick_um", "sensor thickness, um", check=non_negative),
    F(
        ("-detector_thicksteps", "-thicksteps"),
        "i",
        "detector.thicksteps",
        "sensor layers",
        check=steps,
    ),
    F(
        ("-detector_abs", "-detector_absorb"),
        "s",
        None,
        "sensor attenuation depth, um, or 'inf'",
        handler="absorption",
        values="UM|inf",
    ),
    # scan and sampling
    F("-phi", "f", "scan.phi0_deg", "spindle angle at the start, degrees"),
    F("-osc", "f", "scan.osc_deg", "oscillation range, degrees", check=non_negative),
    F("-phistep", "f", "scan.phistep_deg", "spindle step, degrees", check=non_negative),
    F("-phisteps", "i", "scan.phisteps", "spindle steps", check=steps),
    F(
        "-oversample",
        "i",
        "sampling.oversample",
        "sub-pixels per pixel edge (0: auto)",
        check=oversample,
        convert=lambda n: n or None,
    ),
    F(
        "-oversample_thick",
        "",
        "sampling.oversample_thick",
        "sensor capture per sub-pixel",
        convert=lambda _: True,
    ),
    F(
        "-oversample_polar",
        "",
        "sampling.oversample_polar",
        "polarization per sub-pixel",
        convert=lambda _: True,
    ),
    F(
        "-oversample_omega",
        "",
        "sampling.oversample_omega",
        "solid angle per sub-pixel",
        convert=lambda _: True,
    ),
    F(
        "-roi",
        "iiii",
        None,
        "rendered pixels, inclusive",
        handler="roi",
        values="xmin xmax ymin ymax",
    ),
    F("-dmin", "f", "sampling.dmin_A", "resolution cut, Angstrom", check=non_negative),
    F("-water", "f", "sampling.water_um", "water background thickness, um", check=non_negative),
    F(
        ("-stol", "-4stol", "-Q"),
        "s",
        None,
        "amorphous F table (stol, 4stol or Q; F); read, unused as in C",
        handler="stol",
        values="FILE",
    ),
    F("-stolout", "s", "refs.stolout_file", "accepted; C never writes it", values="FILE"),
    # outputs
    F(("-floatfile", "-floatimage"), "s", "outputs.floatfile", "raw float32 image", values="FILE"),
    F(("-intfile", "-intimage"), "s", "outputs.intfile", "SMV image", values="FILE"),
    F(("-pgmfile", "-pgmimage"), "s", "outputs.pgmfile", "PGM image", values="FILE"),
    F(
        ("-noisefile", "-noiseimage"),
        "s",
        "outputs.noisefile",
        "SMV image with noise",
        values="FILE",
    ),
    F("-nonoise", "", "outputs.noisefile", "no noise image", convert=lambda _: None),
    F("-nopgm", "", "outputs.pgmfile", "no PGM image", convert=lambda _: None),
    F("-scale", "f", "outputs.intfile_scale", "SMV scale (0: auto)"),
    F("-pgmscale", "f", "outputs.pgm_scale", "PGM scale (0: auto)"),
    F("-adc", "f", "outputs.adc_offset", "ADC offset of the SMV images, ADU"),
    F("-seed", "i", "outputs.seed", "noise seed", check=seed),
    F("-printout_pixel", "ii", None, "accepted", handler="printout_pixel", values="F S"),
    F(("-coherent", "-printout"), "", None, "accepted and ignored", handler="ignore"),
    F("-noprogress", "", "outputs.progress", "no progress bar", convert=lambda _: False),
    F("-progress", "", "outputs.progress", "progress bar", convert=lambda _: True),
    # braggtile's own
    F(
        "-dtype",
        "s",
        "run.dtype",
        "precision of the render (float32)",
        check=choice("float32", "float64"),
        values="float32|float64",
    ),
    F(
        "-device",
        "s",
        "run.device",
        "where to render (cpu)",
        handler="device",
        values="cpu|cuda|cuda:N|auto",
    ),
    F("-gain", "f", "outputs.gain", "noise image: ADU per photon (1)", check=positive),
    F(
        "-readout_noise",
        "f",
        "outputs.readout_noise",
        "noise image: read-out noise, ADU rms (0)",
        check=non_negative,
    ),
    F(
        "-psf",
        "s",
        "outputs.psf",
        "noise image: point spread (none)",
        check=point_spread,
        values="gauss:FWHM_UM|fiber:FWHM_UM|none",
    ),
    F("-overload", "i", "outputs.overload", "noise image: saturation, ADU (65535)", check=overload),
    F(
        "-nocompile",
        "",
        "run.compile",
        "eager torch kernel, not the compiled one",
        convert=lambda _: False,
    ),
)

#: C nanoBragg flags braggtile refuses (they select features it does not implement).
UNSUPPORTED: tuple[str, ...] = ()

BY_NAME: dict[str, Flag] = {name: flag for flag in FLAGS for name in flag.names}


def is_number(token: str) -> bool:
    """Whether ``token`` reads as a (finite or infinite) number, as C's ``atof`` would."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def looks_like_flag(token: str) -> bool:
    """A token that is a flag, not a (negative) number: never read as a value."""
    return token.startswith("-") and len(token) > 1 and not is_number(token)


def help_text() -> str:
    """Every flag of the table, one line each."""
    lines = []
    for flag in FLAGS:
        values = flag.values or " ".join({"f": "X", "i": "N", "s": "VALUE"}[k] for k in flag.kinds)
        left = f"  {', '.join(flag.names)} {values}".rstrip()
        if len(left) > 43:
            lines += [left, " " * 45 + flag.help]
        else:
            lines.append(left.ljust(44) + " " + flag.help)
    if UNSUPPORTED:
        lines.append("  unsupported: " + " ".join(UNSUPPORTED))
    return "\n".join(lines)


def finite(flag: str, value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise InputError(flag, f"must be a finite number, got {value}")
    return value
