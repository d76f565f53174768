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
from collections.abc import Callable
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
STILL_ORIENTATION_TOLERANCE_DEG = 0.5  # one still: spot centroids only, no rotation


@pytest.fixture(scope="module")
def dials_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A clean environment for the ``dials.*`` commands; skip without them (fail under CI)."""
    if shutil.which("dials.import", path=DIALS_PATH) is None:
        message = "dials.import not found on /usr/bin (apt-get install dials)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return {"PATH": DIALS_PATH, "HOME": str(tmp_path_factory.mktemp("dials-home"))}


def dials_process(
    env: dict[str, str], folder: Path, program: str, *args: str
) -> subprocess.CompletedProcess:
    """Run ``program`` (a ``dials.*`` command) in ``folder``, its output captured."""
    return subprocess.run(
        [program, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=900
    )


def run_dials(env: dict[str, str], folder: Path, program: str, *args: str) -> str:
    """Run ``program`` in ``folder``; its stdout, or fail with its log."""
    done = dials_process(env, folder, program, *args)
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
    log: str = ""

    def experiment(self, name: str) -> dict:
        return json.loads((self.folder / name).read_text())


def export_and_import(store: Path, fmt: str, folder: Path, env: dict[str, str]) -> None:
    """``braggtile export`` the store as ``fmt`` into ``folder``, then ``dials.import`` it."""
    out = folder / FORMATS[fmt]
    braggtile("export", str(store), "--format", fmt, "-o", str(out), "--gain", str(GAIN))
    source = str(out) if fmt == "nexus" else f"template={out}"
    done = dials_process(env, folder, "dials.import", source)
    assert done.returncode == 0, f"dials.import {source}:\n{done.stdout[-4000:]}\n{done.stderr}"


@pytest.fixture(scope="module")
def imported(
    series: Path, dials_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``imported(fmt)``: the folder where the series, exported as ``fmt``, is imported by
    DIALS (``imported.expt``); each format exported and imported once for the module."""
    outcomes: dict[str, Path | BaseException] = {}

    def folder_of(fmt: str) -> Path:
        if fmt not in outcomes:
            folder = tmp_path_factory.mktemp(f"dials-{fmt}")
            try:
                export_and_import(series, fmt, folder, dials_env)
                outcomes[fmt] = folder
            except BaseException as outcome:  # a failure, repeated for every test
                outcomes[fmt] = outcome
        outcome = outcomes[fmt]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return folder_of


def find_spots(env: dict[str, str], folder: Path) -> int:
    """``dials.find_spots`` on ``folder``'s ``imported.expt``: the strong spots it saved."""
    log = run_dials(env, folder, "dials.find_spots", "imported.expt", "nproc=2")
    saved = re.search(r"Saved (\d+) reflections to strong\.refl", log)
    assert saved, f"dials.find_spots did not report its spots:\n{log[-2000:]}"
    return int(saved.group(1))


@pytest.fixture(scope="module", params=sorted(FORMATS))
def indexed(
    request: pytest.FixtureRequest, imported: Callable[[str], Path], dials_env: dict[str, str]
) -> Indexed:
    """The series exported as one format, imported, spot-found and indexed (P422) by DIALS."""
    folder = imported(request.param)
    spots = find_spots(dials_env, folder)
    index = ("imported.expt", "strong.refl", "space_group=P422")
    return Indexed(folder, spots, run_dials(dials_env, folder, "dials.index", *index))


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


def expt_of(folder: Path) -> dict:
    return json.loads((folder / "imported.expt").read_text())


def test_nexus_import_has_the_smv_beam_detector_and_scan(
    imported: Callable[[str], Path], series: Path
) -> None:
    """The NXmx file and the SMV series of one store give DIALS the same beam, detector
    (axes, pixels, distance) and scan; the NXmx panel origin is the store's pix0."""
    nexus, smv = expt_of(imported("nexus")), expt_of(imported("smv"))
    for key in ("direction", "wavelength"):
        np.testing.assert_allclose(nexus["beam"][0][key], smv["beam"][0][key], atol=1e-4)
    np.testing.assert_allclose(
        nexus["goniometer"][0]["rotation_axis"], smv["goniometer"][0]["rotation_axis"], atol=1e-4
    )
    np.testing.assert_allclose(
        nexus["scan"][0]["oscillation"], smv["scan"][0]["oscillation"], atol=1e-4
    )
    assert nexus["scan"][0]["image_range"] == smv["scan"][0]["image_range"] == [1, FRAMES]
    panels = nexus["detector"][0]["panels"][0], smv["detector"][0]["panels"][0]
    for key in ("fast_axis", "slow_axis"):
        np.testing.assert_allclose(panels[0][key], panels[1][key], atol=1e-4)
    np.testing.assert_allclose(panels[0]["pixel_size"], panels[1]["pixel_size"], atol=1e-3)
    assert panels[0]["image_size"] == panels[1]["image_size"] == [512, 512]
    normal = np.cross(panels[0]["fast_axis"], panels[0]["slow_axis"])
    distances = [float(np.dot(panel["origin"], normal)) for panel in panels]
    np.testing.assert_allclose(distances[0], distances[1], atol=1e-3)
    geometry = store_geometry(series)
    pix0_mm = lab_rotation(geometry, nexus) @ np.asarray(geometry["pix0_vector_m"]) * 1e3
    np.testing.assert_allclose(panels[0]["origin"], pix0_mm, atol=1e-3)


def test_smv_beam_centre_is_the_nexus_beam_centre(imported: Callable[[str], Path]) -> None:
    nexus, smv = expt_of(imported("nexus")), expt_of(imported("smv"))
    np.testing.assert_allclose(
        smv["detector"][0]["panels"][0]["origin"],
        nexus["detector"][0]["panels"][0]["origin"],
        atol=1e-3,
    )


