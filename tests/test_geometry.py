"""Derived detector geometry against the numbers C nanoBragg printed for each convention."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine.geometry import detector_geometry
from engine.lattice import build_lattice
from engine.model import Convention
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame

from reference import case_args, need_file, reference_log

GEOMETRY_CASES = [
    "simple_cubic",
    "tilted_twotheta",
    "xds_convention",
    "dials_convention",
    "adxv_convention",
    "custom_vectors",
    "rectangular_offcenter",
    "curved_detector",
    "roi_window",
]


def log_numbers(log: str, key: str) -> list[float]:
    m = re.search(re.escape(key) + r"\s*=?\s*([-+0-9.eE ]+)", log)
    assert m, key
    return [float(x) for x in m.group(1).split()]


def log_pair(log: str, first: str, second: str) -> tuple[float, float]:
    m = re.search(rf"{first}=([-+0-9.eE]+) {second}=([-+0-9.eE]+)", log)
    assert m, first
    return float(m.group(1)), float(m.group(2))


def close(ours: float, printed: float) -> bool:
    """Equal to the 6 significant digits of C's %g."""
    return abs(ours - printed) <= 5e-6 * max(abs(printed), 1e-12) + 1e-12


@pytest.mark.parametrize("name", GEOMETRY_CASES)
def test_geometry_matches_c_log(name, in_inputs):
    log = reference_log(name)
    geo = detector_geometry(parse_nanobragg(case_args(name)).experiment)
    conv = re.search(r"(\w+) convention selected", log).group(1)
    assert geo.convention is Convention(conv.upper())
    pivot = "SAMPLE" if "pivoting detector around sample" in log else "BEAM"
    assert geo.pivot.value == pivot
    for ours, printed in zip(
        (geo.fbeam, geo.sbeam, geo.fclose, geo.sclose, geo.xbeam, geo.ybeam),
        log_pair(log, "Fbeam", "Sbeam")
        + log_pair(log, "Fclose", "Sclose")
        + log_pair(log, "Xbeam", "Ybeam"),
        strict=True,
    ):
        assert close(ours, printed), (name, ours, printed)
    assert close(geo.distance, log_numbers(log, "  distance")[0])
    for key, vec in (
        ("DIRECTION_OF_DETECTOR_X-AXIS", geo.fdet),
        ("DIRECTION_OF_DETECTOR_Y-AXIS", geo.sdet),
        ("DIRECTION_OF_DETECTOR_Z-AXIS", geo.odet),
        ("INCIDENT_BEAM_DIRECTION", geo.beam),
        ("spindle ROTATION_AXIS", geo.spindle),
        ("dials origin", np.array(geo.dials_origin)),
    ):
        printed = log_numbers(log, key)
        assert np.allclose(vec, printed, rtol=5e-6, atol=5e-6), (key, vec, printed)
    # pix0 and the XDS origin follow from the close point
    assert np.isclose(geo.orgx, geo.fclose / geo.pixel_size + 0.5)
    assert np.allclose(-geo.pix0 @ geo.fdet, geo.fclose)
    assert np.allclose(geo.pix0 @ geo.odet, geo.close_distance)


def test_xds_orgx_from_smv_header():
    """simple_cubic's SMV header carries C's XDS_ORGX/ORGY and close distance."""
    header = need_file("formats/simple_cubic_int.img").read_bytes()[:512]
    text = header.decode("ascii", "replace")
    orgx = float(re.search(r"XDS_ORGX=([-0-9.e+]+);", text).group(1))
    orgy = float(re.search(r"XDS_ORGY=([-0-9.e+]+);", text).group(1))
    close_mm = float(re.search(r"CLOSE_DISTANCE=([-0-9.e+]+);", text).group(1))
    geo = detector_geometry(parse_nanobragg(case_args("simple_cubic")).experiment)
    assert close(geo.orgx, orgx) and close(geo.orgy, orgy)
    assert close(geo.close_distance * 1000, close_mm)


@pytest.mark.parametrize("name", ["triclinic_misset", "mosflm_matrix", "xds_convention"])
def test_cell_vectors_match_c_log(name, in_inputs):
    log = reference_log(name)
    run = parse_nanobragg(case_args(name))
    misset = run.experiment.crystal.misset_deg
    lat = build_lattice(
        run.experiment.crystal,
        run.experiment.beam.wavelength_A,
        tuple(np.radians(misset)) if misset else None,
    )
    block = log.split("real-space cell vectors (Angstrom):")[1].splitlines()[2:5]
    printed = np.array([[float(x) for x in line.split()[1:]] for line in block])
    ours = np.stack([lat.a, lat.b, lat.c], axis=1) * 1e10
    assert np.allclose(ours, printed, atol=2e-8), (ours, printed)


def test_rectangular_detector_axes_not_swapped(in_inputs):
    """640 fast x 400 slow: the image is 400 rows of 640, and the beam centre is per axis."""
    run = parse_nanobragg(case_args("rectangular_offcenter"))
    setup = prepare_frame(run.experiment)
    geo = setup.detector
    assert (geo.fast_pixels, geo.slow_pixels) == (640, 400)
    assert np.isclose(geo.detsize_f, 0.064) and np.isclose(geo.detsize_s, 0.040)
    # MOSFLM: Fbeam = Ybeam + px/2, Sbeam = Xbeam + px/2
    assert np.isclose(geo.fbeam, 0.015 + 0.00005) and np.isclose(geo.sbeam, 0.020 + 0.00005)


def _geo(extra: list[str]):
    base = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1", "-detpixels", "100"]
    return detector_geometry(parse_nanobragg(base + extra).experiment)


def test_denzo_beam_centre_has_no_half_pixel_shift():
    mosflm = _geo(["-mosflm", "-Xbeam", "5", "-Ybeam", "6"])
    denzo = _geo(["-denzo", "-Xbeam", "5", "-Ybeam", "6"])
    assert np.isclose(mosflm.fbeam, 0.006 + 0.00005) and np.isclose(mosflm.sbeam, 0.005 + 0.00005)
    assert np.isclose(denzo.fbeam, 0.006) and np.isclose(denzo.sbeam, 0.005)
    assert np.allclose(
        denzo.pix0, -denzo.fbeam * denzo.fdet - denzo.sbeam * denzo.sdet + [0.1, 0, 0]
    )


def test_explicit_pix0_vector_is_used():
    geo = _geo(["-pix0_vector", "0.1", "0.004", "-0.006"])
    assert geo.convention is Convention.CUSTOM
    assert np.allclose(geo.pix0, [0.1, 0.004, -0.006])
    # the direct beam (along x) hits 6 mm along fast (z) and 4 mm along slow (-y)
    assert np.isclose(geo.fbeam, 0.006) and np.isclose(geo.sbeam, 0.004)


def test_sample_pivot_keeps_close_point_under_twotheta():
    flat = _geo(["-pivot", "sample", "-fdet_vector", "0", "0", "1"])
    swung = _geo(["-pivot", "sample", "-fdet_vector", "0", "0", "1", "-twotheta", "20"])
    assert swung.pivot.value == "SAMPLE"
    assert np.isclose(swung.close_distance, flat.close_distance)
    assert np.isclose(np.degrees(np.arccos(swung.odet @ flat.odet)), 20.0)
