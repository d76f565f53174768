"""Ground truth beside the pixels: a dataset job rendered by ``braggtile render``, its truths
exported by ``braggtile export --truth`` and read by dxtbx (the system python's DIALS), the A
matrix of a known misset computed here independently, the detector compared with what dxtbx
reads from the exported SMV of the same frame; CLI errors of dataset jobs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiling.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
CELL = (50.0, 60.0, 70.0)
MISSET = ((10.0, 20.0, 30.0), (-40.0, 5.0, 75.0))
ARGS = "-N 2 -cell 50 60 70 90 90 90 -default_F 10 -lambda 1.2 -distance 100 -detpixels 64"


def _has_dxtbx() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import dxtbx"], env={"PATH": "/usr/bin:/bin"}, capture_output=True
    )
    return probe.returncode == 0


needs_dxtbx = pytest.mark.skipif(
    not _has_dxtbx() and os.environ.get("CI") != "true", reason="no dxtbx in /usr/bin/python3"
)


def braggtile(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "service.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def dxtbx(script: str, *args: str) -> object:
    """Run ``script`` in the system python (DIALS); it prints one JSON value."""
    run = subprocess.run(
        [SYSTEM_PYTHON, "-c", script, *args],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def stills(tmp_path_factory) -> Path:
    """Two stills from a frames table (known missets, distances) rendered in-process."""
    folder = tmp_path_factory.mktemp("truth")
    table = folder / "frames.csv"
    rows = [f"{' '.join(map(str, m))},{d}" for m, d in zip(MISSET, (100.0, 110.0), strict=True)]
    table.write_text("misset,distance\n" + "\n".join(rows) + "\n")
    out = folder / "s.zarr"
    run = braggtile(
        "render", "--nanobragg", ARGS, "-o", str(out), "--stills", "2", "--frames-table",
        str(table), "--in-process", "--no-progress",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return out


def _rotation(axis: int, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def expected_a_matrix(misset: tuple[float, float, float]) -> np.ndarray:
    """dxtbx's A = UB of an orthogonal cell with nanoBragg's misset (about x, then y, then z)
    in the MOSFLM convention: lab (x, y, z) of nanoBragg is (z, y, -x) of dxtbx."""
    r = _rotation(2, misset[2]) @ _rotation(1, misset[1]) @ _rotation(0, misset[0])
    to_dxtbx = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    real = np.stack([to_dxtbx @ r @ (np.eye(3)[i] * CELL[i]) for i in range(3)])
    return np.linalg.inv(real)


LOAD_EXPT = """
import json, sys
from dxtbx.model.experiment_list import ExperimentListFactory as F
el = F.from_json_file(sys.argv[1], check_format=False)
print(json.dumps([{"A": list(e.crystal.get_A()), "origin": list(e.detector[0].get_origin()),
    "fast": list(e.detector[0].get_fast_axis()), "slow": list(e.detector[0].get_slow_axis()),
    "s0": list(e.beam.get_s0()), "scan": e.scan is not None} for e in el]))
"""

IMPORT_SMV = """
import json, sys
from dxtbx.model.experiment_list import ExperimentListFactory as F
el = F.from_filenames(sys.argv[1:])
print(json.dumps([{"origin": list(e.detector[0].get_origin()),
    "fast": list(e.detector[0].get_fast_axis()), "slow": list(e.detector[0].get_slow_axis()),
    "s0": list(e.beam.get_s0())} for e in el]))
