"""The last C flags: ``-mask`` and ``-img`` (SMV header geometry, masked pixels), ``-stol``,
``-4stol``, ``-Q``, ``-stolout`` (read as C reads them, unused) and ``-source_dist``."""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from engine.cli import main
from engine.geometry import detector_geometry
from engine.resolve import parse_nanobragg
from engine.sources import beam_sources

from smv_files import smv_bytes

ROOT = Path(__file__).resolve().parents[1]
CRYSTAL = ["-cell", "50", "60", "70", "90", "90", "90", "-misset", "10", "5", "3", "-N", "4"]
CRYSTAL += ["-default_F", "100"]
FAST, SLOW = 300, 200
#: Header values of the test files, in the flags' units (mm, Angstrom, degrees).
HEADER = {
    "SIZE1": FAST,
    "SIZE2": SLOW,
    "PIXEL_SIZE": 0.15,
    "DISTANCE": 90,
    "WAVELENGTH": 1.3,
    "BEAM_CENTER_X": 14.2,
    "BEAM_CENTER_Y": 21.7,
    "PHI": 3,
    "OSC_RANGE": 0.4,
}
#: The same geometry as flags (-img takes BEAM_CENTER_Y as -Ybeam).
SAME_AS_FLAGS = "-detpixels_f 300 -detpixels_s 200 -pixel 0.15 -distance 90 -lambda 1.3 "
SAME_AS_FLAGS += "-Xbeam 14.2 -Ybeam 21.7 -phi 3 -osc 0.4"


def gap_mask() -> np.ndarray:
    """1 everywhere but a band of rows, a band of columns and a few single pixels (0)."""
    mask = np.ones((SLOW, FAST), dtype=np.uint16)
    mask[120:127, :] = 0
    mask[:, 30:41] = 0
    mask[5, 7] = mask[199, 299] = mask[0, 150] = 0
    mask[60, 200] = 65535  # any non-zero value renders
    return mask


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gaps.img").write_bytes(smv_bytes(HEADER, gap_mask()))
    return tmp_path


def experiment(args: str):
    return parse_nanobragg(shlex.split(args) + CRYSTAL).experiment


def render(args: str, folder: Path, name: str, capsys) -> tuple[np.ndarray, str]:
    out = folder / f"{name}.bin"
    argv = shlex.split(args) + CRYSTAL + ["-floatfile", str(out), "-nonoise", "-nopgm"]
    argv += ["-intfile", str(folder / f"{name}.img"), "-noprogress", "-dtype", "float64"]
    argv += ["-nocompile"]
    assert main(argv) == 0
    log = capsys.readouterr().out
    return np.fromfile(out, dtype="<f4").reshape(SLOW, FAST), log


def test_help_lists_every_c_flag_and_none_unsupported(capsys):
    assert main(["-help"]) == 0
    text = capsys.readouterr().out
    assert "unsupported" not in text
    for flag in ("-mask", "-img", "-stol", "-4stol", "-Q", "-stolout", "-source_dist"):
        assert re.search(rf"^  (\S+, )*{re.escape(flag)}[ ,]", text, re.MULTILINE), flag


def test_img_geometry_equals_the_same_flags(files):
    from_header = experiment("-img gaps.img")
    from_flags = experiment(SAME_AS_FLAGS)
    assert from_header == from_flags
    geo = detector_geometry(from_header)
    assert (geo.fast_pixels, geo.slow_pixels, geo.pixel_size) == (FAST, SLOW, 0.15 / 1000.0)
    assert from_header.sampling.mask_file is None  # -img takes the header only


def test_flags_win_over_the_header_wherever_they_stand(files):
    exp = experiment("-distance 120 -img gaps.img -lambda 1.1 -detpixels_s 64")
    assert exp.detector.distance_mm == 120 and exp.beam.wavelength_A == 1.1
    assert (exp.detector.fast_pixels, exp.detector.slow_pixels) == (FAST, 64)
    assert exp.detector.pixel_size_mm == 0.15


def test_img_needs_only_the_header(files):
    (files / "head.img").write_bytes(smv_bytes(HEADER, np.zeros((0, 0))))
    assert experiment("-img head.img") == experiment(SAME_AS_FLAGS)


