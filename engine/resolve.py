"""The one step after parsing that touches the outside world: files, the clock, validation.

:func:`resolve` turns :class:`~engine.cli_args.ParsedArgs` into a :class:`NanoBraggRun`: it
applies the ``-mask``/``-img`` SMV headers, reads and checks the ``-stol`` table (unused, as
in C), reconciles fluence/flux, reads the ``-mat`` and ``-sourcefile`` files, checks that ``-hkl``
exists, finds C's ``Fdump.bin`` in the working folder when no structure factors are given,
seeds ``-misset random`` from the clock when no ``-misset_seed`` is given (as C does), and
validates the experiment, naming the field of any error.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from engine.cli_args import Outputs, ParsedArgs, Refs, parse_args
from engine.errors import InputError
from engine.header_flags import apply_smv_headers
from engine.model import (
    Beam,
    Convention,
    Crystal,
    Detector,
    Experiment,
    Goniometer,
    Sampling,
    Scan,
    Source,
)


@dataclass
class NanoBraggRun:
    """A parsed command line: the experiment, outputs, and the compute options."""

    experiment: Experiment
    outputs: Outputs
    dtype: str = "float32"
    device: str = "cpu"
    compile: bool = True
    notes: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)  # the flags given, in order


def resolve(
    parsed: ParsedArgs, cwd: str | None = None, clock: Callable[[], float] = time.time
) -> NanoBraggRun:
    """Read the files ``parsed`` names (relative to ``cwd``), seed from ``clock``, validate."""
    parsed = apply_smv_headers(parsed, lambda name: _path(name, cwd))
    if parsed.refs.stol_file is not None:
        read_stol(_path(parsed.refs.stol_file, cwd), parsed.refs.stol_flag)
    beam, det, cry = dict(parsed.beam), dict(parsed.detector), dict(parsed.crystal)
    refs = parsed.refs
    _resolve_fluence(beam, refs)
    lambda_A = refs.lambda_A
    if refs.mat_file is not None:
        cry["a_matrix"] = read_matrix(_path(refs.mat_file, cwd))
        cry["a_matrix_wavelength_A"] = lambda_A
    if "cell" not in cry and "a_matrix" not in cry:
        raise InputError(
            "-cell", "a unit cell (-cell a b c alpha beta gamma) or -mat file is required"
        )
    _structure_factors(cry, parsed.outputs, cwd)
    if refs.misset_random:
        from engine.orientation import random_misset

        # without -misset_seed C seeds from the clock (not from -seed)
        seed = refs.misset_seed if refs.misset_seed is not None else int(clock())
        cry["misset_deg"] = tuple(math.degrees(x) for x in random_misset(-seed))
    if refs.sourcefile is not None:
        beam["sources"] = read_sources(
            _path(refs.sourcefile, cwd), beam.get("beam_vector"), parsed.convention, lambda_A,
            beam.get("source_distance_mm", Beam.model_fields["source_distance_mm"].default),
        )  # fmt: skip
    experiment = build_experiment(beam, det, cry, parsed.goniometer, parsed.scan, parsed.sampling)
    return NanoBraggRun(
        experiment,
        parsed.outputs,
        dtype=parsed.run.get("dtype", "float32"),
        device=parsed.run.get("device", "cpu"),
        compile=parsed.run.get("compile", True),
        given=list(parsed.given),
    )


def parse_nanobragg(argv: list[str]) -> NanoBraggRun:
    """Parse and resolve nanoBragg flags (files relative to the working folder, seeds from the
    clock) into a :class:`NanoBraggRun`."""
    return resolve(parse_args(argv))


def build_experiment(beam, det, cry, gonio, scan, sampling) -> Experiment:
    """The validated experiment; a validation error names its field (dotted path)."""
    try:
        return Experiment(
            beam=Beam(**beam),
            detector=Detector(**det),
            crystal=Crystal(**cry),
            goniometer=Goniometer(**gonio),
            scan=Scan(**scan),
            sampling=Sampling(**sampling),
        )
    except ValidationError as err:
        raise validation_input_error(err, "experiment") from None


def validation_input_error(err: ValidationError, where: str) -> InputError:
    """A pydantic error as an :class:`InputError` naming the first bad field."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or where
    return InputError(loc, first["msg"])


def _path(path: str, cwd: str | None) -> str:
    return path if cwd is None else os.path.join(cwd, path)


