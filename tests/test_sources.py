"""C nanoBragg's divergence/dispersion source grid and -sourcefile against the reference logs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine.sources import (
    Sources,
    StepRange,
    divergence_dispersion_sources,
    read_source_file,
    resolve_steps,
)

from reference import case_args, need_file, reference_log

MOSFLM_BEAM = (1.0, 0.0, 0.0)
MOSFLM_POLAR = (0.0, 0.0, 1.0)


def _case(name: str) -> tuple[list[str], str]:
    """The case's CLI arguments and the log C printed for it."""
    return case_args(name), reference_log(name)


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _printed_sources(log: str) -> list[str]:
    """The ``X Y Z   I lambda`` lines C prints after "created a total of N sources:"."""
    match = re.search(r"created a total of (\d+) sources:\n", log)
    assert match is not None
    lines = log[match.end() :].splitlines()[: int(match.group(1))]
    assert len(lines) == int(match.group(1))
    return lines


def _formatted(sources: Sources) -> list[str]:
    return [
        "{:g} {:g} {:g}   {:g} {:g}".format(*p, i, lam)
        for p, i, lam in zip(
            sources.positions_m, sources.intensities, sources.wavelengths_m, strict=True
        )
    ]


def _check_directions(sources: Sources) -> None:
    norms = np.linalg.norm(sources.positions_m, axis=1, keepdims=True)
    np.testing.assert_allclose(sources.directions, sources.positions_m / norms, rtol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(sources.directions, axis=1), 1.0, rtol=1e-15)


def test_divergence_dispersion_matches_log() -> None:
    args, log = _case("divergence_dispersion")
    lambda0 = float(_value(args, "-lambda")) / 1e10
    sources = divergence_dispersion_sources(
        MOSFLM_BEAM,
        MOSFLM_POLAR,
        lambda0,
        hdivrange=float(_value(args, "-hdivrange")) / 1000.0,
        hdivsteps=int(_value(args, "-hdivsteps")),
        vdivrange=float(_value(args, "-vdivrange")) / 1000.0,
        vdivsteps=int(_value(args, "-vdivsteps")),
        dispersion=float(_value(args, "-dispersion")) / 100.0,
        dispsteps=int(_value(args, "-dispsteps")),
    )
    assert _formatted(sources) == _printed_sources(log)
    _check_directions(sources)
    deviations = re.findall(r"divergence deviation: (\S+) (\S+)", log)
    assert [(f"{h:g}", f"{v:g}") for h, v in sources.divergence_angles] == deviations
    assert f"  {sources.divsteps} divergence steps" in log
    assert f"  {sources.count} sources" in log

    disp = resolve_steps(
        float(_value(args, "-dispersion")) / 100.0, -1.0, int(_value(args, "-dispsteps"))
    )
    lambdas = [lambda0 * (1.0 + disp.step * k - disp.range_ / 2.0) for k in range(disp.steps)]
    printed = re.findall(r"lambda(\d+) = (\S+)", log)
    assert [(str(k), f"{lam:.15g}") for k, lam in enumerate(lambdas)] == printed
    h = resolve_steps(
        float(_value(args, "-hdivrange")) / 1000.0, -1.0, int(_value(args, "-hdivsteps"))
    )
    assert f"hdivrange={h.range_:g} hdivstep={h.step:g}  radians" in log


def test_default_single_source_matches_log() -> None:
    _, log = _case("misset_random")
    sources = divergence_dispersion_sources(MOSFLM_BEAM, MOSFLM_POLAR, 1e-10)
    assert _formatted(sources) == _printed_sources(log)
    assert re.findall(r"divergence deviation: (\S+) (\S+)", log) == [("0", "0")]
    assert sources.divsteps == 1
    np.testing.assert_array_equal(sources.directions, [[-1.0, 0.0, 0.0]])


def test_sourcefile_matches_log() -> None:
    args, log = _case("sourcefile")
    path = need_file(f"inputs/{_value(args, '-sourcefile')}")
    sources = read_source_file(path, MOSFLM_BEAM, float(_value(args, "-lambda")) / 1e10)
    assert _formatted(sources) == _printed_sources(log)
    _check_directions(sources)
    assert f"  {sources.divsteps} divergence steps" in log
    assert f"  {sources.count} sources" in log


def test_round_div_trims_corners_and_square_keeps_them() -> None:
    kw = dict(hdivrange=1e-3, hdivsteps=5, vdivrange=1e-3, vdivsteps=5)
    assert divergence_dispersion_sources(MOSFLM_BEAM, MOSFLM_POLAR, 1e-10, **kw).count == 13
    square = divergence_dispersion_sources(MOSFLM_BEAM, MOSFLM_POLAR, 1e-10, round_div=False, **kw)
    assert square.count == 25
    np.testing.assert_allclose(square.intensities, 1 / 25)
    # one axis without divergence: C's ellipse test gives NaN and keeps every point
    line = divergence_dispersion_sources(
        MOSFLM_BEAM, MOSFLM_POLAR, 1e-10, hdivrange=1e-3, hdivsteps=7
    )
    assert line.count == line.divsteps == 7


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ((-1.0, -1.0, -1), (0.0, 0.0, 1)),
        ((-1.0, 0.2, -1), (0.2, 0.2, 2)),
        ((0.5, -1.0, -1), (0.5, 0.5, 2)),
        ((1.0, 0.3, -1), (1.0, 0.3, 4)),
        ((-1.0, -1.0, 4), (1.0, 0.25, 4)),
        ((-1.0, 0.2, 5), (0.2, 0.2, 2)),
        ((0.5, -1.0, 1), (0.5, 0.5, 2)),
        ((0.5, -1.0, 3), (0.5, 0.25, 3)),
        ((0.5, 0.1, 3), (0.5, 0.1, 3)),
        ((0.0, -1.0, -1), (0.0, 0.0, 1)),  # C's default dispersion of 0.0
        ((0.0, -1.0, 3), (0.0, 0.0, 1)),
    ],
)
def test_resolve_steps_rules(given: tuple, expected: tuple) -> None:
    assert resolve_steps(*given) == StepRange(*expected)


def test_source_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "src.txt"
    path.write_text("\n  \t\n-10,0.5;0:2!1.5e-10\n-10 1\n  nan 0 0 3\n-10 0 0 1 1e-10 99 7\n")
    sources = read_source_file(path, MOSFLM_BEAM, 1e-10)
    np.testing.assert_array_equal(
        sources.positions_m, [[-10, 0.5, 0], [-10, 1, -0.0], [-10, 0, 0], [-10, 0, 0]]
    )
    np.testing.assert_array_equal(sources.intensities, [2, 1, 3, 1])
    np.testing.assert_array_equal(sources.wavelengths_m, [1.5e-10, 1e-10, 1e-10, 1e-10])
    assert sources.divsteps == -1 and sources.divergence_angles.shape == (0, 2)


def test_source_file_c_quirk_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "src.txt"
    path.write_text("-10 0 0\n-10 0 0")
    sources = read_source_file(path, MOSFLM_BEAM, 1e-10)
    np.testing.assert_array_equal(sources.wavelengths_m, [1e-10, 0.0])
    np.testing.assert_array_equal(sources.intensities, [1.0, 0.0])


def test_source_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(ValueError, match="missing.txt"):
        read_source_file(missing, MOSFLM_BEAM, 1e-10)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \t \n")
    with pytest.raises(ValueError, match="empty.txt"):
        read_source_file(empty, MOSFLM_BEAM, 1e-10)
