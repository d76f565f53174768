"""Beam source lists reproduced from C nanoBragg: divergence/dispersion grid and ``-sourcefile``.

Units are C's internal ones: divergence angles in radians (the CLI's mrad / 1000), dispersion
as a fraction delta-lambda/lambda (the CLI's percent / 100), wavelengths and source positions in
metres.  ``beam_vector`` and ``polar_vector`` must be the unit vectors C holds after its
``unitize`` calls (they are not re-normalised here, to keep C's bits).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.errors import InputError
from engine.orientation import Vector, rotate_axis

#: Distance from the sample at which C places generated sources (metres).
SOURCE_DISTANCE_M = 10.0


class StepRange(NamedTuple):
    """A resolved sweep: full ``range_``, ``step`` between points and number of ``steps``."""

    range_: float
    step: float
    steps: int


@dataclass(frozen=True)
class Sources:
    """Beam sources in C's order.

    ``directions`` (n, 3): unit vectors from the sample toward each source (C's ``source_X/Y/Z``
    after ``unitize``; the incident beam direction is minus this).  ``positions_m`` (n, 3): the
    same before ``unitize``, as C prints them.  ``wavelengths_m`` (n,).  ``intensities`` (n,):
    ``1/n`` for generated sources, the file's column otherwise (C's pixel loop does not use
    them).  ``divsteps``: number of divergence points kept (C prints it; -1 for a source file).
    ``divergence_angles`` (divsteps, 2): (hdiv, vdiv) radians of each kept point, in C's order.
    """

    directions: np.ndarray
    positions_m: np.ndarray
    wavelengths_m: np.ndarray
    intensities: np.ndarray
    divsteps: int
    divergence_angles: np.ndarray

    @property
    def count(self) -> int:
        """Number of sources (C's ``sources``)."""
        return int(self.wavelengths_m.shape[0])


#: Most points of one sweep (divergence, dispersion, phi): beyond it a frame would not finish.
MAX_STEPS = 100_000


def check_steps(field: str, steps: float) -> None:
    """Refuse a sweep of more than :data:`MAX_STEPS` points, naming the flags that set it."""
    if not steps <= MAX_STEPS:  # also catches NaN
        from engine.errors import InputError

        raise InputError(field, f"gives {steps:g} steps, more than {MAX_STEPS}")


def resolve_steps(range_: float, step: float, steps: int, field: str = "steps") -> StepRange:
    """C's auto-selection of a sweep, followed by its "sanity checks".

    The same rules serve ``hdiv*``, ``vdiv*`` and ``disp*``.  Pass C's values: a negative
    number means "not given" (C's defaults are -1, except ``dispersion`` which defaults to 0.0).
    Returns the values C uses afterwards; a zero range always ends as ``(0.0, 0.0, 1)``.
    """
    if steps <= 0:
        if range_ < 0.0:
            if step <= 0.0:
                range_, step, steps = 0.0, 0.0, 1
            else:
                range_, steps = step, 2
        elif step <= 0.0:
            step, steps = range_, 2
        else:
            check_steps(field, range_ / step)
            steps = math.ceil(range_ / step)
    elif range_ < 0.0:
        if step <= 0.0:
            range_ = 1.0
            step = range_ / steps
        else:
            range_, steps = step, 2
    elif step <= 0.0:
        if steps <= 1:
            steps = 2
        step = range_ / (steps - 1)
    if range_ <= 0.0 or step <= 0.0 or steps <= 0:
        range_, step, steps = 0.0, 0.0, 1
    return StepRange(float(range_), float(step), int(steps))


def _unitize(v: np.ndarray) -> np.ndarray:
    """C's ``unitize``: v / |v|, the zero vector for a zero-length v."""
    mag = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return v / mag if mag != 0.0 else np.zeros(3)


def _cross(x: Vector, y: Vector) -> np.ndarray:
    return np.array(
        [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]],
        dtype=np.float64,
    )


def _ieee_div(a: float, b: float) -> float:
    """a / b with IEEE semantics for b == 0 (inf or nan instead of an exception)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def _outside_ellipse(hdiv: float, vdiv: float, h: StepRange, v: StepRange) -> bool:
    """C's round_div test; a zero range gives NaN, which never trims."""
    test = _ieee_div(
        _ieee_div(hdiv * hdiv - h.step * h.step / 4.0 * (1 - h.steps % 2), h.range_), h.range_
    )
    test += _ieee_div(
        _ieee_div(vdiv * vdiv - v.step * v.step / 4.0 * (1 - v.steps % 2), v.range_), v.range_
    )
    return test * 4.0 > 1.1


