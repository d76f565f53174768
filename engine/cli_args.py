"""Parse nanoBragg command-line arguments into an :class:`~engine.model.Experiment`.

Flags are matched exactly (C nanoBragg matches substrings, so that e.g. ``-misset_seed``
also triggers ``-misset``; here each flag means only what its documentation says).
Defaults and derived values follow the C program.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from engine.errors import InputError
from engine.model import (
    ROI,
    Beam,
    Convention,
    Crystal,
    CrystalShape,
    Detector,
    Experiment,
    Goniometer,
    Pivot,
    Sampling,
    Source,
)


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
    progress: bool = True
    dumpfile: str = "Fdump.bin"
    printout_pixel: tuple[int, int] | None = None


@dataclass
class NanoBraggRun:
    """A parsed command line: the experiment, outputs, and the compute options."""

    experiment: Experiment
    outputs: Outputs
    dtype: str = "float32"
    device: str = "cpu"
    compile: bool = True
    notes: list[str] = field(default_factory=list)


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


class _Args:
    """Cursor over argv with typed value readers that name the flag on error."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.i = 0

    def _take(self, flag: str, what: str) -> str:
        if self.i >= len(self.argv):
            raise InputError(flag, f"expects {what}")
        tok = self.argv[self.i]
        self.i += 1
        return tok

    def float(self, flag: str) -> float:
        tok = self._take(flag, "a number")
        try:
            value = float(tok)
        except ValueError:
            raise InputError(flag, f"expects a number, got {tok!r}") from None
        if math.isnan(value):
            raise InputError(flag, "NaN is not allowed")
        return value

    def int(self, flag: str) -> int:
        tok = self._take(flag, "an integer")
        try:
            return int(tok)
        except ValueError:
            raise InputError(flag, f"expects an integer, got {tok!r}") from None

    def str(self, flag: str) -> str:
        return self._take(flag, "a value")

    def vec3(self, flag: str) -> tuple[float, float, float]:
        return (self.float(flag), self.float(flag), self.float(flag))

    def peek_number(self) -> bool:
        return self.i < len(self.argv) and _is_number(self.argv[self.i])


def _positive(flag: str, value: float, unit: str) -> float:
    if not value > 0:
        raise InputError(flag, f"must be > 0 {unit}, got {value:g}")
    return value


def _non_negative(flag: str, value: float, unit: str = "") -> float:
    if value < 0:
        raise InputError(flag, f"must be >= 0 {unit}, got {value:g}".replace("  ", " "))
    return value


