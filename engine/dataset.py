"""Datasets: frames that differ, each frame's parameters drawn from (seed, frame) alone.

A variation is ``KEY=DIST`` (the CLI's ``--vary``, a job's ``variations``). Keys and the
distributions they take (units in brackets)::

    orientation  random | jitter:DEG     uniform over rotations (Haar) | rotation vector whose
                                         x, y, z are normal with DEG degrees deviation, applied
                                         after the experiment's own misset
    cell         normal:FRACTION         a, b, c each scaled by 1 + FRACTION * z (angles kept)
    mosaic       uniform:LO,HI           mosaic spread [degrees]
    N            uniform:LO,HI           cells along a, b and c, integers LO..HI each
    lambda       normal:FRACTION         wavelength scaled by 1 + FRACTION * z
    flux         lognormal:SIGMA         fluence (and flux) scaled by exp(SIGMA * z)
    distance     normal:MM               detector distance + MM * z [mm]
    beam_center  normal:MM               header beam centre X and Y + MM * z each [mm]
    water        uniform:LO,HI           water background thickness [micrometres]

Frame k's draws for key K come from numpy's counter-based Philox keyed by (seed, crc32(K)) at
counter k: the same on any process, in any order, whatever other keys are varied.
:func:`draw` gives a frame's *values* (absolute, as a frames table row spells them: ``umat``
9 numbers row-major, ``cell`` 6, ``N`` 3, ``flux`` the fluence factor, ...), and :func:`apply`
sets them on an experiment. Torch-free.
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from engine.errors import InputError
from engine.model import Experiment
from engine.orientation import RTD, rotate_xyz, umat_to_misset

__all__ = [
    "KEYS",
    "TABLE_KEYS",
    "DatasetError",
    "FrameValues",
    "apply",
    "draw",
    "parse_distribution",
    "parse_variations",
    "parse_table",
    "read_frames_table",
]

#: Largest seed (exclusive): seeds are integers in [0, 2^63).
SEED_LIMIT = 1 << 63


class DatasetError(InputError):
    """A variation or frames-table row that cannot be used; ``field`` names it."""


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RandomRotation(_Dist):
    """Uniform over all rotations (the Haar measure of SO(3))."""

    kind: Literal["random"] = "random"


class Jitter(_Dist):
    """A rotation vector with normal x, y, z components of ``deg`` degrees deviation."""

    kind: Literal["jitter"] = "jitter"
    deg: float = Field(ge=0, le=180)


class Normal(_Dist):
    """Normal deviate scaled by ``sigma`` (a fraction or mm, by key)."""

    kind: Literal["normal"] = "normal"
    sigma: float = Field(ge=0)


class Uniform(_Dist):
    """Uniform on [low, high]."""

    kind: Literal["uniform"] = "uniform"
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low <= self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class LogNormal(_Dist):
    """exp(``sigma`` * z): a factor of median 1."""

    kind: Literal["lognormal"] = "lognormal"
    sigma: float = Field(ge=0, le=10)


Distribution = Annotated[
    RandomRotation | Jitter | Normal | Uniform | LogNormal, Field(discriminator="kind")
]
_DISTRIBUTION = TypeAdapter(Distribution)

#: Key -> (distributions it takes, lowest value of a uniform's bounds or None).
KEYS: dict[str, tuple[tuple[str, ...], float | None]] = {
    "orientation": (("random", "jitter"), None),
    "cell": (("normal",), None),
    "mosaic": (("uniform",), 0.0),
    "N": (("uniform",), 1.0),
    "lambda": (("normal",), None),
    "flux": (("lognormal",), None),
    "distance": (("normal",), None),
    "beam_center": (("normal",), None),
    "water": (("uniform",), 0.0),
}
_PARAMETERS = {"random": (), "jitter": ("deg",), "normal": ("sigma",), "uniform": ("low", "high")}
_PARAMETERS["lognormal"] = ("sigma",)


def parse_distribution(key: str, text: str) -> Distribution:
    """``text`` (e.g. ``uniform:0.1,0.5``) as the typed distribution of variation ``key``."""
    if key not in KEYS:
        raise DatasetError("--vary", f"unknown key {key!r} (known: {', '.join(KEYS)})")
    kinds, lowest = KEYS[key]
    kind, _, args = str(text).partition(":")
    if kind not in kinds:
        raise DatasetError(f"--vary {key}", f"{text!r}: use {' or '.join(kinds)}")
    names = _PARAMETERS[kind]
    parts = [p for p in args.split(",")] if args else []
    if len(parts) != len(names):
        spelled = ":" + ",".join(n.upper() for n in names) if names else ""
        raise DatasetError(f"--vary {key}", f"{text!r}: spell it {kind}{spelled}")
    try:
        dist = _DISTRIBUTION.validate_python({"kind": kind, **dict(zip(names, parts, strict=True))})
    except ValidationError as err:
        raise DatasetError(f"--vary {key}", f"{text!r}: {err.errors()[0]['msg']}") from None
    if lowest is not None and dist.low < lowest:
        raise DatasetError(f"--vary {key}", f"{text!r}: low must be >= {lowest:g}")
    if key == "N" and (dist.low != int(dist.low) or dist.high != int(dist.high)):
        raise DatasetError(f"--vary {key}", f"{text!r}: bounds must be integers")
    return dist


def parse_variations(variations: dict[str, str]) -> dict[str, Distribution]:
    """Every ``key -> distribution text`` parsed (DatasetError names the first bad one)."""
    return {key: parse_distribution(key, text) for key, text in variations.items()}


def _generator(seed: int, frame: int, key: str) -> np.random.Generator:
    """The stream of ``key`` for ``frame``: Philox keyed by (seed, crc32(key)), counter frame."""
    if not 0 <= seed < SEED_LIMIT:
        raise DatasetError("seed", f"{seed} is outside [0, 2^63)")
    if frame < 0:
        raise DatasetError("frame", f"{frame} is negative")
    bit_generator = np.random.Philox(
        key=seed | (zlib.crc32(key.encode()) << 64), counter=frame << 128
    )
    return np.random.Generator(bit_generator)


def haar_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation uniform over SO(3): a normalised quaternion of four normal deviates."""
    w, x, y, z = rng.standard_normal(4)
    return _quaternion_matrix(w, x, y, z)


