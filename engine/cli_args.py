"""Parse nanoBragg command-line arguments, driven by the flag table in :mod:`engine.flags`.

Parsing is pure: :func:`parse_args` reads no file and no clock; it checks every flag's values
(their number, kind and range) and returns a :class:`ParsedArgs`. :func:`engine.resolve.resolve`
then loads the files it names and seeds what C seeds from the clock.
:func:`parse_nanobragg` does both.

Flags are matched exactly (C nanoBragg matches substrings, so that e.g. ``-misset_seed``
also triggers ``-misset``; here each flag means only what its documentation says), and a
flag never takes a following flag as its value. Defaults and derived values follow C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine import flags as fl
from engine.errors import InputError
from engine.model import ROI, Convention, CrystalShape, Pivot


@dataclass
class Outputs:
    """Output files and options of a nanoBragg run (C's defaults)."""

    floatfile: str | None = "floatimage.bin"
    intfile: str | None = "intimage.img"
    pgmfile: str | None = "image.pgm"
    noisefile: str | None = "noiseimage.img"
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    adc_offset: float = 40.0
    seed: int | None = None
    gain: float = 1.0  # noise image: ADU per photon
    readout_noise: float = 0.0  # noise image: ADU rms
    psf: str = "none"  # noise image: "gauss:FWHM_UM", "fiber:FWHM_UM" or "none"
    overload: int = 65535  # noise image: saturation, ADU
    progress: bool = True
    dumpfile: str = "Fdump.bin"
    printout_pixel: tuple[int, int] | None = None


@dataclass
class Refs:
    """Values that are not model fields as given: files to read, and inputs to derivations."""

    mat_file: str | None = None
    sourcefile: str | None = None
    mask_file: str | None = None  # -mask: SMV header geometry, pixels 0 not rendered
    img_file: str | None = None  # -img: SMV header geometry only
    stol_file: str | None = None  # -stol/-4stol/-Q: read and checked; C never uses it
    stol_flag: str = "-stol"
    stolout_file: str | None = None  # -stolout: C never writes it
    misset_random: bool = False
    misset_seed: int | None = None
    lambda_A: float = 1.0
    pixel_mm: float = 0.1
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 0.1  # mm


@dataclass
class ParsedArgs:
    """What the flags say, section by section (model field -> value), before any file is read."""

    beam: dict[str, Any] = field(default_factory=dict)
    detector: dict[str, Any] = field(default_factory=dict)
    crystal: dict[str, Any] = field(default_factory=dict)
    goniometer: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    outputs: Outputs = field(default_factory=Outputs)
    run: dict[str, Any] = field(default_factory=lambda: {"dtype": "float32", "device": "cpu"})
    refs: Refs = field(default_factory=Refs)
    pivot: Pivot | None = None
    convention: Convention = Convention.MOSFLM
    custom_vectors: bool = False
    detpixels: dict[str, int] = field(default_factory=dict)
    detsize: dict[str, float] = field(default_factory=dict)
    size_mm: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    given: list[str] = field(default_factory=list)  # flags in the order given


def store_target(state: ParsedArgs, target: str, value: Any) -> None:
    """Set parse-state ``target`` ("section.name", as the flag table names it) to ``value``."""
    section, name = target.split(".")
    obj = getattr(state, section)
    if isinstance(obj, dict):
        obj[name] = value
    else:
        setattr(obj, name, value)


def _read_value(name: str, flag: fl.Flag, kind: str, tok: str, got: int) -> Any:
    if kind == "s":
        if tok in fl.BY_NAME or tok in fl.UNSUPPORTED:
            raise InputError(name, f"takes {_takes(flag)}; got the flag {tok} instead")
        return tok
    if fl.looks_like_flag(tok):
        raise InputError(name, f"takes {_takes(flag)}; got {got} before {tok}")
    try:
        value = int(tok) if kind == "i" else float(tok)
    except ValueError:
        what = "an integer" if kind == "i" else "a number"
        raise InputError(name, f"expects {what}, got {tok!r}") from None
    return value if kind == "i" else fl.finite(name, value)


def _takes(flag: fl.Flag) -> str:
    return flag.describe_values() + (f" ({flag.values})" if flag.values else "")


def _read_values(argv: list[str], i: int, name: str, flag: fl.Flag) -> tuple[Any, int]:
    """The flag's values starting at argv[i], checked; and the index after them."""
    values = []
    for got, kind in enumerate(flag.kinds):
        if i + got >= len(argv):
            raise InputError(name, f"takes {_takes(flag)}; got {got}")
        values.append(_read_value(name, flag, kind, argv[i + got], got))
    i += len(values)
    if flag.check is not None:
        values = [flag.check(name, v) for v in values]
    if flag.check_all is not None:
        values = flag.check_all(name, tuple(values))
    return tuple(values), i


def parse_args(argv: list[str]) -> ParsedArgs:
    """Read nanoBragg flags (single dash, C spelling); no file or clock is touched."""
    argv = list(argv)
    state = ParsedArgs()
    i = 0
    while i < len(argv):
        name = argv[i]
        i += 1
        if name in fl.UNSUPPORTED:
            raise InputError(name, "is not supported by braggtile")
        flag = fl.BY_NAME.get(name)
        if flag is None:
            if not name.startswith("-") or len(name) < 2:
                raise InputError(name, "unexpected argument (flags start with '-')")
            raise InputError(name, "unknown flag (braggtile nanobragg -help lists them)")
        if name == "-misset" and i < len(argv) and argv[i].lower().startswith("rand"):
            state.refs.misset_random = True
            state.given.append(name)
            i += 1
            continue
        values, i = _read_values(argv, i, name, flag)
        state.given.append(name)
        if flag.handler is not None:
            HANDLERS[flag.handler](state, name, flag, values)
        else:
            value = values[0] if flag.arity == 1 else (values or None)
            store_target(state, flag.target, flag.convert(value) if flag.convert else value)
    _finish(state)
    return state


def _finish(state: ParsedArgs) -> None:
    """Derivations that need every flag: detector pixels, convention, crystal size."""
    det = state.detector
    pixel_mm = state.refs.pixel_mm
    det["pixel_size_mm"] = pixel_mm
    for k, key in (("f", "fast_pixels"), ("s", "slow_pixels")):
        if k in state.detpixels:
            det[key] = state.detpixels[k]
        else:  # C: ceil(detsize_m / pixel_m - 0.5), both converted with /1000
            size_m = state.detsize.get(k, 102.4) / 1000.0
            n = max(1, math.ceil(size_m / (pixel_mm / 1000.0) - 0.5))
            if n > 1 << 17:
                flag = "-detsize" if k in state.detsize else "-pixel"
                raise InputError(flag, f"gives {n} pixels across, more than {1 << 17}")
            det[key] = n
    if state.custom_vectors:
        state.convention = Convention.CUSTOM
    det["convention"] = state.convention
    if state.convention is Convention.CUSTOM:
        det["pivot"] = state.pivot or Pivot.BEAM
    if any(state.size_mm):
        state.crystal["size_mm"] = tuple(state.size_mm)
    state.beam["wavelength_A"] = state.refs.lambda_A


# --- special handlers: (state, flag name as given, table entry, checked values) ---------------


def _ncells(state, name, flag, values):
    for axis in ("a", "b", "c") if name == "-N" else (name[2],):
        state.crystal[f"n{axis}"] = values[0]


def _size(state, name, flag, values):
    for axis in flag.target.split(".")[1]:  # "size_mm.xyz", "size_mm.x", ...
        state.size_mm["xyz".index(axis)] = values[0]


def _misset(state, name, flag, values):
    state.crystal["misset_deg"] = values
    state.refs.misset_random = False


def _shape(state, name, flag, values):
    shapes = {"-round_xtal": "ROUND", "-square_xtal": "SQUARE", "-gauss_xtal": "GAUSS"}
    state.crystal["shape"] = CrystalShape(shapes.get(name, "TOPHAT"))


def _interpolate(state, name, flag, values):
    state.crystal["interpolate"] = name == "-interpolate"


def _polar(state, name, flag, values):
    state.beam["polarization"], state.beam["nopolar"] = values[0], False


def _divergence(state, name, flag, values):
    state.beam["hdivrange_mrad"] = state.beam["vdivrange_mrad"] = values[0]


def _divsteps(state, name, flag, values):
    state.beam["hdivsteps"] = state.beam["vdivsteps"] = values[0]


def _pivot_beam(state, name, flag, values):
    store_target(state, flag.target, values[0])
    state.pivot = Pivot.BEAM


def _pivot_sample(state, name, flag, values):
    store_target(state, flag.target, values[0])
    state.pivot = Pivot.SAMPLE


def _pivot(state, name, flag, values):
    state.pivot = Pivot(values[0].upper())


def _convention(state, name, flag, values):
    state.convention = Convention(name[1:].upper())
    state.pivot = Pivot.SAMPLE if name == "-xds" else Pivot.BEAM


def _vector(state, name, flag, values):
    store_target(state, flag.target, values)
    state.custom_vectors = True


def _detsize(state, name, flag, values):
    for k in ("f", "s") if name == "-detsize" else (name[-1],):
        state.detsize[k] = values[0]


def _detpixels(state, name, flag, values):
    keys = ("f", "s") if name == "-detpixels" else ("f" if name[-1] in "fx" else "s",)
    for k in keys:
        state.detpixels[k] = values[0]


def _absorption(state, name, flag, values):
    tok = values[0]
    if tok.lower().startswith("inf"):
        state.detector["absorption_um"] = 0.0
        return
    try:
        depth = fl.finite(name, float(tok))
    except ValueError:
        raise InputError(name, f"expects a depth in um or 'inf', got {tok!r}") from None
    state.detector["absorption_um"] = fl.non_negative(name, depth)


def _roi(state, name, flag, values):
    xmin, xmax, ymin, ymax = values
    if min(values) < 0 or xmin > xmax or ymin > ymax:
        raise InputError(
            name, f"expects xmin <= xmax, ymin <= ymax, all >= 0; got {xmin} {xmax} {ymin} {ymax}"
        )
    state.sampling["roi"] = ROI(xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax)


def _printout_pixel(state, name, flag, values):
    state.outputs.printout_pixel = (values[0], values[1])


def _device(state, name, flag, values):
    v = values[0]
    if v not in ("cpu", "cuda", "auto") and not v.startswith("cuda:"):
        raise InputError(name, f"must be cpu, cuda, cuda:N or auto, got {v!r}")
    state.run["device"] = v


def _stol(state, name, flag, values):
    state.refs.stol_file, state.refs.stol_flag = values[0], name


def _ignore(state, name, flag, values):
    pass


HANDLERS = {
    "ncells": _ncells,
    "size": _size,
    "misset": _misset,
    "shape": _shape,
    "interpolate": _interpolate,
    "polar": _polar,
    "divergence": _divergence,
    "divsteps": _divsteps,
    "pivot_beam": _pivot_beam,
    "pivot_sample": _pivot_sample,
    "pivot": _pivot,
    "convention": _convention,
    "vector": _vector,
    "detsize": _detsize,
    "detpixels": _detpixels,
    "absorption": _absorption,
    "roi": _roi,
    "printout_pixel": _printout_pixel,
    "device": _device,
    "stol": _stol,
    "ignore": _ignore,
}