def parse_nanobragg(argv: list[str]) -> NanoBraggRun:
    """Parse nanoBragg flags (single-dash, C spelling) into a :class:`NanoBraggRun`."""
    a = _Args(list(argv))
    beam: dict[str, Any] = {}
    det: dict[str, Any] = {}
    cry: dict[str, Any] = {}
    gon: dict[str, Any] = {}
    smp: dict[str, Any] = {}
    out = Outputs()
    run_opts: dict[str, Any] = {"dtype": "float32", "device": "cpu", "compile": True}
    pivot_flag: Pivot | None = None
    convention = Convention.MOSFLM
    custom_vectors = False
    detpixels: dict[str, int] = {}
    detsize: dict[str, float] = {}
    size_mm: list[float] = [0.0, 0.0, 0.0]
    misset_random = False
    misset_seed: int | None = None
    sourcefile: str | None = None
    flux_args: dict[str, float] = {}
    pixel_mm = 0.1
    lambda_A = 1.0
    ncells: dict[str, int] = {}

    while a.i < len(a.argv):
        flag = a.argv[a.i]
        a.i += 1
        if not flag.startswith("-") or len(flag) < 2:
            raise InputError(flag, "unexpected argument (flags start with '-')")
        f = flag
        if f in ("-N", "-Na", "-Nb", "-Nc"):
            n = a.int(f)
            if n < 1:
                raise InputError(f, f"number of unit cells must be >= 1, got {n}")
            for axis in ("a", "b", "c") if f == "-N" else (f[2],):
                ncells[axis] = n
        elif f == "-cell":
            vals = []
            while len(vals) < 6 and a.peek_number() and not a.argv[a.i].startswith("-"):
                vals.append(a.float(f))
            if not vals:
                raise InputError(f, "expects a b c (Angstrom) alpha beta gamma (degrees)")
            vals += [0.0] * (6 - len(vals))
            for v in vals:
                _non_negative(f, v)
            cry["cell"] = tuple(vals)
        elif f == "-misset":
            if a.i < len(a.argv) and a.argv[a.i].startswith("rand"):
                a.i += 1
                misset_random = True
            else:
                cry["misset_deg"] = a.vec3(f)
                misset_random = False
        elif f == "-misset_seed":
            misset_seed = _seed(f, a.int(f))
        elif f == "-mosaic_seed":
            cry["mosaic_seed"] = _seed(f, a.int(f))
        elif f == "-seed":
            out.seed = _seed(f, a.int(f))
        elif f in ("-xtal_size", "-xtalsize", "-sample_size", "-samplesize"):
            size_mm[:] = [_positive(f, a.float(f), "mm")] * 3
        elif f in ("-xtal_thick", "-xtal_x", "-sample_thick", "-sample_x"):
            size_mm[0] = _positive(f, a.float(f), "mm")
        elif f in ("-xtal_width", "-xtal_y", "-sample_width", "-sample_y", "-width"):
            size_mm[1] = _positive(f, a.float(f), "mm")
        elif f in ("-xtal_height", "-xtal_z", "-sample_height", "-sample_z", "-height"):
            size_mm[2] = _positive(f, a.float(f), "mm")
        elif f in ("-density", "-sample_density", "-MW", "-molecules"):
            a.float(f)  # accepted for compatibility; C recomputes these from the cell
        elif f in ("-Xbeam", "-Ybeam"):
            det["xbeam_mm" if f == "-Xbeam" else "ybeam_mm"] = a.float(f)
            pivot_flag = Pivot.BEAM
        elif f in ("-Xclose", "-Yclose"):
            det["xclose_mm" if f == "-Xclose" else "yclose_mm"] = a.float(f)
            pivot_flag = Pivot.SAMPLE
        elif f in ("-ORGX", "-ORGY"):
            det[f[1:].lower()] = a.float(f)
            pivot_flag = Pivot.SAMPLE
        elif f == "-pivot":
            v = a.str(f).lower()
            if v not in ("sample", "beam"):
                raise InputError(f, f"must be 'sample' or 'beam', got {v!r}")
            pivot_flag = Pivot(v.upper())
        elif f in ("-mosflm", "-xds", "-adxv", "-denzo", "-dials"):
            convention = Convention(f[1:].upper())
            pivot_flag = Pivot.SAMPLE if f in ("-xds",) else Pivot.BEAM
        elif f in (
            "-fdet_vector",
            "-sdet_vector",
            "-odet_vector",
            "-beam_vector",
            "-polar_vector",
            "-spindle_axis",
            "-twotheta_axis",
            "-pix0_vector",
        ):
            v = a.vec3(f)
            custom_vectors = True
            key = {"-spindle_axis": "spindle_axis", "-pix0_vector": "pix0_vector_m"}.get(f, f[1:])
            if key in ("beam_vector", "polar_vector"):
                if not any(v):
                    raise InputError(f, "must not be the zero vector")
                beam[key] = v
            else:
                if key != "pix0_vector_m" and not any(v):
                    raise InputError(f, "must not be the zero vector")
                det[key] = v
        elif f == "-distance":
            det["distance_mm"] = _positive(f, a.float(f), "mm")
            pivot_flag = Pivot.BEAM
        elif f == "-close_distance":
            det["close_distance_mm"] = _positive(f, a.float(f), "mm")
            pivot_flag = Pivot.SAMPLE
        elif f in ("-detector_abs", "-detector_absorb"):
            tok = a.str(f)
            if tok.lower().startswith("inf"):
                det["absorption_um"] = 0.0
            else:
                try:
                    det["absorption_um"] = _non_negative(f, float(tok), "um")
                except ValueError:
                    raise InputError(f, f"expects a depth in um or 'inf', got {tok!r}") from None
        elif f == "-detector_thick":
            det["thick_um"] = _non_negative(f, a.float(f), "um")
        elif f in ("-detector_thicksteps", "-thicksteps"):
            det["thicksteps"] = _steps(f, a.int(f))
        elif f == "-twotheta":
            det["twotheta_deg"] = a.float(f)
            pivot_flag = Pivot.SAMPLE
        elif f in ("-detector_rotx", "-detector_roty", "-detector_rotz"):
            det[f"rot{f[-1]}_deg"] = a.float(f)
        elif f in ("-detsize", "-detsize_f", "-detsize_s"):
            v = _positive(f, a.float(f), "mm")
            for k in ("f", "s") if f == "-detsize" else (f[-1],):
                detsize[k] = v
        elif f in ("-detpixels", "-detpixels_f", "-detpixels_x", "-detpixels_s", "-detpixels_y"):
            n = a.int(f)
            if not 1 <= n <= (1 << 17):
                raise InputError(f, f"must be between 1 and {1 << 17} pixels, got {n}")
            keys = ("f", "s") if f == "-detpixels" else ("f" if f[-1] in "fx" else "s",)
            for k in keys:
                detpixels[k] = n
        elif f == "-curved_det":
            det["curved"] = True
        elif f == "-pixel":
            pixel_mm = _positive(f, a.float(f), "mm")
        elif f == "-point_pixel":
            det["point_pixel"] = True
        elif f == "-polar":
            v = a.float(f)
            if not -1.0 <= v <= 1.0:
                raise InputError(f, f"Kahn polarization factor must be in [-1, 1], got {v:g}")
            beam["polarization"], beam["nopolar"] = v, False
        elif f == "-nopolar":
            beam["nopolar"] = True
        elif f in ("-oversample_thick", "-oversample_polar", "-oversample_omega"):
            smp[f[1:]] = True
        elif f == "-oversample":
            n = a.int(f)
            if n < 0 or n > 256:
                raise InputError(f, f"must be between 0 (automatic) and 256, got {n}")
            smp["oversample"] = n or None
        elif f == "-roi":
            xmin, xmax, ymin, ymax = (a.int(f) for _ in range(4))
            if min(xmin, xmax, ymin, ymax) < 0 or xmin > xmax or ymin > ymax:
                raise InputError(
                    f,
                    f"expects xmin <= xmax, ymin <= ymax, all >= 0; got "
                    f"{xmin} {xmax} {ymin} {ymax}",
                )
            smp["roi"] = ROI(xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax)
        elif f in ("-lambda", "-wave", "-wavelength"):
            lambda_A = _positive(f, a.float(f), "Angstrom")
        elif f == "-energy":
            lambda_A = 12398.42 / _positive(f, a.float(f), "eV")
        elif f == "-fluence":
            beam["fluence"] = _positive(f, a.float(f), "photons/m^2")
        elif f in ("-flux", "-exposure", "-beamsize"):
            flux_args[f[1:]] = _non_negative(f, a.float(f))
        elif f in ("-mosaic", "-mosaic_spread", "-mosaicity"):
            cry["mosaic_spread_deg"] = _non_negative(f, a.float(f), "degrees")
        elif f in ("-mosaic_domains", "-mosaic_dom"):
            cry["mosaic_domains"] = _steps(f, a.int(f))
        elif f == "-dispersion":
            beam["dispersion"] = _non_negative(f, a.float(f), "percent") / 100.0
        elif f == "-dispsteps":
            beam["dispsteps"] = _steps(f, a.int(f))
        elif f == "-divergence":
            v = _non_negative(f, a.float(f), "mrad")
            beam["hdivrange_mrad"] = beam["vdivrange_mrad"] = v
        elif f in ("-hdivrange", "-vdivrange", "-hdivstep", "-vdivstep"):
            beam[f"{f[1:]}_mrad"] = _non_negative(f, a.float(f), "mrad")
        elif f in ("-hdivsteps", "-vdivsteps"):
            beam[f[1:]] = _steps(f, a.int(f))
        elif f == "-divsteps":
            beam["hdivsteps"] = beam["vdivsteps"] = _steps(f, a.int(f))
        elif f in ("-round_div", "-square_div"):
            beam["round_div"] = f == "-round_div"
        elif f == "-adc":
            out.adc_offset = a.float(f)
        elif f == "-phi":
            gon["phi0_deg"] = a.float(f)
        elif f == "-osc":
            gon["osc_deg"] = _non_negative(f, a.float(f), "degrees")
        elif f == "-phistep":
            gon["phistep_deg"] = _non_negative(f, a.float(f), "degrees")
        elif f == "-phisteps":
            gon["phisteps"] = _steps(f, a.int(f))
        elif f == "-dmin":
            smp["dmin_A"] = _non_negative(f, a.float(f), "Angstrom")
        elif f == "-mat":
            cry["a_matrix"] = _read_matrix(a.str(f))
        elif f == "-hkl":
            path = a.str(f)
            if not os.path.isfile(path):
                raise InputError(f, f"cannot read HKL file {path!r}")
            cry["hkl_file"] = path
        elif f == "-default_F":
            cry["default_F"] = _non_negative(f, a.float(f))
        elif f == "-dump":
            out.dumpfile = a.str(f)
        elif f == "-sourcefile":
            sourcefile = a.str(f)
        elif f in ("-floatfile", "-floatimage"):
            out.floatfile = a.str(f)
        elif f in ("-intfile", "-intimage"):
            out.intfile = a.str(f)
        elif f in ("-pgmfile", "-pgmimage"):
            out.pgmfile = a.str(f)
        elif f in ("-noisefile", "-noiseimage"):
            out.noisefile = a.str(f)
        elif f == "-nonoise":
            out.noisefile = None
        elif f == "-nopgm":
            out.pgmfile = None
        elif f == "-scale":
            out.intfile_scale = a.float(f)
        elif f == "-pgmscale":
            out.pgm_scale = a.float(f)
        elif f in ("-coherent", "-printout"):
            pass  # accepted; no effect on the image
        elif f == "-printout_pixel":
            out.printout_pixel = (a.int(f), a.int(f))
        elif f == "-noprogress":
            out.progress = False
        elif f == "-progress":
            out.progress = True
        elif f in ("-interpolate", "-nointerpolate"):
            cry["interpolate"] = f == "-interpolate"
        elif f in ("-round_xtal", "-square_xtal", "-gauss_xtal", "-tophat_spots", "-binary_spots"):
            cry["shape"] = {
                "-round_xtal": CrystalShape.ROUND,
                "-square_xtal": CrystalShape.SQUARE,
                "-gauss_xtal": CrystalShape.GAUSS,
            }.get(f, CrystalShape.TOPHAT)
        elif f == "-fudge":
            cry["fudge"] = _positive(f, a.float(f), "")
        elif f == "-water":
            smp["water_um"] = _non_negative(f, a.float(f), "um")
        elif f == "-dtype":
            v = a.str(f)
            if v not in ("float32", "float64"):
                raise InputError(f, f"must be float32 or float64, got {v!r}")
            run_opts["dtype"] = v
        elif f == "-device":
            v = a.str(f)
            if v not in ("cpu", "cuda", "auto") and not v.startswith("cuda:"):
                raise InputError(f, f"must be cpu, cuda or auto, got {v!r}")
            run_opts["device"] = v
        elif f == "-nocompile":
            run_opts["compile"] = False
        elif f in ("-img", "-mask", "-stol", "-4stol", "-Q", "-stolout"):
            raise InputError(f, "is not supported by braggtile")
        else:
            raise InputError(f, "unknown flag")

    # detector size: pixels win over mm sizes, as in C
    det["pixel_size_mm"] = pixel_mm
    for k, key in (("f", "fast_pixels"), ("s", "slow_pixels")):
        if k in detpixels:
            det[key] = detpixels[k]
        else:
            # C: ceil(detsize_m / pixel_m - 0.5), both converted with /1000
            size_m = detsize.get(k, 102.4) / 1000.0
            det[key] = max(1, math.ceil(size_m / (pixel_mm / 1000.0) - 0.5))
    if custom_vectors:
        convention = Convention.CUSTOM
    det["convention"] = convention
    if convention is Convention.CUSTOM:
        det["pivot"] = pivot_flag or Pivot.BEAM
    if any(size_mm):
        cry["size_mm"] = tuple(size_mm)
    for axis in ("a", "b", "c"):
        if axis in ncells:
            cry[f"n{axis}"] = ncells[axis]

    beam["wavelength_A"] = lambda_A
    _resolve_fluence(beam, flux_args)
    if "a_matrix" in cry:
        cry["a_matrix_wavelength_A"] = lambda_A
    if "cell" not in cry and "a_matrix" not in cry:
        raise InputError(
            "-cell", "a unit cell (-cell a b c alpha beta gamma) or -mat file is required"
        )
    if "hkl_file" not in cry and cry.get("default_F", 0.0) == 0.0:
        if os.path.isfile(out.dumpfile):
            cry["fdump_file"] = out.dumpfile
        else:
            raise InputError("-hkl", "no -hkl file, no Fdump file and -default_F is 0")
    if misset_random:
        from engine.orientation import random_misset

        # without -misset_seed C seeds from the clock (not from -seed)
        seed = misset_seed if misset_seed is not None else int(time.time())
        cry["misset_deg"] = tuple(math.degrees(x) for x in random_misset(-seed))
    if sourcefile is not None:
        beam["sources"] = _read_sources(sourcefile, beam, det, convention, lambda_A)

    try:
        exp = Experiment(
            beam=Beam(**beam),
            detector=Detector(**det),
            crystal=Crystal(**cry),
            goniometer=Goniometer(**gon),
            sampling=Sampling(**smp),
        )
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise InputError(loc or "experiment", first["msg"]) from None
    return NanoBraggRun(exp, out, **run_opts)