def _quaternion_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_vector_matrix(vector_rad: np.ndarray) -> np.ndarray:
    """The rotation by |v| radians about v (Rodrigues)."""
    angle = float(np.linalg.norm(vector_rad))
    if angle == 0.0:
        return np.eye(3)
    axis = np.asarray(vector_rad, dtype=float) / angle
    half = angle / 2
    return _quaternion_matrix(math.cos(half), *(math.sin(half) * axis))


def misset_umat(misset_deg: tuple[float, float, float] | None) -> np.ndarray:
    """The rotation nanoBragg's misset angles (x, then y, then z; degrees) make."""
    if misset_deg is None:
        return np.eye(3)
    rad = [m / RTD for m in misset_deg]
    return np.stack([rotate_xyz(e, *rad) for e in np.eye(3)], axis=1)


@lru_cache(maxsize=16)
def _base(experiment: Experiment) -> dict[str, Any]:
    """The experiment's own values of the varied parameters (resolved as C does)."""
    from engine.plan import plan

    geo = plan(experiment).detector
    crystal = experiment.crystal
    return {
        "umat": misset_umat(crystal.misset_deg),
        "distance": geo.distance * 1e3,
        "beam_center": (geo.xbeam * 1e3, geo.ybeam * 1e3),
    }


def _draw_key(key: str, dist: Distribution, rng: np.random.Generator, exp: Experiment) -> Any:
    """The value of ``key`` for one frame, from its stream ``rng``."""
    if key == "orientation":
        if isinstance(dist, RandomRotation):
            return haar_rotation(rng).ravel().tolist()
        jitter = rotation_vector_matrix(rng.standard_normal(3) * dist.deg / RTD)
        return (jitter @ _base(exp)["umat"]).ravel().tolist()
    if isinstance(dist, Uniform):
        if key == "N":
            return rng.integers(int(dist.low), int(dist.high), size=3, endpoint=True).tolist()
        return float(rng.uniform(dist.low, dist.high))
    if isinstance(dist, LogNormal):
        return float(math.exp(dist.sigma * rng.standard_normal()))
    assert isinstance(dist, Normal)
    if key == "cell":
        cell = _cell(exp)
        factors = 1.0 + dist.sigma * rng.standard_normal(3)
        return [*(cell[i] * float(factors[i]) for i in range(3)), *cell[3:]]
    if key == "lambda":
        return exp.beam.wavelength_A * float(1.0 + dist.sigma * rng.standard_normal())
    if key == "distance":
        return _base(exp)["distance"] + dist.sigma * float(rng.standard_normal())
    x, y = _base(exp)["beam_center"]
    dx, dy = dist.sigma * rng.standard_normal(2)
    return [x + float(dx), y + float(dy)]


def _cell(exp: Experiment) -> tuple[float, ...]:
    if exp.crystal.cell is None:
        raise DatasetError("--vary cell", "the crystal is given by an A matrix, not a cell")
    return exp.crystal.cell


def draw(variations: dict[str, str], seed: int, frame: int, experiment: Experiment) -> dict:
    """Frame ``frame``'s values of the varied parameters of ``experiment`` (see the module
    docstring): a function of (seed, frame, key) and the experiment alone."""
    dists = parse_variations(variations)
    values: dict[str, Any] = {}
    for key, dist in dists.items():
        value = _draw_key(key, dist, _generator(seed, frame, key), experiment)
        values["umat" if key == "orientation" else key] = value
    return values