#: Run by DIALS's Python: frame ``K`` of each imported.expt given, its raw pixels as dxtbx
#: reads them, saved as one .npy per file.
RAW_PIXELS = """
import sys
import numpy as np
from dxtbx.model.experiment_list import ExperimentListFactory
frame = int(sys.argv[1])
for expt in sys.argv[2:]:
    imageset = ExperimentListFactory.from_json_file(expt)[0].imageset
    np.save(expt + ".npy", imageset.get_raw_data(frame)[0].as_numpy_array().astype(np.int64))
"""


def test_dxtbx_reads_the_same_pixels_from_every_format(
    imported: Callable[[str], Path], dials_env: dict[str, str], series: Path
) -> None:
    """dxtbx reads one frame's pixels from the NXmx, CBF and SMV exports as the store's
    photons x GAIN + 40 ADU, rounded: the formats differ in DIALS's spot count only by its
    defaults per detector type (NXmx "pixel" -> SENSOR_PAD -> min_spot_size 3, not 6)."""
    frame = FRAMES // 2
    expts = [str(imported(fmt) / "imported.expt") for fmt in sorted(FORMATS)]
    python = ("/usr/bin/python3", "-c", RAW_PIXELS, str(frame), *expts)
    done = subprocess.run(python, env=dials_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    from tiling.store import StoreReader

    photons = StoreReader(str(series)).read_frame(0, frame).astype(np.float64)
    adu = photons * GAIN + 40.0 + 0.5
    assert adu.max() > 1000  # spots, not only background
    for fmt, expt in zip(sorted(FORMATS), expts, strict=True):
        # C's -noisefile (SMV) rounds through float32
        expected = np.floor(np.float32(adu) if fmt == "smv" else adu)
        np.testing.assert_array_equal(np.load(expt + ".npy"), expected, err_msg=expt)


def test_an_off_centre_beam_has_one_origin_in_smv_and_nexus(
    dials_env: dict[str, str], tmp_path: Path
) -> None:
    """A beam 20 mm (slow) and 30 mm (fast) from the corner of a 51.2 mm detector: DIALS
    reads the same panel origin, the store's pix0, from the SMV and the NXmx export."""
    store = tmp_path / "off.zarr"
    args = "-cell 78 78 37 90 90 90 -N 5 -default_F 100 -lambda 1 -distance 100"
    args += " -detpixels 128 -pixel 0.4 -Xbeam 20 -Ybeam 30 -osc 0.5 -oversample 1"
    braggtile("render", "--in-process", "--no-progress", "-o", str(store), "--nanobragg", args)
    origins = {}
    for fmt in ("smv", "nexus"):
        folder = tmp_path / fmt
        folder.mkdir()
        export_and_import(store, fmt, folder, dials_env)
        origins[fmt] = np.asarray(expt_of(folder)["detector"][0]["panels"][0]["origin"])
    geometry = store_geometry(store)
    pix0_mm = lab_rotation(geometry, expt_of(tmp_path / "nexus")) @ geometry["pix0_vector_m"]
    np.testing.assert_allclose(origins["nexus"], pix0_mm * 1e3, atol=1e-3)
    # MOSFLM: the beam hits pixel centre (Ybeam, Xbeam) + half a pixel; fast +x, slow -y
    np.testing.assert_allclose(origins["nexus"], [-30.2, 20.2, -100.0], atol=1e-3)
    np.testing.assert_allclose(origins["smv"], origins["nexus"], atol=1e-3)


def indexed_fraction(log: str) -> float:
    """The last "% indexed" of a ``dials.index`` log, as a fraction."""
    rows = re.findall(r"\|\s+0\s+\|\s+\d+\s+\|\s+\d+\s+\|\s+([\d.]+)%", log)
    assert rows, f"no indexed fraction in the dials.index log:\n{log[-2000:]}"
    return float(rows[-1]) / 100.0


def test_a_still_indexes_in_its_rendered_orientation(
    dials_env: dict[str, str], tmp_path: Path
) -> None:
    """One still (-osc 0) exported as SMV: DIALS's sequence indexer on it, cell known (Debian's
    DIALS lacks the stills indexer's ``xfel_mono_sim_ext``), finds the misset orientation."""
    store = tmp_path / "still.zarr"
    still = NANOBRAGG.replace(f"-osc {OSC} -phistep 0.1", "-osc 0")
    braggtile("render", "--in-process", "--no-progress", "-o", str(store), "--nanobragg", still)
    export_and_import(store, "smv", tmp_path, dials_env)
    assert find_spots(dials_env, tmp_path) > 100
    cell = ",".join(f"{length:g}" for length in CELL) + ",90,90,90"
    log = run_dials(
        dials_env, tmp_path, "dials.index", "imported.expt", "strong.refl",
        f"indexing.known_symmetry.unit_cell={cell}", "indexing.known_symmetry.space_group=P1",
        "stills.indexer=sequences", "indexing.method=real_space_grid_search",
        "refinement.parameterisation.crystal.fix=cell",
    )  # fmt: skip
    assert indexed_fraction(log) > 0.9
    imported_expt = expt_of(tmp_path)
    lab = lab_rotation(store_geometry(store), imported_expt)
    expected = nanobragg_axes(CELL, MISSET) @ lab.T
    found = crystal_axes(json.loads((tmp_path / "indexed.expt").read_text()))
    matches = lattice_matches(found, expected)
    assert matches and matches[0][0] < STILL_ORIENTATION_TOLERANCE_DEG, matches[:1]
