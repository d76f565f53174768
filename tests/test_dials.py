"""DIALS as a real client: a rotation series rendered by braggtile, exported as NXmx, mini-CBF
and SMV, is imported, spot-found and indexed by DIALS (Debian's ``dials.*`` commands, run as
subprocesses with their own Python in a clean environment), and DIALS recovers the unit cell
and the crystal orientation braggtile rendered.

Frames. nanoBragg's lab frame (MOSFLM convention) has the beam along +x and the spindle along
+z; DIALS's has the beam along -z (a beam's ``direction`` points to the source) and, for these
formats, the rotation axis along +x. The rotation taking one frame to the other is fixed by the
beam and the spindle (:func:`lab_rotation`); the detector's fast and slow axes must then agree
too. The crystal: nanoBragg builds the cell with a* along x and b* in the x-y plane (for a
90-degree cell: a, b, c along x, y, z), then turns it by the misset, about x, then y, then z
(``R = Rz Ry Rx``). DIALS reports the real-space axes at scan angle 0 (= nanoBragg's phi 0).
Orientations are compared up to the lattice's symmetry (any proper signed permutation of the
axes that keeps their lengths: the 4/mmm rotations, and the reordering of a P1 cell).

Without ``dials.import`` on PATH the tests skip; under ``CI=true`` they fail (CI installs it).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.dials

ROOT = Path(__file__).resolve().parents[1]
DIALS_PATH = "/usr/bin:/bin"
CELL = (78.0, 78.0, 37.0)  # Angstrom; all angles 90 degrees
MISSET = (10.0, 20.0, 30.0)  # degrees about x, y, z
FRAMES = 20
OSC = 0.5  # degrees per frame
GAIN = 0.1  # ADU per photon: the brightest spots stay below 65535 in SMV
NANOBRAGG = (
    f"-cell {CELL[0]} {CELL[1]} {CELL[2]} 90 90 90 -misset {MISSET[0]} {MISSET[1]} {MISSET[2]}"
    " -N 20 -default_F 100 -lambda 1 -distance 100 -detpixels 512 -pixel 0.1"
    f" -osc {OSC} -phistep 0.1 -oversample 1"
)
FORMATS = {"nexus": "run.nxs", "cbf": "cbf/img_#####.cbf", "smv": "smv/img_#####.img"}
CELL_TOLERANCE = 0.005  # relative
ANGLE_TOLERANCE_DEG = 0.5
ORIENTATION_TOLERANCE_DEG = 0.2


@pytest.fixture(scope="module")
def dials_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A clean environment for the ``dials.*`` commands; skip without them (fail under CI)."""
    if shutil.which("dials.import", path=DIALS_PATH) is None:
        message = "dials.import not found on /usr/bin (apt-get install dials)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return {"PATH": DIALS_PATH, "HOME": str(tmp_path_factory.mktemp("dials-home"))}


