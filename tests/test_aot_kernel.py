"""AOTInductor packages of the compiled kernel (``braggtile.compile.aot``), on the CPU: a
package is built once, then a new block function loads it from disk with no dynamo graph, and
both give the pixels of torch.compile bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask.config
import numpy as np
import pytest
import torch

from engine import kernel
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from engine.window import Window

# a structure (N 6, 64 px) that no other test compiles
ARGS = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 6 -distance 100 -detpixels 64"


@pytest.fixture
def aot_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel, "aot_cache_dir", lambda: str(tmp_path))
    return tmp_path


def test_aot_package_is_built_once_then_loaded(aot_dir):
    from torch._dynamo.utils import counters

    setup = prepare_frame(parse_nanobragg(ARGS.split()).experiment, torch.float32)
    window = Window.full(64, 64)
    with dask.config.set({"braggtile.compile.mode": "on", "braggtile.compile.aot": False}):
        reference = kernel.render_window(setup, window, kernel.KernelCache()).numpy()
    with dask.config.set({"braggtile.compile.mode": "on", "braggtile.compile.aot": True}):
        builder = kernel.KernelCache()
        built = kernel.render_window(setup, window, builder).numpy()
        block = builder.graph(setup, True)
        assert isinstance(block, kernel._AotBlock) and not block.broken
        packages = [p for p in os.listdir(aot_dir) if p.endswith(".pt2")]
        assert len(packages) == 1 and builder.packages_built == builder.packages_loaded == 1
        stamp = os.stat(aot_dir / packages[0]).st_mtime_ns
        graphs = counters["stats"]["unique_graphs"]
        loader = kernel.KernelCache()  # as a new worker: its own cache, the package on disk
        loaded = kernel.render_window(setup, window, loader).numpy()
        fresh = loader.graph(setup, True)
        assert not fresh.broken and len(fresh.runners) == 1
    assert os.stat(aot_dir / packages[0]).st_mtime_ns == stamp  # loaded, not rebuilt
    assert counters["stats"]["unique_graphs"] == graphs  # no dynamo graph for the load
    assert (loader.packages_built, loader.packages_loaded) == (0, 1)
    assert loader.compile_count() == graphs + 1
    np.testing.assert_array_equal(built, reference)
    np.testing.assert_array_equal(loaded, reference)


LOAD_SCRIPT = """
import sys, torch, dask.config
from engine import kernel
from engine.resolve import parse_nanobragg
from engine.setup import prepare_frame
from engine.window import Window
setup = prepare_frame(parse_nanobragg(sys.argv[1].split()).experiment, torch.float32)
kernels = kernel.KernelCache()
with dask.config.set({"braggtile.compile.mode": "on"}):
    image = kernel.render_window(setup, Window.full(64, 64), kernels)
block = kernels.graph(setup, True)
print(type(block).__name__, block.broken, len(block.runners), "torch._dynamo" in sys.modules,
      float(image.double().sum()).hex(), kernels.packages_built)
"""


def _load_command(cache, n_cells: int) -> tuple[list[str], dict, Path]:
    """The command rendering a structure of one test (``-N n_cells``) with the default
    settings and kernel cache ``cache``: (argv, environment, working folder)."""
    root = Path(__file__).resolve().parents[1]
    args = ARGS.replace("-N 6", f"-N {n_cells}")
    env = {**os.environ, "PYTHONPATH": str(root), "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    for name in list(env):
        if name.startswith("DASK_BRAGGTILE__COMPILE"):
            env.pop(name)
    return [sys.executable, "-c", LOAD_SCRIPT, args], env, root


def test_packages_are_the_default_and_load_without_dynamo(tmp_path):
    """With the default settings, a first process builds the package; a second one renders the
    same pixels from it without importing dynamo (no tracing, no inductor cache look-up)."""
    argv, env, root = _load_command(tmp_path, 7)
    runs = [
        subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    built, loaded = (r.stdout.split() for r in runs)
    assert built[:3] == ["_AotBlock", "False", "1"]
    assert loaded[:4] == ["_AotBlock", "False", "1", "False"]  # no dynamo in the second
    assert built[4] == loaded[4]  # the same pixels
    assert len(list((tmp_path / "braggtile-aoti").glob("*.pt2"))) == 1


def test_processes_sharing_a_cache_build_a_package_once(tmp_path):
    """Two processes that need the same new package at once: one builds it, the other waits
    for it (a lock beside the package) and loads it; both render the same pixels."""
    argv, env, root = _load_command(tmp_path, 8)
    procs = [
        subprocess.Popen(
            argv, cwd=root, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[-1][1]
    lines = [out.split() for out, _ in outs]
    assert sorted(int(line[5]) for line in lines) == [0, 1]  # one build, one load
    assert lines[0][4] == lines[1][4]
    folder = tmp_path / "braggtile-aoti"
    assert len(list(folder.glob("*.pt2"))) == 1 and not list(folder.glob("*.tmp.pt2"))


def test_frame_key_is_the_signature_of_each_frame_tensors():
    """A block function makes each frame's part of the package key once, by identity: each
    FrameTensors gets its own signature, past the number kept too."""
    block = kernel._AotBlock(None, None, None, kernel.KernelCache())
    experiment = parse_nanobragg(ARGS.split()).experiment
    frames = [
        prepare_frame(experiment, dtype).tensors
        for _ in range(kernel.FRAME_KEYS_KEPT)
        for dtype in (torch.float32, torch.float64)
    ]
    assert kernel.signature(frames[0]) != kernel.signature(frames[1])
    for _ in range(2):
        for ft in frames:
            assert block.frame_key(ft) == kernel.signature(ft)
    assert len(block._frame_keys) <= kernel.FRAME_KEYS_KEPT
