"""C nanoBragg's ran1, random misset and mosaic domains against the reference C output."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from engine.crandom import Ran1
from engine.orientation import (
    RTD,
    mosaic_umats,
    random_misset,
    rotate_axis,
    rotate_xyz,
    umat_to_misset,
)

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"


def _case(name: str) -> tuple[list[str], str]:
    """The case's CLI arguments and the log C printed for it (skips if absent)."""
    log = REFERENCE / "logs" / f"{name}.log"
    cases = REFERENCE / "cases.json"
    if not (log.is_file() and cases.is_file()):
        pytest.skip(f"reference data for {name} not found under {REFERENCE.resolve()}")
    args = shlex.split(json.loads(cases.read_text())[name])
    return args, log.read_text()


def _values(args: list[str], flag: str, n: int = 1) -> list[str]:
    i = args.index(flag)
    return args[i + 1 : i + 1 + n]


def _cell_vectors(log: str, header: str) -> np.ndarray:
    """(3, 3) array whose columns are the a, b, c vectors C printed under ``header``."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 2
    return np.array([[float(x) for x in lines[start + k].split()[1:4]] for k in range(3)])


def _rotated_cell(lengths: list[float], misset: tuple[float, float, float]):
    """Reciprocal and real vectors (as columns) of an orthogonal cell after C's misset."""
    stars = [rotate_xyz(np.eye(3)[i] / lengths[i], *misset) for i in range(3)]
    v_star = float(np.dot(stars[0], np.cross(stars[1], stars[2])))
    real = [np.cross(stars[(i + 1) % 3], stars[(i + 2) % 3]) / v_star for i in range(3)]
    return np.column_stack(stars), np.column_stack(real)


def _c_seed(args: list[str], flag: str) -> int:
    """C stores seeds negated: ``-misset_seed N`` / ``-mosaic_seed N`` give ``-N``."""
    return -int(_values(args, flag)[0])


# First deviates of the reference C ran1 for seed -12345678 (compiled from nanoBragg.c).
RAN1_FIRST = ("0.765989304", "0.023453664", "0.589726627")


def test_ran1_matches_c_float32_stream() -> None:
    rng = Ran1(-12345678)
    got = [rng.next() for _ in RAN1_FIRST]
    assert [np.float32(g) for g in got] == [np.float32(c) for c in RAN1_FIRST]
    assert all(float(np.float32(g)) == g for g in got)
    assert all(0.0 < rng.next() < 1.0 for _ in range(2000))


def test_ran1_positive_seed_reuses_shared_table() -> None:
    fresh = Ran1(5)
    assert fresh.next() == Ran1(-1).next()  # first call ever: a positive idum becomes 1
    shared = Ran1(-99)
    shared.next()
    table = list(shared.iv)
    shared.reseed(77)  # another seed variable, same static table, no reinitialisation
    shared.next()
    assert shared.iv != table and shared.iy != 0
    assert shared.idum == 77 * 16807  # one Park-Miller step from 77: no table reload


def test_misset_random_angles_and_cell_match_log() -> None:
    args, log = _case("misset_random")
    assert "random" in args
    angles = random_misset(_c_seed(args, "-misset_seed"))
    printed = re.search(r"random orientation misset angles: (\S+) (\S+) (\S+) deg", log)
    assert printed is not None
    assert ["%f" % (a * RTD) for a in angles] == list(printed.groups())

    lengths = [float(x) for x in _values(args, "-cell", 3)]
    recip, real = _rotated_cell(lengths, angles)
    np.testing.assert_allclose(recip, _cell_vectors(log, "reciprocal-space"), rtol=0, atol=5.1e-9)
    np.testing.assert_allclose(real, _cell_vectors(log, "real-space"), rtol=0, atol=5.1e-9)