class FrameValues(BaseModel):
    """A frame's values (a frames-table row): each optional, absolute, in the model's units."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )

    phi: float | None = Field(None, description="spindle angle at the frame's start, degrees")
    misset: tuple[float, float, float] | None = Field(None, description="misset x, y, z, deg")
    umat: tuple[float, ...] | None = Field(None, description="U matrix, 9 numbers row-major")
    cell: tuple[float, float, float, float, float, float] | None = Field(
        None, description="a, b, c (Angstrom), alpha, beta, gamma (degrees)"
    )
    mosaic: float | None = Field(None, ge=0, description="mosaic spread, degrees")
    N: tuple[int, int, int] | None = Field(None, description="cells along a, b, c")
    lambda_: float | None = Field(None, gt=0, alias="lambda", description="wavelength, Angstrom")
    flux: float | None = Field(None, gt=0, description="factor of the fluence and flux")
    distance: float | None = Field(None, gt=0, description="detector distance, mm")
    beam_center: tuple[float, float] | None = Field(None, description="header X, Y, mm")
    water: float | None = Field(None, ge=0, description="water thickness, micrometres")

    @model_validator(mode="after")
    def _check(self) -> FrameValues:
        if self.umat is not None:
            u = np.asarray(self.umat, dtype=float)
            if u.size != 9 or not np.allclose(
                u.reshape(3, 3) @ u.reshape(3, 3).T, np.eye(3), atol=1e-6
            ):
                raise ValueError("umat must be 9 numbers of a rotation matrix")
            if self.misset is not None:
                raise ValueError("give misset or umat, not both")
        if self.N is not None and min(self.N) < 1:
            raise ValueError("N must be >= 1 along each axis")
        return self


#: Column names of a frames table.
TABLE_KEYS = tuple(f.alias or name for name, f in FrameValues.model_fields.items())


def parse_table(rows: list[dict[str, Any]]) -> list[FrameValues]:
    """Frames-table rows validated (DatasetError names the row and the column)."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(FrameValues.model_validate(row))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "row"
            raise DatasetError(f"frames_table[{i}].{where}", first["msg"]) from None
    return out


def _cell_value(text: str) -> Any:
    """A CSV cell: a number, or several separated by spaces (misset, umat, cell, N, ...)."""
    parts = text.split()
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise DatasetError("--frames-table", f"{text!r} is not a number or numbers") from None
    return numbers[0] if len(numbers) == 1 else numbers


def read_frames_table(path: str) -> list[dict[str, Any]]:
    """A frames table from ``path``: JSON lines (``.jsonl``/``.json``: one object a line) or CSV
    (a header of :data:`TABLE_KEYS`, several numbers in a cell separated by spaces)."""
    import csv
    import json

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise DatasetError("--frames-table", f"cannot read {path}: {err.strerror}") from None
    if path.endswith((".jsonl", ".json", ".ndjson")):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise DatasetError("--frames-table", f"{path}:{n}: {err.msg}") from None
        return rows
    reader = csv.DictReader(text.splitlines())
    rows = [{k: _cell_value(v) for k, v in row.items() if k and v and v.strip()} for row in reader]
    return rows


def apply(experiment: Experiment, values: dict[str, Any] | FrameValues) -> Experiment:
    """``experiment`` with ``values`` (from :func:`draw` or a frames-table row) set."""
    v = values if isinstance(values, FrameValues) else FrameValues.model_validate(values)
    crystal: dict[str, Any] = {}
    beam: dict[str, Any] = {}
    detector: dict[str, Any] = {}
    if v.umat is not None:
        u = np.asarray(v.umat, dtype=float).reshape(3, 3)
        crystal["misset_deg"] = tuple(a * RTD for a in umat_to_misset(u))
    if v.misset is not None:
        crystal["misset_deg"] = v.misset
    if v.cell is not None:
        crystal["cell"] = v.cell
    if v.mosaic is not None:
        crystal["mosaic_spread_deg"] = v.mosaic
    if v.N is not None:
        crystal.update(na=v.N[0], nb=v.N[1], nc=v.N[2])
    if v.lambda_ is not None:
        beam["wavelength_A"] = v.lambda_
    if v.flux is not None:
        b = experiment.beam
        beam.update(fluence=b.fluence * v.flux, flux=b.flux * v.flux)
    if v.distance is not None:
        detector.update(distance_mm=v.distance, close_distance_mm=None)
    if v.beam_center is not None:
        detector.update(xbeam_mm=v.beam_center[0], ybeam_mm=v.beam_center[1])
    return _updated(experiment, v, crystal, beam, detector)


def _updated(exp: Experiment, v: FrameValues, crystal: dict, beam: dict, detector: dict):
    """``exp`` with the given fields of its parts replaced (validated as the model does)."""
    data = exp.model_dump()
    data["crystal"].update(crystal)
    data["beam"].update(beam)
    data["detector"].update(detector)
    if v.water is not None:
        data["sampling"]["water_um"] = v.water
    if v.phi is not None:
        data["scan"]["phi0_deg"] = v.phi
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise DatasetError(where, f"the frame's value is not valid: {first['msg']}") from None