def test_header_keywords_are_found_as_c_finds_them(files):
    """C takes the value after the last occurrence: DISTANCE finds CLOSE_DISTANCE, ORGX finds
    XDS_ORGX; TWOTHETA lands in C's per-pixel scratch variable, not the detector."""
    header = HEADER | {"XDS_ORGX": 101.5, "XDS_ORGY": 77.25, "CLOSE_DISTANCE": 95.0}
    header |= {"TWOTHETA": 20}
    (files / "x.img").write_bytes(smv_bytes(header, np.ones((SLOW, FAST))))
    det = experiment("-img x.img").detector
    assert (det.distance_mm, det.close_distance_mm) == (95.0, 95.0)
    assert (det.orgx, det.orgy) == (101.5, 77.25)
    assert det.twotheta_deg == 0.0 and det.pivot is None
    geo = detector_geometry(experiment("-img x.img"))
    assert geo.distance == 95.0 / 1000.0
    assert geo.xclose == (101.5 - 0.5) * (0.15 / 1000.0)  # C: (ORGX - 0.5) * pixel_size
    assert geo.yclose == (77.25 - 0.5) * (0.15 / 1000.0)


def test_mask_beam_centre_y_is_taken_from_the_detector_height(files):
    """-mask (not -img) sets C's Ybeam to detsize_s - BEAM_CENTER_Y/1000."""
    geo = detector_geometry(experiment("-mask gaps.img"))
    pixel = 0.15 / 1000.0
    assert geo.ybeam == pixel * SLOW - 21.7 / 1000.0
    assert geo.xbeam == 14.2 / 1000.0
    assert geo.fbeam == geo.ybeam + 0.5 * pixel  # MOSFLM: Fbeam = Ybeam + half a pixel


def test_masked_pixels_stay_0_and_the_rest_is_the_unmasked_render(files, capsys):
    (files / "ones.img").write_bytes(smv_bytes(HEADER, np.ones((SLOW, FAST))))  # same geometry
    masked, log = render("-mask gaps.img", files, "masked", capsys)
    plain, _ = render("-mask ones.img", files, "plain", capsys)
    keep = gap_mask() != 0
    assert plain[~keep].min() > 0, "the masked pixels have signal without the mask"
    assert (masked[~keep] == 0).all()
    np.testing.assert_array_equal(masked[keep], plain[keep])
    # C's statistics: sum, mean and rms over the rendered pixels, rmsd over all of them
    x = plain[keep].astype(np.float64)
    mean, rms = x.sum() / x.size, math.sqrt((x * x).sum() / (x.size - 1))
    rmsd = math.sqrt(((masked.astype(np.float64) - mean) ** 2).sum() / (masked.size - 1))
    printed = re.search(r"mean= (\S+) rms= (\S+) rmsd= (\S+)", log).groups()
    assert [float(v) for v in printed] == [float(f"{v:.6g}") for v in (mean, rms, rmsd)]
    assert "skipping zero-flagged pixels in gaps.img" in log