"""


@needs_dxtbx
def test_truth_expt_loads_in_dxtbx_with_the_a_matrix_of_the_misset(stills, tmp_path) -> None:
    out = tmp_path / "truth.expt"
    run = braggtile("export", str(stills), "--truth", str(out))
    assert run.returncode == 0, run.stderr
    loaded = dxtbx(LOAD_EXPT, str(out))
    assert len(loaded) == 2
    for frame, misset in enumerate(MISSET):
        assert np.array(loaded[frame]["A"]).reshape(3, 3) == pytest.approx(
            expected_a_matrix(misset), abs=1e-12
        )
        assert loaded[frame]["s0"] == pytest.approx([0.0, 0.0, -1 / 1.2])
        assert not loaded[frame]["scan"]  # a still with no oscillation: no scan


@needs_dxtbx
def test_truth_detector_is_what_dxtbx_reads_from_the_exported_smv(stills, tmp_path) -> None:
    expt, smv = tmp_path / "truth.expt", tmp_path / "img_#.img"
    assert braggtile("export", str(stills), "--truth", str(expt)).returncode == 0
    run = braggtile("export", str(stills), "--format", "smv", "-o", str(smv))
    assert run.returncode == 0, run.stderr
    truth = dxtbx(LOAD_EXPT, str(expt))
    images = dxtbx(IMPORT_SMV, *(str(tmp_path / f"img_{k}.img") for k in (1, 2)))
    for frame, distance in enumerate((100.0, 110.0)):
        ours, theirs = truth[frame], images[frame]
        assert ours["fast"] == pytest.approx(theirs["fast"], abs=1e-12)
        assert ours["slow"] == pytest.approx(theirs["slow"], abs=1e-12)
        assert ours["s0"] == pytest.approx(theirs["s0"], abs=1e-12)
        assert ours["origin"][2] == pytest.approx(-distance) == theirs["origin"][2]
        # FormatSMVJHSim reads the header's beam centre half a pixel from C's pixel centres
        assert ours["origin"][:2] == pytest.approx(theirs["origin"][:2], abs=0.1)
        header = _smv_header(tmp_path / f"img_{frame + 1}.img")
        dials_origin = [float(x) for x in header["DIALS_ORIGIN"].split(",")]
        assert ours["origin"] == pytest.approx(dials_origin, abs=1e-6)


def _smv_header(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    text = raw[1 : raw.index(b"}")].decode("ascii")
    return dict(line.rstrip(";").split("=", 1) for line in text.split() if "=" in line)


def test_truth_jsonl_has_a_line_per_frame(stills, tmp_path) -> None:
    out = tmp_path / "truth.jsonl"
    run = braggtile("export", str(stills), "--truth", str(out))
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [t["frame"] for t in lines] == [0, 1]
    assert [t["values"]["misset"] for t in lines] == [list(m) for m in MISSET]
    assert [t["distance_mm"] for t in lines] == pytest.approx([100.0, 110.0])
    for t, misset in zip(lines, MISSET, strict=True):
        a = np.array(t["A_matrix"]).reshape(3, 3)
        assert a == pytest.approx(expected_a_matrix(misset), abs=1e-12)
        assert t["wavelength_A"] == 1.2 and t["cells"] == [2, 2, 2]
    reader = StoreReader(str(stills))
    assert reader.truth_frames() == {0, 1}
    assert not np.array_equal(reader.read_frame(0, 0), reader.read_frame(0, 1))  # frames differ


def test_rotation_frames_carry_goniometer_and_scan(tmp_path) -> None:
    out = tmp_path / "r.zarr"
    run = braggtile(
        "render", "--nanobragg", ARGS + " -phi 3 -osc 0.5", "-o", str(out), "--frames", "2",
        "--vary", "orientation=jitter:1", "--seed", "9", "--in-process", "--no-progress",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    truths = [StoreReader(str(out)).frame_truth(k) for k in range(2)]
    assert [t["dxtbx"]["scan"]["oscillation"] for t in truths] == [[3.0, 0.5], [3.5, 0.5]]
    assert truths[0]["dxtbx"]["goniometer"]["rotation_axis"] == [1.0, 0.0, 0.0]
    assert truths[0]["values"]["umat"] != truths[1]["values"]["umat"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--stills", "2", "--vary", "colour=random"), "--vary: unknown key 'colour'"),
        (("--stills", "2", "--vary", "mosaic=uniform:2,1"), "--vary mosaic"),
        (("--stills", "2", "--vary", "orientation"), "--vary: 'orientation': spell it KEY=DIST"),
        (("--stills", "2", "--frames", "2"), "--stills: give --stills N or --frames N"),
        (("--stills", "0"), "--stills: must be >= 1"),
        (("--frames", "0"), "--frames: must be >= 1"),
        (("--stills", "2", "--seed", "-1"), "--seed:"),
        (("--frames-table", "/nonexistent.csv"), "--frames-table: cannot read"),
    ],
)
def test_dataset_cli_errors_are_one_line(args, says, tmp_path) -> None:
    run = braggtile("render", "--nanobragg", ARGS, "-o", str(tmp_path / "x.zarr"), *args)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and says in run.stderr


def test_export_truth_bad_name_is_one_line(stills, tmp_path) -> None:
    run = braggtile("export", str(stills), "--truth", str(tmp_path / "t.txt"))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "--truth" in run.stderr
