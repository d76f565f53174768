"""``braggtile export``: NXmx, mini-CBF, SMV and float files of a real store, read back with
independent readers (h5py, fabio, numpy, an SMV parser here) and compared with the store's
level-0 photons x gain + offset; a store whose job still runs; bad input; no torch import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import fabio
import h5py
import numpy as np
import pytest

from tiling.exports.cli import main
from tiling.store import StoreReader, TileStore

ROOT = Path(__file__).resolve().parents[1]
ARGS = (
    "-N 2 -cell 100 100 100 90 90 90 -default_F 10 -lambda 1.2 -distance 100 -detpixels 64 "
    "-pixel 0.1 -phi 5 -osc 0.4 -detector_thick 450"
)
FRAMES = 3
PHI0, OSC = 5.0, 0.4
#: Mini-CBF header fields dxtbx's FormatCBFMini reads, with this job's values where fixed.
HEADER_FIELDS = (
    "Pixel_size 1.000000e-04 m x 1.000000e-04 m",
    "Silicon sensor, thickness 4.500000e-04 m",
    "Wavelength 1.2000000 A",
    "Detector_distance 0.1000000 m",
    "Beam_xy",
    "Count_cutoff 2147483647 counts",
    "Exposure_time",
    "Exposure_period",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A finished 3-frame 64 x 64 store, rendered by ``braggtile render`` in-process."""
    out = tmp_path_factory.mktemp("export") / "s.zarr"
    cmd = [
        sys.executable, "-m", "service.cli", "render", "--nanobragg", ARGS, "-o", str(out),
        "--tile", "32", "--frames", str(FRAMES), "--in-process", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, timeout=300)
    return out


def photons(store: Path, frame: int) -> np.ndarray:
    return StoreReader(str(store)).read_frame(0, frame).astype(np.float64)


def export(store: Path, *args: str) -> int:
    return main([str(store), "--no-progress", *args])


def parse_smv(path: Path) -> tuple[dict[str, str], np.ndarray]:
    """An SMV file: its header (key -> text) and its little-endian uint16 pixels."""
    raw = path.read_bytes()
    text = raw[1 : raw.index(b"}")].decode("ascii")
    header = dict(line.rstrip(";").split("=", 1) for line in text.split() if "=" in line)
    fast, slow, skip = int(header["SIZE1"]), int(header["SIZE2"]), int(header["HEADER_BYTES"])
    return header, np.frombuffer(raw[skip:], "<u2", fast * slow).reshape(slow, fast)