def _seed(flag: str, n: int) -> int:
    if not 0 <= n < 2**31:
        raise InputError(flag, f"random seed must be between 0 and 2147483647, got {n}")
    return n


def _steps(flag: str, n: int) -> int:
    if n < 0:
        raise InputError(flag, f"number of steps must be >= 0, got {n}")
    return n


def _resolve_fluence(beam: dict[str, Any], flux_args: dict[str, float]) -> None:
    """C's fluence/flux/exposure/beamsize reconciliation (beamsize in mm on the CLI)."""
    flux = flux_args.get("flux", 0.0)
    exposure = flux_args.get("exposure", 1.0)
    beamsize_m = flux_args.get("beamsize", 0.1) / 1000.0
    fluence = beam.get("fluence", Beam.model_fields["fluence"].default)
    if flux != 0.0 and exposure > 0.0 and beamsize_m >= 0:
        if beamsize_m == 0:
            raise InputError("-beamsize", "must be > 0 mm when -flux is given")
        fluence = flux * exposure / beamsize_m / beamsize_m
    if exposure > 0.0:
        flux = fluence / exposure * beamsize_m * beamsize_m
    beam.update(fluence=fluence, flux=flux, exposure_s=exposure, beamsize_mm=beamsize_m * 1000.0)


def _read_matrix(path: str) -> tuple[tuple[float, float, float], ...]:
    """Read a MOSFLM A matrix (first 9 numbers: rows x, y, z of a*, b*, c*)."""
    try:
        with open(path) as fh:
            numbers = fh.read().split()
    except OSError as err:
        raise InputError("-mat", f"cannot read matrix file {path!r}: {err.strerror}") from None
    try:
        vals = [float(x) for x in numbers[:9]]
    except ValueError:
        raise InputError("-mat", f"matrix file {path!r} does not start with 9 numbers") from None
    if len(vals) < 9:
        raise InputError("-mat", f"matrix file {path!r} has fewer than 9 numbers")
    return (tuple(vals[0:3]), tuple(vals[3:6]), tuple(vals[6:9]))


def _read_sources(
    path: str, beam: dict[str, Any], det: dict[str, Any], convention: Convention, lambda_A: float
) -> tuple[Source, ...]:
    """Read -sourcefile into explicit sources (C defaults for missing columns)."""
    import numpy as np

    from engine.geometry import _AXES
    from engine.sources import read_source_file

    beam_vec = beam.get("beam_vector") or _AXES[convention][0]
    try:
        src = read_source_file(path, np.asarray(beam_vec, dtype=float), lambda_A * 1e-10)
    except (OSError, ValueError) as err:
        raise InputError("-sourcefile", str(err)) from None
    return tuple(
        Source(position=tuple(p), intensity=float(i), wavelength_A=float(w) * 1e10)
        for p, i, w in zip(src.positions_m, src.intensities, src.wavelengths_m, strict=True)
    )
