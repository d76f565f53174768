"""The compiled kernel agrees with the same block function run eagerly; fallbacks work.

Tiny detectors keep compilation the only real cost (a couple of graphs, cached on disk by
inductor across runs). Speed is measured by ``braggtile bench``, never asserted here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import dask.config
import numpy as np
import pytest
import torch

from engine import Window, config, kernel, prepare_frame, render_window
from engine.frame import orientation_bucket
from engine.model import CrystalShape
from engine.physics import lattice_transform, sincg
from engine.resolve import parse_nanobragg

# Many features in one frame, so one compiled graph covers them: 2 sources x 2 mosaic
# domains x 2x2 sub-pixels x 2 sensor layers, Kahn polarization, a resolution cut.
FEATURES_F32 = (
    "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 5 -misset 3 7 11"
    " -mosaic 1.0 -mosaic_domains 2 -mosaic_seed 1234 -hdivrange 0.5 -hdivsteps 2"
    " -oversample 2 -detector_thick 300 -detector_abs 500 -detector_thicksteps 2"
    " -polar 0.8 -dmin 3 -distance 60 -pixel 1.0 -detpixels_x 48 -detpixels_y 40"
)
# Structure factors from a file (nearest), Gaussian spots, phi steps, every per-sample flag.
FEATURES_F64 = (
    "-hkl tiny.hkl -nointerpolate -cell 40 45 50 90 90 90 -lambda 1.0 -N 4 -misset 10 20 30"
    " -gauss_xtal -phi 0 -osc 1 -phisteps 2 -oversample 2 -oversample_omega"
    " -oversample_polar -oversample_thick -detector_thick 200 -detector_thicksteps 2"
    " -polar 0.5 -point_pixel -distance 50 -pixel 1.0 -detpixels_x 40 -detpixels_y 36"
)


def _write_hkl(folder) -> None:
    rng = np.random.default_rng(7)
    lines = []
    for h in range(-6, 7):
        for k in range(-6, 7):
            for l in range(-6, 7):  # noqa: E741
                lines.append(f"{h} {k} {l} {rng.uniform(5, 200):.3f}")
    (folder / "tiny.hkl").write_text("\n".join(lines) + "\n")


def _setup(args: str, dtype: torch.dtype):
    return prepare_frame(parse_nanobragg(args.split()).experiment, dtype, "cpu")


#: The block functions of this module's renders (as a worker's plugin owns its own).
KERNELS = kernel.KernelCache()


def _render(setup, mode: str, window: Window | None = None, kernels=KERNELS) -> np.ndarray:
    geo = setup.detector
    window = window or Window.full(geo.slow_pixels, geo.fast_pixels)
    with dask.config.set({"braggtile.compile.mode": mode}):
        return render_window(setup, window, kernels).numpy()


def _assert_close(ours: np.ndarray, ref: np.ndarray, rel: float) -> None:
    scale = float(np.abs(ref).max())
    assert scale > 0
    assert np.isfinite(ours).all()
    assert float(np.abs(ours - ref).max()) <= rel * scale
    assert abs(float(ours.sum()) / float(ref.sum()) - 1.0) <= rel


@pytest.fixture
def hkl_folder(tmp_path, monkeypatch):
    _write_hkl(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_compiled_matches_eager_float32():
    setup = _setup(FEATURES_F32, torch.float32)
    assert setup.n_sources == 2 and setup.n_orientations == 2 and setup.sensor.layers == 2
    eager = _render(setup, "off")
    compiled = _render(setup, "on")
    assert not KERNELS.failed(setup), "the kernel did not compile"
    # parity floor for float32 is 5e-3 x max; the two kernels agree far better
    _assert_close(compiled, eager, 1e-4)
    a, b = compiled.ravel().astype(float), eager.ravel().astype(float)
    assert np.corrcoef(a, b)[0, 1] >= 0.99999
    assert (eager == 0).any() and ((compiled == 0) == (eager == 0)).all()  # the dmin cut


def test_compiled_matches_eager_float64_and_windows(hkl_folder):
    setup = _setup(FEATURES_F64, torch.float64)
    assert setup.sf_table.hkls > 0 and not setup.interpolate
    eager = _render(setup, "off")
    full = _render(setup, "on")
    assert not KERNELS.failed(setup), "the kernel did not compile"
    _assert_close(full, eager, 1e-9)
    # window invariance with the compiled kernel: edges, corners, single pixels
    for w in (Window(0, 9, 0, 7), Window(5, 36, 11, 40), Window(35, 36, 39, 40)):
        part = _render(setup, "on", w)
        np.testing.assert_allclose(
            part,
            full[w.slow0 : w.slow1, w.fast0 : w.fast1],
            rtol=0,
            atol=1e-6 * float(np.abs(full).max()),
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sincg_matches_the_chebyshev_polynomial(dtype):
    """N as a tensor: sin(N pi d)/sin(pi d) is U_{N-1}(cos pi d) (float64 recurrence) and
    exactly N at d = 0, for every N."""
    delta = torch.linspace(-0.5, 0.5, 2001, dtype=torch.float64)
    x2 = 2.0 * np.cos(math.pi * delta.numpy())
    u_prev, u = np.ones_like(x2), x2
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for n in range(2, 40):
        n_t, n_pi = torch.tensor(float(n), dtype=dtype), torch.tensor(n * math.pi, dtype=dtype)
        ours = sincg(delta.to(dtype), n_t, n_pi).double().numpy()
        np.testing.assert_allclose(ours, u, rtol=0, atol=tol * n)
        assert float(sincg(torch.zeros(1, dtype=dtype), n_t, n_pi)) == n
        u_prev, u = u, x2 * u - u_prev


def test_float32_square_lattice_is_the_product_of_its_sincg_in_one_division():
    """float32 F_latt (one division for the three ratios) within float32's rounding of the
    float64 product of C's sincg; at the direct beam (h, k, l tiny but not 0, where the three
    denominators' product would underflow) exactly Na Nb Nc."""
    cells = (5.0, 7.0, 12.0)
    ns = torch.tensor([cells, [c * math.pi for c in cells]], dtype=torch.float64)
    rng = np.random.default_rng(3)
    hkl = [torch.from_numpy(rng.uniform(-30, 30, 20000)) for _ in range(3)]
    hkl[0][:3] = torch.tensor([1e-15, -3e-12, 2.0])  # tiny, and an exact integer
    hkl[1][:3] = torch.tensor([2e-14, 1e-13, 2.5])
    hkl[2][:3] = torch.tensor([-1e-16, 5e-12, 3.0])

    def square(dtype):
        h, k, l = (x.to(dtype) for x in hkl)  # noqa: E741
        return lattice_transform(
            CrystalShape.SQUARE, (True, True, True), h, k, l, ns.to(dtype), None, None, None
        ).double()

    ours = square(torch.float32)
    assert torch.isfinite(ours).all()
    assert float(ours[0]) == float(ours[1]) == 5.0 * 7.0 * 12.0
    # the float32 indices themselves are rounded: compare at those indices
    h32 = [x.to(torch.float32).double() for x in hkl]
    ref = lattice_transform(CrystalShape.SQUARE, (True, True, True), *h32, ns, None, None, None)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=0, atol=2e-6 * 420.0)