def _finish(
    positions: list[np.ndarray],
    wavelengths: list[float],
    intensities: list[float],
    divsteps: int,
    angles: list[tuple[float, float]],
) -> Sources:
    pos = np.array(positions, dtype=np.float64).reshape(-1, 3)
    return Sources(
        directions=np.array([_unitize(p) for p in pos]).reshape(-1, 3),
        positions_m=pos,
        wavelengths_m=np.array(wavelengths, dtype=np.float64),
        intensities=np.array(intensities, dtype=np.float64),
        divsteps=divsteps,
        divergence_angles=np.array(angles, dtype=np.float64).reshape(-1, 2),
    )


def divergence_dispersion_sources(
    beam_vector: Vector,
    polar_vector: Vector,
    lambda0_m: float,
    hdivrange: float = -1.0,
    hdivstep: float = -1.0,
    hdivsteps: int = -1,
    vdivrange: float = -1.0,
    vdivstep: float = -1.0,
    vdivsteps: int = -1,
    dispersion: float = 0.0,
    dispstep: float = -1.0,
    dispsteps: int = -1,
    round_div: bool = True,
    source_distance_m: float = SOURCE_DISTANCE_M,
) -> Sources:
    """C's generated source list: a divergence grid times a wavelength sweep.

    Divergence ranges/steps in radians, ``dispersion``/``dispstep`` as fractions, ``lambda0_m``
    in metres; negative values mean "not given" (C's defaults are the keyword defaults).  Each
    grid point is the source ``source_distance_m`` (C: 10 m) up-beam, rotated about
    ``polar_vector`` by vdiv and then about unit(beam x polar) by hdiv; ``round_div`` trims the
    grid to an ellipse.  Sources are ordered hdiv-major, then vdiv, then wavelength.
    """
    h = resolve_steps(hdivrange, hdivstep, hdivsteps, "-hdivrange/-hdivstep/-hdivsteps")
    v = resolve_steps(vdivrange, vdivstep, vdivsteps, "-vdivrange/-vdivstep/-vdivsteps")
    d = resolve_steps(dispersion, dispstep, dispsteps, "-dispersion/-dispsteps")
    check_steps("-hdivsteps/-vdivsteps/-dispsteps", h.steps * v.steps * d.steps)
    beam = np.asarray(beam_vector, dtype=np.float64)
    polar = np.asarray(polar_vector, dtype=np.float64)
    vert = _unitize(_cross(beam, polar))

    angles: list[tuple[float, float]] = []
    for hdiv_tic in range(h.steps):
        for vdiv_tic in range(v.steps):
            hdiv = h.step * hdiv_tic - h.range_ / 2.0
            vdiv = v.step * vdiv_tic - v.range_ / 2.0
            if round_div and _outside_ellipse(hdiv, vdiv, h, v):
                continue
            angles.append((hdiv, vdiv))
    lambdas = [lambda0_m * (1.0 + d.step * tic - d.range_ / 2.0) for tic in range(d.steps)]

    n = len(angles) * len(lambdas)
    weight = 1.0 / n if n else 0.0
    positions: list[np.ndarray] = []
    for hdiv, vdiv in angles:
        start = -source_distance_m * beam
        pos = rotate_axis(rotate_axis(start, polar, vdiv), vert, hdiv)
        positions.extend(pos for _ in lambdas)
    return _finish(positions, lambdas * len(angles), [weight] * n, len(angles), angles)


# --- -sourcefile: C's read_text_file --------------------------------------------------------

_DELIMITERS = " \t,;:!"
_NUMBER_CHARS = "0123456789-+.EGeg"
_FGETS_MAX = 10239  # C reads lines with fgets into a 10240-byte buffer
_SOURCE_COLUMNS = 5
_STRTOD = re.compile(
    r"""[ \t\n\v\f\r]*(
        [+-]?(?:
            0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?
          | (?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?
          | inf(?:inity)?
          | nan(?:\([0-9a-z_]*\))?
        ))""",
    re.VERBOSE | re.IGNORECASE,
)


def _atof(text: str) -> float:
    """C's ``atof``: the longest leading number (decimal, hex, inf, nan), else 0.0."""
    m = _STRTOD.match(text)
    if m is None:
        return 0.0
    number = m.group(1)
    if number.lstrip("+-")[:2].lower() == "0x":
        return float.fromhex(number)
    return float(number.split("(")[0])


