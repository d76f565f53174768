"""Parity with the C nanoBragg reference images, through the ``braggtile nanobragg`` CLI.

Every case runs under both kernels (eager and compiled fused), never left to ``auto``'s size
threshold; the compiled variants compile a graph per case and dtype, so they are ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.kernel import use_compiled
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame

from kernel_mode import KERNELS, kernel
from reference import FLOORS, case_args, parity, reference_cases, reference_image

STATIC_CASES = [
    "simple_cubic",
    "triclinic_misset",
    "hkl_nearest",
    "tilted_twotheta",
    "xds_convention",
    "dials_convention",
    "adxv_convention",
    "polar_kahn",
    "nopolar_point_pixel",
    "curved_detector",
    "round_xtal",
    "gauss_xtal",
    "tophat_spots",
    "roi_window",
    "rectangular_offcenter",
    "mosflm_matrix",
    "custom_vectors",
    "fluence_flux",
    "dmin_cut",
]
SAMPLING_CASES = [
    "hkl_interpolate",
    "mosaic_domains",
    "phi_oscillation",
    "divergence_dispersion",
    "oversample_thick_abs",
    "water_background",
    "sample_size_crystal",
    "sourcefile",
    "misset_random",
]
#: The full-frame benchmark, checked strip by strip in its own test.
FULL_FRAME_CASE = "seed_benchmark_4096"
#: Cases added to the reference set later (e.g. ``mask_header_gaps``): picked up from its
#: ``cases.json`` as soon as they are there.
NEW_CASES = [
    name
    for name in reference_cases()
    if name not in STATIC_CASES + SAMPLING_CASES and name != FULL_FRAME_CASE
]


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

#: The compiled variants: slow (one compilation per case and dtype).
KERNEL_PARAMS = [
    pytest.param(mode, marks=pytest.mark.slow) if mode == "compiled" else mode for mode in KERNELS
]


def floatfile_through_cli(name: str, dtype: str, folder, mode: str, device: str) -> np.ndarray:
    """The case's ``-floatfile`` pixels, flat, as ``braggtile nanobragg`` writes them."""
    out = folder / f"{name}_{dtype}_{device}.bin"
    argv = case_args(name) + ["-floatfile", str(out), "-dtype", dtype, "-nonoise", "-nopgm"]
    argv += ["-intfile", str(folder / "int.img"), "-noprogress", "-device", device]
    with kernel(mode):
        if mode == "compiled" and not use_compiled(prepare_frame(parse_nanobragg(argv).experiment)):
            pytest.skip(f"{name}: the compiled kernel does not cover this case (eager only)")
        assert main(argv) == 0
    return np.fromfile(out, dtype="<f4")


def render_through_cli(name: str, dtype: str, folder, mode: str, device: str = "cpu") -> np.ndarray:
    ref = reference_image(name)
    return floatfile_through_cli(name, dtype, folder, mode, device).reshape(ref.shape)


def assert_meets_floors(ours: np.ndarray, ref: np.ndarray, dtype: str) -> None:
    p = parity(ours, ref)
    corr, sum_tol, diff_tol = FLOORS[dtype]
    assert p.correlation >= corr, p
    assert abs(p.sum_ratio - 1.0) <= sum_tol, p
    assert p.max_abs_diff_rel <= diff_tol, p


@pytest.mark.parametrize("mode", KERNEL_PARAMS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", STATIC_CASES + SAMPLING_CASES + NEW_CASES)
def test_parity_with_c(name, dtype, mode, in_inputs, capsys):
    ours = render_through_cli(name, dtype, in_inputs, mode)
    assert_meets_floors(ours, reference_image(name), dtype)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", KERNEL_PARAMS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", STATIC_CASES + SAMPLING_CASES + NEW_CASES)
def test_parity_with_c_on_cuda(name, dtype, mode, in_inputs, capsys):
    """Every reference case rendered on the GPU (``-device cuda``) meets the same floors."""
    ours = render_through_cli(name, dtype, in_inputs, mode, device="cuda")
    assert_meets_floors(ours, reference_image(name), dtype)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", KERNELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seed_frame_on_cuda_matches_the_cpu(dtype, mode, in_inputs, capsys):
    """The 4096x4096 seed frame on the GPU against the CPU's eager render of it (which the
    CPU tests hold to C), within the parity floors; needs only the case's arguments."""
    cpu = floatfile_through_cli(FULL_FRAME_CASE, dtype, in_inputs, "eager", "cpu")
    cuda = floatfile_through_cli(FULL_FRAME_CASE, dtype, in_inputs, mode, "cuda")
    assert cuda.size == 4096 * 4096
    assert_meets_floors(cuda, cpu, dtype)


@pytest.mark.slow
@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])]
)
@pytest.mark.parametrize("mode", KERNELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seed_benchmark_full_frame(dtype, mode, device, in_inputs, capsys):
    """The full 4096x4096 frame, with every edge and corner strip checked on its own."""
    name = FULL_FRAME_CASE
    ours = render_through_cli(name, dtype, in_inputs, mode, device)
    ref = reference_image(name)
    corr, sum_tol, diff_tol = FLOORS[dtype]
    p = parity(ours, ref)
    assert p.meets(corr, sum_tol, diff_tol), p
    peak = float(np.abs(ref).max())
    strips = {
        "top": np.s_[:64, :],
        "bottom": np.s_[-64:, :],
        "left": np.s_[:, :64],
        "right": np.s_[:, -64:],
    }
    for where, sl in strips.items():
        s = parity(ours[sl], ref[sl])
        assert s.correlation >= corr, (where, s)
        assert abs(s.sum_ratio - 1.0) <= sum_tol, (where, s)
        assert float(np.abs(ours[sl] - ref[sl]).max()) <= diff_tol * peak, (where, s)
