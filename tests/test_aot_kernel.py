"""AOTInductor packages of the compiled kernel (``braggtile.compile.aot``), on the CPU: a
package is built once, then a new block function loads it from disk with no dynamo graph, and
both give the pixels of torch.compile bit for bit."""

from __future__ import annotations

import os

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
        reference = kernel.render_window(setup, window).numpy()
    with dask.config.set({"braggtile.compile.mode": "on", "braggtile.compile.aot": True}):
        block = kernel._AotBlock(setup.structure, setup.sf_table, make_fallback=None)
        kernel._graphs[(setup.structure, True)] = block
        try:
            built = kernel.render_window(setup, window).numpy()
            assert not block.broken
            packages = [p for p in os.listdir(aot_dir) if p.endswith(".pt2")]
            assert len(packages) == 1
            stamp = os.stat(aot_dir / packages[0]).st_mtime_ns
            graphs = counters["stats"]["unique_graphs"]
            loaded_before = kernel.compile_count()
            fresh = kernel._AotBlock(setup.structure, setup.sf_table, make_fallback=None)
            kernel._graphs[(setup.structure, True)] = fresh
            loaded = kernel.render_window(setup, window).numpy()
            assert not fresh.broken and len(fresh.runners) == 1
        finally:
            kernel._graphs.pop((setup.structure, True), None)
    assert os.stat(aot_dir / packages[0]).st_mtime_ns == stamp  # loaded, not rebuilt
    assert counters["stats"]["unique_graphs"] == graphs  # no dynamo graph for the load
    assert kernel.compile_count() == loaded_before + 1
    np.testing.assert_array_equal(built, reference)
    np.testing.assert_array_equal(loaded, reference)
