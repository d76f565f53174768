"""SMV, PGM and float output against the C nanoBragg reference files (case simple_cubic)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine.smv import (
    SMVHeader,
    c_g,
    int_image,
    pgm_scale_for,
    read_smv,
    smv_header_bytes,
    write_float_image,
    write_pgm,
    write_smv,
)
from engine.statistics import TileStatistics
from engine.window import Window

from reference import need_file

SIDE = 1024


@pytest.fixture(scope="module")
def float_image() -> np.ndarray:
    path = need_file("images/simple_cubic.bin")
    return np.fromfile(path, dtype="<f4").reshape(SIDE, SIDE)


@pytest.fixture(scope="module")
def c_log() -> str:
    return need_file("formats/simple_cubic_formats.log").read_text()


def _log_number(log: str, pattern: str) -> str:
    match = re.search(pattern, log)
    assert match, f"pattern {pattern!r} not in the C log"
    return match.group(1)


def simple_cubic_header() -> SMVHeader:
    """The header numbers of simple_cubic as C derives them (mm, from metres as in C)."""
    pixel, detsize_s = 0.1e-3, 0.1024
    xbeam = ybeam = 0.05125
    fbeam = sbeam = 0.0513
    return SMVHeader(
        fast_pixels=SIDE,
        slow_pixels=SIDE,
        pixel_size_mm=pixel * 1000.0,
        distance_mm=100.0,
        wavelength_A=6.2e-10 * 1e10,
        beam_center_x_mm=xbeam * 1000.0,
        beam_center_y_mm=ybeam * 1000.0,
        adxv_center_x_mm=fbeam * 1000.0,
        adxv_center_y_mm=(detsize_s - sbeam) * 1000.0,
        mosflm_center_x_mm=(sbeam - 0.5 * pixel) * 1000.0,
        mosflm_center_y_mm=(fbeam - 0.5 * pixel) * 1000.0,
        denzo_x_beam_mm=sbeam * 1000.0,
        denzo_y_beam_mm=fbeam * 1000.0,
        dials_origin_mm=(-51.3, 51.3, -100.0),
        xds_orgx=513.5,
        xds_orgy=513.5,
        close_distance_mm=100.0,
        phi_deg=0.0,
        osc_start_deg=0.0,
        osc_range_deg=0.0,
        twotheta_deg=0.0,
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1e-4, "0.0001"),
        (1e-5, "1e-05"),
        (123456.5, "123456"),
        (1234567.0, "1.23457e+06"),
        (999999.5, "1e+06"),
        (51.099999999999994, "51.1"),
        (6.200000000000001, "6.2"),
        (1e100, "1e+100"),
        (-1.5e-7, "-1.5e-07"),
        (100000.0, "100000"),
        (float("inf"), "inf"),
        (float("nan"), "nan"),
    ],
)
def test_c_g_matches_glibc_printf(value: float, text: str) -> None:
    assert c_g(value) == text


def frame_stats(image: np.ndarray):
    return TileStatistics.from_tile(image, Window.full(*image.shape)).summary()


def test_smv_header_is_c_header_byte_for_byte() -> None:
    expected = need_file("formats/simple_cubic_int.img").read_bytes()[:512]
    header = smv_header_bytes(simple_cubic_header())
    assert len(header) == 512
    assert header == expected
    assert b"DIALS_ORIGIN=-51.3,51.3,-100\nXDS_ORGX" in header


def test_stats_and_autoscale_match_c_log(float_image: np.ndarray, c_log: str) -> None:
    stats = frame_stats(float_image)
    assert c_g(stats.max_I) == _log_number(c_log, r"max_I = (\S+)")
    assert c_g(stats.mean) == _log_number(c_log, r"mean= (\S+)")
    assert c_g(stats.rms) == _log_number(c_log, r"rms= (\S+)")
    assert c_g(stats.rmsd) == _log_number(c_log, r"rmsd= (\S+)")
    _, scale = int_image(float_image)
    assert c_g(scale) == _log_number(c_log, r"intfile_scale = (\S+)")


def test_intfile_matches_c(float_image: np.ndarray, tmp_path: Path) -> None:
    c_header, c_pixels = read_smv(need_file("formats/simple_cubic_int.img"))
    image, _ = int_image(float_image, scale=None)
    out = tmp_path / "int.img"
    write_smv(out, image, simple_cubic_header())
    header, pixels = read_smv(out)
    assert header == c_header
    assert pixels.shape == (SIDE, SIDE) and pixels.dtype == np.uint16
    assert np.abs(pixels.astype(np.int32) - c_pixels.astype(np.int32)).max() <= 1
    assert out.stat().st_size == 512 + 2 * SIDE * SIDE


def test_pgm_matches_c(float_image: np.ndarray, c_log: str, tmp_path: Path) -> None:
    c_bytes = need_file("formats/simple_cubic.pgm").read_bytes()
    stats = frame_stats(float_image)
    _, int_scale = int_image(float_image)
    out = tmp_path / "image.pgm"
    scale = write_pgm(out, float_image, None, stats.rmsd, int_scale)
    assert c_g(scale) == _log_number(c_log, r"pgm_scale = (\S+)")
    data = out.read_bytes()
    head = f"P5\n{SIDE} {SIDE}\n# pixels scaled by {c_g(scale)}\n255\n".encode()
    assert data[: len(head)] == c_bytes[: len(head)] == head
    assert len(data) == len(c_bytes)
    mine = np.frombuffer(data[len(head) :], dtype=np.uint8).astype(np.int32)
    theirs = np.frombuffer(c_bytes[len(head) :], dtype=np.uint8).astype(np.int32)
    assert np.abs(mine - theirs).max() <= 1


def test_float_image_round_trip(float_image: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "float.bin"
    write_float_image(out, float_image.astype(np.float64))
    back = np.fromfile(out, dtype="<f4").reshape(SIDE, SIDE)
    np.testing.assert_array_equal(back, float_image)


def test_int_image_rules() -> None:
    zeros = np.zeros((3, 4), dtype=np.float32)
    image, scale = int_image(zeros)
    assert scale == 1.0 and (image == 40).all()
    values = np.array([[0.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    image, scale = int_image(values, scale=40000.0)
    assert scale == 40000.0
    assert image.tolist() == [[40, 40040], [65535, 0]]
    image, scale = int_image(values, scale=0.0, adc_offset=10.0)
    assert scale == 27500.0 and image[0, 1] == 27510
    roi = np.array([[True, True], [False, True]])
    image, scale = int_image(values, roi_mask=roi)
    assert scale == 55000.0 and image[1, 0] == 0
    _, scale = int_image(values, max_i=11.0)
    assert scale == 5000.0


def test_pgm_scale_rule() -> None:
    assert pgm_scale_for(2.5, 7.0, 3.0) == 2.5
    assert pgm_scale_for(None, 5.0, 3.0) == 10.0
    assert pgm_scale_for(-1.0, 0.0, 3.0) == 3.0


def test_pgm_truncates_and_saturates(tmp_path: Path) -> None:
    out = tmp_path / "small.pgm"
    values = np.array([[0.99, 1.99, 300.0, -4.0]], dtype=np.float32)
    write_pgm(out, values, 1.0, 0.0, 1.0)
    data = out.read_bytes()
    assert data.startswith(b"P5\n4 1\n# pixels scaled by 1\n255\n")
    assert list(data[-4:]) == [0, 1, 255, 0]


def test_write_errors_are_clear(tmp_path: Path) -> None:
    header = simple_cubic_header()
    image = np.zeros((SIDE, SIDE), dtype=np.uint16)
    with pytest.raises(FileNotFoundError, match="cannot write SMV image"):
        write_smv(tmp_path / "missing" / "x.img", image, header)
    with pytest.raises(IsADirectoryError, match="cannot write PGM image"):
        write_pgm(tmp_path, np.zeros((2, 2)), 1.0, 0.0, 1.0)
    with pytest.raises(TypeError, match="uint16"):
        write_smv(tmp_path / "x.img", image.astype(np.int32), header)
    with pytest.raises(ValueError, match="does not match header"):
        write_smv(tmp_path / "x.img", image[:10], header)
    with pytest.raises(ValueError, match="2-D"):
        write_float_image(tmp_path / "x.bin", np.zeros(5))


def test_read_smv_rejects_bad_files(tmp_path: Path) -> None:
    not_smv = tmp_path / "a.img"
    not_smv.write_bytes(b"P5\n1 1\n255\n\0")
    with pytest.raises(ValueError, match="not an SMV file"):
        read_smv(not_smv)
    truncated = tmp_path / "b.img"
    truncated.write_bytes(smv_header_bytes(simple_cubic_header()) + b"\0\0")
    with pytest.raises(ValueError, match="expected"):
        read_smv(truncated)