def test_a_tiled_render_leaves_masked_pixels_0_in_every_tile(files, capsys):
    masked, _ = render("-mask gaps.img", files, "masked", capsys)
    out = files / "m.zarr"
    args = shlex.join(["-mask", str(files / "gaps.img"), *CRYSTAL])
    cmd = [
        sys.executable, "-m", "tiling", "render", "--nanobragg", args, "-o", str(out),
        "--tile", "128", "--dtype", "float64", "--in-process", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=files, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    store = zarr.open_group(str(out), mode="r")
    tiled = np.asarray(store["0"][0])
    keep = gap_mask() != 0
    assert (tiled[~keep] == 0).all()
    assert np.abs(tiled - masked).max() <= 1e-6 * masked.max()
    stats = store.attrs["braggtile"]["frames"]["0"]["statistics"]
    x = tiled[keep].astype(np.float64)
    mean = x.sum() / x.size
    rmsd = math.sqrt(((tiled.astype(np.float64) - mean) ** 2).sum() / (tiled.size - 1))
    assert stats["pixels"] == int(keep.sum())
    assert stats["max_I"] == float(x.max())
    assert math.isclose(stats["mean"], mean, rel_tol=1e-12)
    assert math.isclose(stats["rmsd"], rmsd, rel_tol=1e-12)


@pytest.mark.parametrize("flag", ["-stol", "-4stol", "-Q"])
def test_amorphous_tables_are_read_and_change_nothing(flag, files):
    (files / "water.stol").write_text("0.0 2.57\n\n0.1 2.0\n0.2 1.5\n")
    base = "-detpixels 32 -lambda 1 -distance 80"
    assert experiment(f"{base} {flag} water.stol") == experiment(base)


def test_stolout_is_accepted_and_never_written(files, capsys):
    argv = [*CRYSTAL, "-detpixels", "16", "-stolout", "out.stol", "-floatfile", "f.bin"]
    assert main([*argv, "-nonoise", "-nopgm", "-noprogress", "-nocompile"]) == 0
    assert (files / "f.bin").is_file() and not (files / "out.stol").exists()


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of v about the unit axis by angle (radians)."""
    return (
        v * math.cos(angle)
        + np.cross(axis, v) * math.sin(angle)
        + axis * (axis @ v) * (1 - math.cos(angle))
    )


def test_source_dist_sets_the_divergence_source_positions(files):
    """C: each source at -source_distance * beam, rotated by vdiv about the E-vector and by
    hdiv about beam x E-vector; -source_dist is in mm (C divides by 1000)."""
    args = "-detpixels 32 -hdivrange 2 -hdivstep 0.5 -hdivsteps 5 -vdivrange 1 -vdivstep 0.5 "
    args += "-vdivsteps 3 -source_dist 2500"
    exp = experiment(args)
    geo = detector_geometry(exp)
    src = beam_sources(exp.beam, geo.beam, geo.polar)
    beam, polar = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])  # MOSFLM
    vert = np.cross(beam, polar)
    h_range, h_step, v_range, v_step = 2e-3, 0.5e-3, 1e-3, 0.5e-3
    expected = []
    for h in range(5):
        for v in range(3):
            hdiv, vdiv = h_step * h - h_range / 2.0, v_step * v - v_range / 2.0
            test = hdiv * hdiv / h_range / h_range + vdiv * vdiv / v_range / v_range
            if test * 4.0 > 1.1:  # C's elliptical trim (odd step counts)
                continue
            expected.append(_rotate(_rotate(-2.5 * beam, polar, vdiv), vert, hdiv))
    assert 1 < len(expected) < 15
    np.testing.assert_allclose(src.positions_m, expected, rtol=0, atol=1e-15)
    default = beam_sources(experiment(args.replace("2500", "10000")).beam, geo.beam, geo.polar)
    np.testing.assert_allclose(default.positions_m * 0.25, src.positions_m, rtol=1e-15)


def test_source_dist_places_sourcefile_sources_without_a_position(files):
    (files / "src.txt").write_text("nan nan nan 1 1e-10\n")
    exp = experiment("-detpixels 32 -sourcefile src.txt -source_dist 3000")
    assert exp.beam.sources[0].position == (-3.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "content, args, flag, words",
    [
        (None, "-mask missing.img", "-mask", "cannot read"),
        (b"P5 not an smv file".ljust(600), "-mask bad.img", "-mask", "SMV"),
        (b"{ not an smv header".ljust(600), "-img bad.img", "-img", "SMV"),
        (b"{\nHEADER_BYTES=512;", "-img bad.img", "-img", "shorter than an SMV header"),
        (b"{\nHEADER_BYTES=512;\nSIZE1=300;\nSIZE2=200;\n}".ljust(512), "-mask bad.img", "-mask",
         "bytes"),
        (b"{\nHEADER_BYTES=512;\n}".ljust(512), "-mask bad.img", "-mask", "SIZE1"),
        ("gaps", "-mask gaps.img -detpixels 100", "-mask", "300x200"),
        (smv_bytes(HEADER | {"PIXEL_SIZE": 0}, gap_mask()), "-img bad.img", "-img", "PIXEL"),
        (b"", "-stol bad.img", "-stol", "no data"),
        (b"\n  \n", "-Q bad.img", "-Q", "no data"),
        (None, "-4stol missing.stol", "-4stol", "cannot read"),
        (None, "-source_dist 0", "-source_dist", "> 0"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors_with_status_2(content, args, flag, words, files, capsys):
    if isinstance(content, bytes):
        (files / "bad.img").write_bytes(content)
    assert main(shlex.split(args) + CRYSTAL + ["-noprogress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and words in err, err