def _structure_factors(cry: dict, outputs: Outputs, cwd: str | None) -> None:
    """-hkl must exist; without it C reads the dump file (Fdump.bin) whenever it is present,
    -default_F or not (default_F then fills what the dump does not cover)."""
    hkl = cry.get("hkl_file")
    if hkl is not None:
        if not os.path.isfile(_path(hkl, cwd)):
            raise InputError("-hkl", f"cannot read HKL file {hkl!r}: no such file")
        return
    dump = _path(outputs.dumpfile, cwd) if outputs.dumpfile else ""
    if dump and os.path.isfile(dump):
        cry["fdump_file"] = dump
    elif cry.get("default_F", 0.0) == 0.0:
        raise InputError("-hkl", "no -hkl file, no Fdump file and -default_F is 0")


def _resolve_fluence(beam: dict, refs: Refs) -> None:
    """C's fluence/flux/exposure/beamsize reconciliation (beamsize in mm on the CLI)."""
    flux, exposure = refs.flux, refs.exposure
    beamsize_m = refs.beamsize / 1000.0
    fluence = beam.get("fluence", Beam.model_fields["fluence"].default)
    if flux != 0.0 and exposure > 0.0 and beamsize_m >= 0:
        if beamsize_m == 0:
            raise InputError("-beamsize", "must be > 0 mm when -flux is given")
        fluence = flux * exposure / beamsize_m / beamsize_m
    if exposure > 0.0:
        flux = fluence / exposure * beamsize_m * beamsize_m
    if not (math.isfinite(fluence) and fluence > 0):
        raise InputError("-flux", f"gives a fluence of {fluence:g} photons/m^2; must be > 0")
    beam.update(fluence=fluence, flux=flux, exposure_s=exposure, beamsize_mm=refs.beamsize)


def read_matrix(path: str) -> tuple[tuple[float, float, float], ...]:
    """Read a MOSFLM A matrix (first 9 numbers: rows x, y, z of a*, b*, c*)."""
    try:
        with open(path) as fh:
            numbers = fh.read().split()
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise InputError("-mat", f"cannot read matrix file {path!r}: {why}") from None
    try:
        vals = [float(x) for x in numbers[:9]]
    except ValueError:
        raise InputError("-mat", f"matrix file {path!r} does not start with 9 numbers") from None
    if len(vals) < 9 or not all(math.isfinite(v) for v in vals):
        raise InputError("-mat", f"matrix file {path!r} does not start with 9 finite numbers")
    return (tuple(vals[0:3]), tuple(vals[3:6]), tuple(vals[6:9]))


def read_stol(path: str, flag: str) -> int:
    """Read a -stol/-4stol/-Q table as C does (two columns; C never uses it): the number of
    its lines; :class:`InputError` naming ``flag`` when it cannot be read or is empty."""
    from engine.sources import _fgets_lines, _parse_columns

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise InputError(flag, f"cannot read {path}: {err.strerror or err}") from None
    rows = _parse_columns(_fgets_lines(data), 2)
    if not rows:
        raise InputError(flag, f"no data in {path} (C: 'no data in input file')")
    return len(rows)


def read_sources(
    path: str,
    beam_vector,
    convention: Convention,
    lambda_A: float,
    source_distance_mm: float = 10000.0,
) -> tuple[Source, ...]:
    """Read -sourcefile into explicit sources (C's defaults for missing columns; a missing
    position is ``source_distance_mm`` up-beam)."""
    import numpy as np

    from engine.geometry import _AXES
    from engine.sources import read_source_file

    beam_vec = beam_vector or _AXES[convention][0]
    try:
        src = read_source_file(
            path, np.asarray(beam_vec, dtype=float), lambda_A / 1e10, source_distance_mm / 1000.0
        )
    except InputError as err:
        raise InputError("-sourcefile", err.detail) from None
    except (OSError, ValueError) as err:
        raise InputError("-sourcefile", f"cannot read {path!r}: {err}") from None
    sources = []
    for k, (p, i, w) in enumerate(
        zip(src.positions_m, src.intensities, src.wavelengths_m, strict=True), start=1
    ):
        where = f"{path}, source {k}"
        if not (math.isfinite(w) and w > 0):
            raise InputError("-sourcefile", f"{where}: wavelength (column 5) is {w:g} m; needs > 0")
        if not (all(math.isfinite(x) for x in p) and any(p)):
            raise InputError("-sourcefile", f"{where}: position (columns 1-3) must be finite, != 0")
        if not math.isfinite(i):
            raise InputError("-sourcefile", f"{where}: intensity (column 4) is {i:g}")
        sources.append(Source(position=tuple(p), intensity=float(i), wavelength_A=float(w) * 1e10))
    return tuple(sources)