def test_fixed_misset_rotation_matches_log() -> None:
    args, log = _case("mosaic_domains")
    misset = tuple(float(x) / RTD for x in _values(args, "-misset", 3))
    lengths = [float(x) for x in _values(args, "-cell", 3)]
    recip, real = _rotated_cell(lengths, misset)
    np.testing.assert_allclose(recip, _cell_vectors(log, "reciprocal-space"), rtol=0, atol=5.1e-9)
    np.testing.assert_allclose(real, _cell_vectors(log, "real-space"), rtol=0, atol=5.1e-9)


# Per-domain misset angles (deg) that the reference C prints for the mosaic_domains case when
# its commented-out umat2misset/printf diagnostic in the domain loop is enabled.
MOSAIC_DOMAIN_MISSETS_DEG = [
    (0.000000000000, -0.000000000000, 0.000000000000),
    (0.362818521345, -0.914388591096, -0.180776631838),
    (-0.756571530319, -0.419045639294, -0.320285040088),
    (0.125508825719, 0.364506936699, 0.285315389371),
    (-0.790551395110, 0.009112439724, 0.050122799404),
    (-0.484991153082, 0.783365138306, 0.385451883561),
    (-0.358843671070, 0.856693752765, -0.268457034161),
    (0.098249635159, 0.668549331683, -0.630832868414),
    (-0.937888416600, -0.314277451967, 0.144899686131),
    (0.070571468282, -0.307541780762, 0.938137227976),
]


def test_mosaic_domains_case() -> None:
    args, log = _case("mosaic_domains")
    spread_deg = float(_values(args, "-mosaic")[0])
    domains = int(_values(args, "-mosaic_domains")[0])
    umats = mosaic_umats(spread_deg / RTD, domains, _c_seed(args, "-mosaic_seed"))

    assert f"created a total of {domains} mosaic domains" in log
    assert f"{domains} mosaic domains over mosaic spread of {spread_deg:g} degrees" in log
    assert umats.shape == (domains, 3, 3)
    np.testing.assert_array_equal(umats[0], np.eye(3))
    for u in umats:
        np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-14)
        assert np.linalg.det(u) == pytest.approx(1.0, abs=1e-14)
    angles = np.degrees(np.arccos(np.clip((np.trace(umats, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert np.all(angles <= spread_deg + 1e-9) and np.all(angles[1:] > 0)
    got = np.array([umat_to_misset(u) for u in umats]) * RTD
    np.testing.assert_allclose(got, MOSAIC_DOMAIN_MISSETS_DEG, rtol=0, atol=1e-9)


def test_shared_rng_reproduces_c_call_order() -> None:
    # Reference C: -misset_seed 4242 -misset random -mosaic 1 -mosaic_domains 4
    # -mosaic_seed -77; a positive idum (77) makes ran1 keep the misset's shuffle table.
    rng = Ran1(0)
    angles = random_misset(-4242, rng)
    umats = mosaic_umats(1.0 / RTD, 4, 77, rng)
    assert ["%f" % (a * RTD) for a in angles] == ["-163.713095", "-27.840487", "-175.580921"]
    expected = [
        (0.867315548874, -0.383362553365, 0.306060971571),
        (-0.306039445309, 0.748165248371, -0.515563501578),
        (-0.249048645940, 0.765311410890, -0.412703368172),
    ]
    got = np.array([umat_to_misset(u) for u in umats[1:]]) * RTD
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # the usual negative seed reinitialises, so sharing makes no difference
    np.testing.assert_array_equal(mosaic_umats(0.02, 3, -1234, rng), mosaic_umats(0.02, 3, -1234))


def test_umat_to_misset_round_trip_and_rotations() -> None:
    misset = (0.3, -0.2, 1.1)
    umat = np.column_stack([rotate_xyz(e, *misset) for e in np.eye(3)])
    np.testing.assert_allclose(umat_to_misset(umat), misset, atol=1e-14)
    np.testing.assert_allclose(rotate_axis([1, 0, 0], [0, 0, 1], np.pi / 2), [0, 1, 0], atol=1e-15)
    np.testing.assert_array_equal(rotate_xyz([1.0, 2.0, 3.0], 0, 0, 0), [1.0, 2.0, 3.0])