def run_dials(env: dict[str, str], folder: Path, program: str, *args: str) -> str:
    """Run ``program`` (a ``dials.*`` command) in ``folder``; its stdout, or fail with its log."""
    done = subprocess.run(
        [program, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        pytest.fail(
            f"{program} {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def braggtile(*args: str) -> None:
    """Run the ``braggtile`` CLI of this checkout; fail with its output when it fails."""
    cmd = [sys.executable, "-m", "service.cli", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rotation series, rendered once for the module: its store."""
    store = tmp_path_factory.mktemp("series") / "series.zarr"
    braggtile(
        "render",
        "--in-process",
        "--no-progress",
        "--frames",
        str(FRAMES),
        "-o",
        str(store),
        "--nanobragg",
        NANOBRAGG,
    )
    return store


def store_geometry(store: Path) -> dict:
    """The store's derived geometry attributes (nanoBragg's lab frame), read as plain JSON."""
    return json.loads((store / "zarr.json").read_text())["attributes"]["braggtile"]["geometry"]


@dataclass(frozen=True)
class Indexed:
    """One format's round trip: DIALS's working folder, and the strong spots it found."""

    folder: Path
    spots: int

    def experiment(self, name: str) -> dict:
        return json.loads((self.folder / name).read_text())


def export_and_import(store: Path, fmt: str, folder: Path, env: dict[str, str]) -> None:
    """``braggtile export`` the store as ``fmt`` into ``folder``, then ``dials.import`` it."""
    out = folder / FORMATS[fmt]
    braggtile("export", str(store), "--format", fmt, "-o", str(out), "--gain", str(GAIN))
    if fmt == "nexus":
        run_dials(env, folder, "dials.import", str(out))
    else:
        run_dials(env, folder, "dials.import", f"template={out}")


@pytest.fixture(scope="module", params=sorted(FORMATS))
def indexed(
    request: pytest.FixtureRequest,
    series: Path,
    dials_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Indexed:
    """The series exported as one format, imported, spot-found and indexed (P422) by DIALS."""
    folder = tmp_path_factory.mktemp(f"dials-{request.param}")
    export_and_import(series, request.param, folder, dials_env)
    log = run_dials(dials_env, folder, "dials.find_spots", "imported.expt", "nproc=2")
    saved = re.search(r"Saved (\d+) reflections to strong\.refl", log)
    assert saved, f"dials.find_spots did not report its spots:\n{log[-2000:]}"
    run_dials(dials_env, folder, "dials.index", "imported.expt", "strong.refl", "space_group=P422")
    return Indexed(folder, int(saved.group(1)))


# --- orientation arithmetic --------------------------------------------------------------


def axis_rotation(axis: int, degrees: float) -> np.ndarray:
    """Right-handed rotation by ``degrees`` about lab axis ``axis`` (0 = x, 1 = y, 2 = z)."""
    t = np.radians(degrees)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = np.cos(t)
    r[i, j], r[j, i] = -np.sin(t), np.sin(t)
    return r


def nanobragg_axes(cell: tuple[float, float, float], misset: tuple[float, ...]) -> np.ndarray:
    """Real-space axes a, b, c (rows, Angstrom) of a 90-degree cell in nanoBragg's lab frame
    at phi 0: along x, y, z, then turned about x, y, z by the misset (degrees)."""
    turn = axis_rotation(2, misset[2]) @ axis_rotation(1, misset[1]) @ axis_rotation(0, misset[0])
    return np.diag(cell) @ turn.T


def triad(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Orthonormal columns: ``first``, ``second`` made normal to it, and their cross product."""
    e1 = first / np.linalg.norm(first)
    e2 = second - (second @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.column_stack([e1, e2, np.cross(e1, e2)])


def lab_rotation(geometry: dict, expt: dict) -> np.ndarray:
    """The rotation taking nanoBragg's lab frame to DIALS's: the beam's direction of travel to
    DIALS's (minus its ``direction``), the spindle to DIALS's rotation axis."""
    beam = -np.asarray(expt["beam"][0]["direction"])
    axis = np.asarray(expt["goniometer"][0]["rotation_axis"])
    nanobragg = triad(np.asarray(geometry["beam_vector"]), np.asarray(geometry["spindle_axis"]))
    return triad(beam, axis) @ nanobragg.T


def rotation_angle(rotation: np.ndarray) -> float:
    """The angle (degrees) of a rotation matrix."""
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))


def lattice_matches(found: np.ndarray, expected: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(misorientation in degrees, relabelled axes) for every proper signed permutation of the
    ``found`` axes (rows) whose lengths match ``expected``'s within 2%, best first."""
    lengths = np.linalg.norm(expected, axis=1)
    matches = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            axes = np.asarray(signs)[:, None] * found[list(order)]
            if np.linalg.det(axes) < 0 or not np.allclose(
                np.linalg.norm(axes, axis=1), lengths, rtol=0.02
            ):
                continue
            turn = np.linalg.solve(expected, axes).T  # axes = expected @ turn.T
            u, _, vt = np.linalg.svd(turn)
            matches.append((rotation_angle(u @ vt), axes))
    return sorted(matches, key=lambda match: match[0])


def crystal_axes(expt: dict) -> np.ndarray:
    """DIALS's real-space axes a, b, c (rows, Angstrom) of the first crystal."""
    crystal = expt["crystal"][0]
    return np.array([crystal[f"real_space_{name}"] for name in "abc"])


def cell_of(axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths (Angstrom) and angles alpha, beta, gamma (degrees) of axes a, b, c (rows)."""
    lengths = np.linalg.norm(axes, axis=1)
    pairs = ((1, 2), (0, 2), (0, 1))
    angles = [np.degrees(np.arccos(axes[i] @ axes[j] / lengths[i] / lengths[j])) for i, j in pairs]
    return lengths, np.array(angles)


# --- tests --------------------------------------------------------------------------------


def test_dials_finds_spots_and_recovers_the_cell(indexed: Indexed) -> None:
    assert indexed.spots > 100
    found = crystal_axes(indexed.experiment("indexed.expt"))
    matches = lattice_matches(found, np.diag(CELL))
    assert matches, f"no relabelling of DIALS's cell {cell_of(found)} matches {CELL}"
    lengths, angles = cell_of(matches[0][1])
    np.testing.assert_allclose(lengths, CELL, rtol=CELL_TOLERANCE)
    np.testing.assert_allclose(angles, 90.0, atol=ANGLE_TOLERANCE_DEG)


def test_dials_orientation_is_the_rendered_misset(indexed: Indexed, series: Path) -> None:
    imported = indexed.experiment("imported.expt")
    geometry = store_geometry(series)
    lab = lab_rotation(geometry, imported)
    panel = imported["detector"][0]["panels"][0]
    np.testing.assert_allclose(lab @ geometry["fdet_vector"], panel["fast_axis"], atol=1e-6)
    np.testing.assert_allclose(lab @ geometry["sdet_vector"], panel["slow_axis"], atol=1e-6)
    expected = nanobragg_axes(CELL, MISSET) @ lab.T
    matches = lattice_matches(crystal_axes(indexed.experiment("indexed.expt")), expected)
    assert matches and matches[0][0] < ORIENTATION_TOLERANCE_DEG, matches[:1]