def test_compile_modes():
    setup = _setup(FEATURES_F32, torch.float32)
    for mode, compiled in (("off", False), ("on", True), (False, False), (True, True)):
        with dask.config.set({"braggtile.compile.mode": mode}):
            assert kernel.use_compiled(setup) == compiled
    threshold = setup.samples
    with dask.config.set({"braggtile.compile.mode": "auto"}):
        # with the shipped threshold: a small frame eager, a 2048x2048 one compiled
        assert setup.samples == 48 * 40 * 2 * 2 * 4 * 2  # sources x domains x 2x2 x layers
        assert not kernel.use_compiled(setup)
        big_args = FEATURES_F32.replace("-detpixels_x 48 -detpixels_y 40", "-detpixels 2048")
        assert kernel.use_compiled(_setup(big_args, torch.float32))
        with dask.config.set({"braggtile.compile.threshold": threshold}):
            assert kernel.use_compiled(setup)
        with dask.config.set({"braggtile.compile.threshold": threshold + 1}):
            assert not kernel.use_compiled(setup)
    with dask.config.set({"braggtile.compile.mode": "sometimes"}), pytest.raises(ValueError):
        config.compile_mode()
    curved = _setup(FEATURES_F32 + " -curved_det", torch.float32)
    with dask.config.set({"braggtile.compile.mode": "on"}):
        assert not kernel.use_compiled(curved)  # not separable: eager


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "auto"),
        ({"BRAGGTILE_COMPILE": "0"}, "off"),
        ({"BRAGGTILE_COMPILE": "1"}, "on"),
        ({"DASK_BRAGGTILE__COMPILE__MODE": "off"}, "off"),
        ({"BRAGGTILE_COMPILE": "1", "DASK_BRAGGTILE__COMPILE__MODE": "off"}, "off"),
        ({"DASK_BRAGGTILE__COMPILE__THRESHOLD": "1000"}, "auto"),
    ],
)
def test_compile_mode_from_environment(env, expected):
    """The shipped default, the DASK_BRAGGTILE__ variable and the BRAGGTILE_COMPILE alias."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k != "BRAGGTILE_COMPILE" and not k.startswith("DASK_BRAGGTILE")
    }
    code = (
        "import json, dask.config; from engine import config;"
        "print(json.dumps([config.compile_mode(), dask.config.get('braggtile.compile.threshold')]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    mode, threshold = json.loads(proc.stdout)
    assert mode == expected
    assert threshold == int(env.get("DASK_BRAGGTILE__COMPILE__THRESHOLD", 1 << 22))


def test_block_shapes_are_bounded_and_shrink_with_samples():
    setup = _setup(FEATURES_F32, torch.float32)
    rows, cols = kernel.block_shape(setup)
    assert cols == 512 and rows % 16 == 0 and rows * cols <= 1 << 18
    heavy = _setup(FEATURES_F32.replace("-mosaic_domains 2", "-mosaic_domains 64"), torch.float32)
    assert heavy.steps > 16 * setup.steps
    assert kernel.block_shape(heavy)[0] < rows  # more samples per pixel: fewer rows


def test_a_caller_picks_the_kernel_without_changing_the_config():
    """render_window(compiled=...) renders that kernel whatever braggtile.compile.mode says,
    and leaves the setting (global to the process's threads) as it was."""
    setup = _setup(FEATURES_F32, torch.float32)
    geo = setup.detector
    window = Window.full(geo.slow_pixels, geo.fast_pixels)
    compiled, eager = _render(setup, "on"), _render(setup, "off")
    assert not np.array_equal(compiled, eager)  # the two kernels' roundings tell them apart
    for mode, want, other in (("off", True, False), ("on", False, True)):
        with dask.config.set({"braggtile.compile.mode": mode}):
            np.testing.assert_array_equal(
                render_window(setup, window, KERNELS, compiled=want).numpy(),
                compiled if want else eager,
            )
            np.testing.assert_array_equal(
                render_window(setup, window, KERNELS, compiled=other).numpy(),
                compiled if other else eager,
            )
            assert config.compile_mode() == mode


def test_failed_compilation_falls_back_to_eager(monkeypatch, tmp_path):
    args = FEATURES_F32.replace("-N 5", "-N 3")  # a structure no other test compiles
    setup = _setup(args, torch.float32)
    eager = _render(setup, "off")

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    # neither an AOTInductor package (none on disk, export fails) nor torch.compile
    monkeypatch.setattr(kernel, "aot_cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.export, "export", broken)
    monkeypatch.setattr(torch, "compile", broken)
    kernels = kernel.KernelCache()
    with pytest.warns(RuntimeWarning, match="eager"):
        out = _render(setup, "on", kernels=kernels)
    assert kernels.failed(setup) and not KERNELS.failed(setup)
    np.testing.assert_array_equal(out, eager)


def test_inductor_options_this_torch_does_not_know_are_left_out(monkeypatch, hkl_folder):
    """A torch without one of the kernel's inductor options (2.11 lacks
    realize_cpu_opcount_threshold) still compiles the kernel, without that option."""
    st = _setup(FEATURES_F32, torch.float32).structure
    options = {"realize_opcount_threshold": 1000, "no_such_inductor_option": 1}
    monkeypatch.setattr(kernel, "_inductor_options", lambda structure: dict(options))
    assert kernel._compile_options(st) == {"realize_opcount_threshold": 1000}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_cuda_matches_cpu_eager():
    cpu = _setup(FEATURES_F32, torch.float32)
    gpu = prepare_frame(cpu.experiment, torch.float32, "cuda")
    eager = _render(cpu, "off")
    with dask.config.set({"braggtile.compile.mode": "on"}):
        geo = gpu.detector
        out = render_window(gpu, Window.full(geo.slow_pixels, geo.fast_pixels), KERNELS)
    assert not KERNELS.failed(gpu)
    out = out.cpu().numpy()
    _assert_close(out, eager, 1e-4)


def test_eager_blocks_bound_memory_not_pixels(hkl_folder):
    """Eager blocks shrink to the sample budget (one pixel at least); pixels do not change."""
    setup = _setup(FEATURES_F64, torch.float64)
    samples = setup.steps * setup.sensor.layers
    whole = _render(setup, "off")
    assert kernel.eager_block_shape(setup, 36, 40) == (36, 40)
    for budget, shape in ((7 * samples, (1, 7)), (1, (1, 1))):
        with dask.config.set({"braggtile.kernel.eager-block-samples": budget}):
            assert kernel.eager_block_shape(setup, 36, 40) == shape
            part = _render(setup, "off", Window(3, 9, 30, 40))
        np.testing.assert_array_equal(part, whole[3:9, 30:40])


def test_settings_survive_a_config_set_made_before_engine_was_imported():
    """dask.config.set of a braggtile key before engine.config is imported removes the whole
    namespace on exit; the settings still read their shipped defaults afterwards."""
    code = (
        "import dask.config\n"
        "with dask.config.set({'braggtile.compile.mode': 'off'}):\n"
        "    from engine import config\n"
        "    assert config.compile_mode() == 'off'\n"
        "print(config.get('kernel.eager-block-samples'), config.compile_mode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_BRAGGTILE")}
    env.pop("BRAGGTILE_COMPILE", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["2097152", "auto"]


def test_one_graph_for_every_n_above_one():
    """A graph keeps of N only which axes have one cell: N = 2 .. 40 share a structure."""

    def structure(cells: str):
        argv = f"-cell 80 80 80 90 90 90 -default_F 1 -oversample 1 -detpixels 8 {cells}"
        return prepare_frame(parse_nanobragg(argv.split()).experiment, torch.float32).structure

    many = {structure(f"-N {n}") for n in (2, 3, 5, 9, 16, 17, 40)}
    assert len(many) == 1
    assert structure("-Na 1 -Nb 7 -Nc 30") != many.pop()


def test_orientation_buckets_are_at_most_a_third_padding():
    assert [orientation_bucket(n) for n in range(1, 14)] == [
        1,
        2,
        3,
        4,
        6,
        6,
        8,
        8,
        12,
        12,
        12,
        12,
        16,
    ]
    assert all(n <= orientation_bucket(n) <= 1.5 * n for n in range(1, 1000))