def _span(text: str, i: int, chars: str, inside: bool) -> int:
    """C's strspn (inside=True) / strcspn (inside=False) starting at index i."""
    while i < len(text) and (text[i] in chars) == inside:
        i += 1
    return i


def _fgets_lines(data: bytes) -> list[str]:
    """The strings C's fgets loop sees: newline kept, long lines split, cut at NUL."""
    out = []
    pos = 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline + 1
        end = min(end, pos + _FGETS_MAX)
        out.append(data[pos:end].split(b"\0", 1)[0].decode("latin-1"))
        pos = end
    return out


def _parse_columns(lines: list[str], ncols: int) -> list[list[float]]:
    """C's ``read_text_file`` token walk: rows of ``ncols`` values, NaN where not given."""
    rows = []
    for text in lines:
        i = _span(text, 0, _DELIMITERS, True)
        if text[i:] == "\n":
            continue
        row = [math.nan] * ncols
        col = 0
        while True:
            row[col] = _atof(text[i:])
            i = _span(text, i, _NUMBER_CHARS, True)
            if text[i:] == "\n":
                break
            i = _span(text, i, _DELIMITERS, False)
            i = _span(text, i, _DELIMITERS, True)
            if text[i:] == "\n":
                break
            col += 1
            if col >= ncols:
                break
        rows.append(row)
    return rows


def read_source_file(
    path: str | Path,
    beam_vector: Vector,
    lambda0_m: float,
    source_distance_m: float = SOURCE_DISTANCE_M,
) -> Sources:
    """C's ``-sourcefile``: columns X Y Z (metres) I lambda (metres), any of " \\t,;:!" between.

    Blank lines are skipped; missing (or ``nan``) values default to the source
    ``source_distance_m`` up-beam (``-source_distance_m * beam_vector``), I = 1 and
    ``lambda0_m``.  Parsing follows C exactly, quirks included: a non-numeric token reads as
    0, and on a line whose end has no ``\\n`` (last line of a file without a final newline, or
    CRLF endings) C reads the missing columns as 0, not as missing.  Raises
    :class:`~engine.errors.InputError` (a ValueError) naming the file when it cannot be read
    or holds no data.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError("sourcefile", f"cannot read {path}: {exc.strerror or exc}") from exc
    rows = _parse_columns(_fgets_lines(data), _SOURCE_COLUMNS)
    if not rows:
        raise InputError("sourcefile", f"no source lines in {path}")
    beam = np.asarray(beam_vector, dtype=np.float64)
    defaults = (
        -source_distance_m * beam[0],
        -source_distance_m * beam[1],
        -source_distance_m * beam[2],
        1.0,
        float(lambda0_m),
    )
    filled = [
        [d if math.isnan(x) else x for x, d in zip(row, defaults, strict=True)] for row in rows
    ]
    positions = [np.array(r[:3]) for r in filled]
    return _finish(positions, [r[4] for r in filled], [r[3] for r in filled], -1, [])


def _c_value(value: float | None, per_unit: float | None = None) -> float:
    """C's value of an optional setting: -1 when not given, else ``value / per_unit``."""
    if value is None:
        return -1
    return value / per_unit if per_unit is not None else value


def beam_sources(beam, beam_vector: Vector, polar_vector: Vector) -> Sources:
    """The sources C generates for an :class:`~engine.model.Beam` (divergence x dispersion).

    ``beam_vector`` and ``polar_vector`` are the resolved unit vectors of the detector
    geometry; ``None`` settings of the model become C's "not given" (-1; dispersion 0).
    """
    return divergence_dispersion_sources(
        beam_vector,
        polar_vector,
        beam.wavelength_m,
        _c_value(beam.hdivrange_mrad, 1000.0),
        _c_value(beam.hdivstep_mrad, 1000.0),
        int(_c_value(beam.hdivsteps)),
        _c_value(beam.vdivrange_mrad, 1000.0),
        _c_value(beam.vdivstep_mrad, 1000.0),
        int(_c_value(beam.vdivsteps)),
        0.0 if beam.dispersion is None else beam.dispersion,  # C's default
        _c_value(beam.dispstep),
        int(_c_value(beam.dispsteps)),
        round_div=beam.round_div,
        source_distance_m=beam.source_distance_mm / 1000.0,  # C: atof(mm)/1000.0
    )