def test_nexus_holds_the_series_as_nxmx(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.nxs"
    assert (
        export(store, "--format", "nexus", "-o", str(out), "--gain", "3", "--adc-offset", "7") == 0
    )
    with h5py.File(out, "r") as f:
        assert f["entry/definition"][()].decode() == "NXmx"
        data = f["entry/data/data"]
        assert data.shape == (FRAMES, 64, 64) and data.dtype == np.uint16
        assert data.chunks == (1, 64, 64)
        assert data._filters["32008"][-1] == 2  # bitshuffle (32008), then LZ4 (option 2)
        for k in range(FRAMES):
            expected = np.floor(np.clip(photons(store, k) * 3 + 7, 0, 65535) + 0.5)
            np.testing.assert_array_equal(data[k], expected)
        omega = f["entry/sample/transformations/omega"]
        np.testing.assert_allclose(omega[()], [PHI0 + k * OSC for k in range(FRAMES)])
        np.testing.assert_allclose(f["entry/sample/transformations/omega_end"][()] - omega, OSC)
        assert omega.attrs["transformation_type"] == "rotation"
        assert f[f["entry/sample/depends_on"][()].decode()] == omega
        beam = f["entry/instrument/beam/incident_wavelength"]
        assert beam[()] == pytest.approx(1.2) and beam.attrs["units"] == "angstrom"
        det = f["entry/instrument/detector"]
        assert det["sensor_material"][()].decode() == "Si"
        assert det["sensor_thickness"][()] == 450 and det["sensor_thickness"].attrs["units"] == "um"
        assert det["saturation_value"][()] == 65535
        module = det["module"]
        np.testing.assert_array_equal(module["data_size"][()], [64, 64])
        fast, slow = module["fast_pixel_direction"], module["slow_pixel_direction"]
        assert fast[()] == pytest.approx(0.1) and slow[()] == pytest.approx(0.1)
        # MOSFLM: fast along nanoBragg +z, slow along -y; McStas: beam +z, y up
        np.testing.assert_allclose(fast.attrs["vector"], [-1, 0, 0], atol=1e-12)
        np.testing.assert_allclose(slow.attrs["vector"], [0, -1, 0], atol=1e-12)
        origin = f[det["depends_on"][()].decode()]
        mcstas_origin = origin.attrs["vector"] * origin[()]
    header, _ = parse_smv(export_smv(store, tmp_path, "0:1")[0])
    dials_origin = [float(v) for v in header["DIALS_ORIGIN"].split(",")]
    np.testing.assert_allclose(mcstas_origin * [-1, 1, -1], dials_origin, atol=1e-9)


def test_nexus_of_large_counts_is_uint32(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "big.nxs"
    assert export(store, "--format", "nexus", "-o", str(out), "--gain", "1e9", "--frames", "1") == 0
    with h5py.File(out, "r") as f:
        data = f["entry/data/data"]
        assert data.shape == (1, 64, 64) and data.dtype == np.uint32
        top = f["entry/instrument/detector/saturation_value"][()]
        expected = np.floor(np.clip(photons(store, 1) * 1e9 + 40, 0, top) + 0.5)
        assert expected.max() > 65535
        np.testing.assert_array_equal(data[0], expected)
        assert f["entry/sample/transformations/omega"][()] == pytest.approx([PHI0 + OSC])


def test_cbf_frames_read_back_with_fabio(store: Path, tmp_path: Path) -> None:
    template = tmp_path / "cbf" / "img_#####.cbf"
    assert export(store, "--format", "cbf", "-o", str(template), "--gain", "2.5") == 0
    assert sorted(p.name for p in (tmp_path / "cbf").iterdir()) == [
        "img_00001.cbf", "img_00002.cbf", "img_00003.cbf",
    ]  # fmt: skip
    for k in range(FRAMES):
        image = fabio.open(str(tmp_path / "cbf" / f"img_{k + 1:05d}.cbf"))
        assert image.data.dtype == np.int32
        np.testing.assert_array_equal(image.data, np.floor(photons(store, k) * 2.5 + 40 + 0.5))
        contents = image.header["_array_data.header_contents"]
        assert f"Start_angle {PHI0 + k * OSC:.7f} deg." in contents
        assert f"Angle_increment {OSC:.7f} deg." in contents
        for field in HEADER_FIELDS:
            assert field in contents


def export_smv(store: Path, tmp_path: Path, frames: str, *args: str) -> list[Path]:
    template = tmp_path / "smv" / "img_###.img"
    assert export(store, "--format", "smv", "-o", str(template), "--frames", frames, *args) == 0
    return sorted((tmp_path / "smv").iterdir())


def test_smv_frames_are_c_noisefile_adu(store: Path, tmp_path: Path) -> None:
    files = export_smv(store, tmp_path, "1:3", "--gain", "1e8", "--adc-offset", "10")
    assert [p.name for p in files] == ["img_002.img", "img_003.img"]
    for k, path in zip((1, 2), files, strict=True):
        header, adu = parse_smv(path)
        c_adu = np.floor(np.float32(np.clip(photons(store, k) * 1e8 + 10, 0, 65535) + 0.5))
        assert c_adu.max() == 65535  # the scale is fixed: bright pixels clip, as C's noisefile
        np.testing.assert_array_equal(adu, c_adu)
        assert float(header["OSC_START"]) == pytest.approx(PHI0 + k * OSC)


#: A beam off the centre of the detector, no sensor thickness (nanoBragg's default).
OFF_CENTRE = "-N 2 -cell 100 100 100 90 90 90 -default_F 10 -lambda 1.2 -distance 100 " + (
    "-detpixels 64 -pixel 0.1 -Xbeam 2 -Ybeam 4"
)


@pytest.fixture(scope="module")
def off_centre(tmp_path_factory) -> Path:
    """A finished 1-frame 64 x 64 store of :data:`OFF_CENTRE`."""
    out = tmp_path_factory.mktemp("off-centre") / "s.zarr"
    cmd = [
        sys.executable, "-m", "service.cli", "render", "--nanobragg", OFF_CENTRE, "-o",
        str(out), "--in-process", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, timeout=300)
    return out


def test_smv_beam_centre_is_dxtbx_s(off_centre: Path, tmp_path: Path) -> None:
    """dxtbx's FormatSMVJHSim reads the fast beam centre as BEAM_CENTER_X + 1 pixel and the
    slow one as height - BEAM_CENTER_Y + 1 pixel (mm); nanoBragg's MOSFLM beam centre is
    (fast, slow) = (Ybeam, Xbeam) + half a pixel = (4.05, 2.05) mm here."""
    header, _ = parse_smv(export_smv(off_centre, tmp_path, "0")[0])
    assert float(header["BEAM_CENTER_X"]) == pytest.approx(4.05 - 0.1, abs=1e-9)
    assert float(header["BEAM_CENTER_Y"]) == pytest.approx(6.4 - 2.05 + 0.1, abs=1e-9)
    dials_origin = [float(v) for v in header["DIALS_ORIGIN"].split(",")]
    np.testing.assert_allclose(dials_origin, [-4.05, 2.05, -100], atol=1e-9)
    for key, value in (("DENZO_X_BEAM", 2.05), ("DENZO_Y_BEAM", 4.05), ("ADXV_CENTER_X", 4.05)):
        assert float(header[key]) == pytest.approx(value, abs=1e-9)  # C's other lines kept


def test_nexus_without_a_sensor_thickness_has_a_negligible_one(
    off_centre: Path, tmp_path: Path
) -> None:
    """No -detector_thick: a 1e-6 um sensor, as dxtbx's parallax correction needs one > 0."""
    out = tmp_path / "run.nxs"
    assert export(off_centre, "--format", "nexus", "-o", str(out)) == 0
    with h5py.File(out, "r") as f:
        thickness = f["entry/instrument/detector/sensor_thickness"]
        assert thickness[()] == pytest.approx(1e-6) and thickness.attrs["units"] == "um"


def test_float_frames_are_the_photons(store: Path, tmp_path: Path) -> None:
    assert export(store, "--format", "float", "-o", str(tmp_path / "img_#####.bin")) == 0
    for k in range(FRAMES):
        raw = np.fromfile(tmp_path / f"img_{k + 1:05d}.bin", dtype="<f4").reshape(64, 64)
        np.testing.assert_array_equal(raw, photons(store, k).astype(np.float32))


def running(store: Path, tmp_path: Path) -> Path:
    """A copy of ``store`` as a job still rendering leaves it: frame 2 has no tiles yet."""
    copy = tmp_path / "running.zarr"
    shutil.copytree(store, copy)
    writer = TileStore.open(str(copy))
    stats = writer.frame_statistics(2)
    for row in range(2):
        for col in range(2):
            writer.forget_tile(2, row, col)
    writer.set_frame(2, stats, complete=False)
    return copy


def test_export_of_a_running_job_takes_its_finished_frames(
    store: Path, tmp_path: Path, capsys
) -> None:
    partial = running(store, tmp_path)
    assert export(partial, "--format", "float", "-o", str(tmp_path / "f" / "#.bin")) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["1.bin", "2.bin"]
    capsys.readouterr()
    assert (
        export(partial, "--format", "nexus", "-o", str(tmp_path / "r.nxs"), "--frames", "1:3") == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--frames: frame 2 is not finished yet" in err
    assert not (tmp_path / "r.nxs").exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--frames", "2:9"], "--frames"),
        (["--frames", "x"], "--frames"),
        (["--gain", "0"], "--gain"),
        (["--gain", "nan"], "--gain"),
        (["--adc-offset", "inf"], "--adc-offset"),
        (["-o", "{tmp}/img.cbf", "--format", "cbf"], "-o"),
        (["-o", "{tmp}/file/x.nxs"], "-o"),
        (["-o", "/proc/braggtile.nxs"], "-o"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    store: Path, tmp_path: Path, capsys, args: list[str], names: str
) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    base = ["--format", "nexus", "-o", str(tmp_path / "x.nxs")]
    assert export(store, *base, *given) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"braggtile export: error: {names}:"), err


def test_not_a_store_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "plain").write_text("x")
    (tmp_path / "empty").mkdir()
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    for name in ("missing", "plain", "empty", "other.zarr"):
        assert export(tmp_path / name, "--format", "smv", "-o", str(tmp_path / "#.img")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error: STORE:" in err, err


def test_export_does_not_import_torch(store: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from service.cli import main; "
        f"rc = main(['export', {str(store)!r}, '--format', 'nexus', '-o', "
        f"{str(tmp_path / 'n.nxs')!r}, '--no-progress']); "
        "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "n.nxs").stat().st_size > 0
