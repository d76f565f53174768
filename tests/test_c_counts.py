"""Every integer C nanoBragg derives from floating point (a ceil, a floor, a count) equals
the one braggtile derives, for every reference case: read from the C logs, not recomputed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from engine.plan import plan
from engine.scan import resolve_phi
from engine.setup import prepare_frame, resolve_mosaic
from engine.sources import beam_sources
from engine.window import Window
from service.steps import pixel_work

from reference import case_args, reference_log, require_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cases() -> list[str]:
    try:
        ref = require_reference()
    except pytest.skip.Exception:
        return []
    return sorted(json.loads((ref / "cases.json").read_text()))


def _experiment(name: str):
    from engine.resolve import parse_nanobragg

    return parse_nanobragg(case_args(name)).experiment


def c_counts(log: str) -> dict[str, tuple[int, ...]]:
    """The integers C printed: cell counts, oversampling, pixels, steps, layers, roi."""
    patterns = {
        "cells": r"xtal: (\d+)x(\d+)x(\d+) cells",
        "oversample": r"^\s*(\d+)x\d+ pixel oversample steps",
        "pixels": r"meters \((\d+)x(\d+) pixels\)",
        "phi_steps": r"^\s*(\d+) phi steps from",
        "mosaic_domains": r"^\s*(\d+) mosaic domains over",
        "sources": r"^\s*(\d+) sources$",
        "divergence_steps": r"^\s*(-?\d+) divergence steps",
        "wavelength_steps": r"meters \+/- \S+% in (\d+) steps",
        "layers": r"thick in (\d+) layers",
        "roi": r"roi: (\d+) < x < (\d+) && (\d+) < y < (\d+)",
    }
    found = {}
    for key, pattern in patterns.items():
        m = re.search(pattern, log, re.MULTILINE)
        assert m is not None, f"C log has no {key!r} line ({pattern})"
        found[key] = tuple(int(g) for g in m.groups())
    return found


def braggtile_counts(exp) -> dict[str, tuple[int, ...]]:
    setup = prepare_frame(exp)
    lat, geo = setup.lattice, setup.detector
    if exp.beam.sources:  # C prints -1 divergence steps and 1 wavelength for a source file
        divsteps, dispsteps = -1, 1
    else:
        src = beam_sources(exp.beam, geo.beam, geo.polar)
        divsteps, dispsteps = src.divsteps, src.count // src.divsteps
    return {
        "divergence_steps": (divsteps,),
        "wavelength_steps": (dispsteps,),
        "cells": (lat.na, lat.nb, lat.nc),
        "oversample": (setup.oversample,),
        "pixels": (geo.fast_pixels, geo.slow_pixels),
        "phi_steps": (resolve_phi(exp.scan)[3],),
        "mosaic_domains": (resolve_mosaic(exp)[1],),
        "sources": (setup.n_sources,),
        "layers": (setup.sensor.layers,),
        "roi": c_roi(exp, setup),
    }


def c_roi(exp, setup) -> tuple[int, int, int, int]:
    """The ROI as C prints it (inclusive x/fast and y/slow limits; the detector size when
    unset), after checking that the rendered window is its half-open, clipped form."""
    geo, roi = setup.detector, exp.sampling.roi
    if roi is None:
        assert setup.roi == Window(0, geo.slow_pixels, 0, geo.fast_pixels)
        return (0, geo.fast_pixels, 0, geo.slow_pixels)
    clipped = Window(
        roi.ymin, min(roi.ymax + 1, geo.slow_pixels), roi.xmin, min(roi.xmax + 1, geo.fast_pixels)
    )
    assert setup.roi == clipped
    return (roi.xmin, roi.xmax, roi.ymin, roi.ymax)


@pytest.mark.parametrize("name", _cases())
def test_counts_match_c_log(name, in_inputs):
    expected = c_counts(reference_log(name))
    got = braggtile_counts(_experiment(name))
    assert got == expected


@pytest.mark.parametrize("name", _cases())
def test_torch_free_plan_counts_match_c_log(name, in_inputs):
    """The frame plan (what the service counts a job's work with) has C's loop counts."""
    expected = c_counts(reference_log(name))
    exp = _experiment(name)
    frame = plan(exp)
    got = {
        "cells": (frame.lattice.na, frame.lattice.nb, frame.lattice.nc),
        "oversample": (frame.oversample,),
        "phi_steps": (frame.phisteps,),
        "mosaic_domains": (frame.mosaic_domains,),
        "sources": (frame.source_count(),),
        "layers": (frame.sensor.layers,),
    }
    assert got == {key: expected[key] for key in got}
    work = pixel_work(exp)
    assert work.steps == frame.steps * frame.sensor.layers
    assert work.steps == (
        expected["sources"][0]
        * expected["phi_steps"][0]
        * expected["mosaic_domains"][0]
        * expected["oversample"][0] ** 2
        * expected["layers"][0]
    )


def test_sample_size_cells_are_c_s():
    """ceil(size / |b|) with size / |b| within an ulp of 80: C prints 80x81x80."""
    counts = c_counts(reference_log("sample_size_crystal"))
    assert counts["cells"] == (80, 81, 80)
    lat = prepare_frame(_experiment("sample_size_crystal")).lattice
    assert (lat.na, lat.nb, lat.nc) == counts["cells"]


_PROBE = (
    "from engine.resolve import parse_nanobragg; from engine.setup import prepare_frame; "
    "import sys; s = prepare_frame(parse_nanobragg(sys.argv[1:]).experiment); "
    "print(s.lattice.na, s.lattice.nb, s.lattice.nc, s.oversample)"
)


@pytest.mark.parametrize(
    "env",
    [
        {"OPENBLAS_CORETYPE": "Haswell"},
        {"OPENBLAS_CORETYPE": "SkylakeX"},
        {"OPENBLAS_CORETYPE": "Prescott"},
        {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX AVX2 FMA3"},
    ],
    ids=lambda e: "-".join(f"{k}={v.split()[0]}" for k, v in e.items()),
)
def test_cell_counts_do_not_depend_on_blas_or_simd_path(env):
    """The same counts whichever BLAS kernel or SIMD path numpy picks on this CPU."""
    counts = c_counts(reference_log("sample_size_crystal"))
    environ = {**os.environ, **env, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *case_args("sample_size_crystal")],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    na, nb, nc, oversample = (int(x) for x in out.stdout.split())
    assert (na, nb, nc) == counts["cells"]
    assert oversample == counts["oversample"][0]


# Values where C's double arithmetic and a naive formula round to different integers. C
# (nanoBragg.c): detsize_f = atof(mm)/1000.0, pixel_size = atof(mm)/1000.0, then
# fpixels = ceil(detsize_f/pixel_size - 0.5); osc = atof(deg)/RTD, phistep = atof(deg)/RTD,
# then phisteps = ceil(osc/phistep). In exact arithmetic 1.05/0.1 - 0.5 = 10 and 0.45/0.09 = 5.
@pytest.mark.parametrize(
    "detsize, pixel, pixels", [("1.05", "0.1", 11), ("0.43", "0.172", 3), ("2.45", "0.1", 25)]
)
def test_detsize_gives_c_s_pixel_count(detsize, pixel, pixels):
    from engine.cli_args import parse_args

    det = parse_args(["-detsize", detsize, "-pixel", pixel]).detector
    assert det["fast_pixels"] == det["slow_pixels"] == pixels


@pytest.mark.parametrize("osc, step, steps", [("0.45", "0.09", 6), ("0.55", "0.05", 12)])
def test_phi_steps_are_c_s(osc, step, steps):
    from engine.resolve import parse_nanobragg

    args = ["-cell", "50", "50", "50", "90", "90", "90", "-default_F", "1"]
    exp = parse_nanobragg(args + ["-osc", osc, "-phistep", step]).experiment
    assert resolve_phi(exp.scan)[3] == steps
