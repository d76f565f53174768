"""A window renders exactly the same pixels as the full frame: edges and corners included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import Window, prepare_frame, render_window
from engine.resolve import parse_nanobragg

from reference import case_args, copy_inputs

WINDOWS = [
    Window(0, 333, 0, 500),  # ragged, touching the top-left corner
    Window(67, 400, 140, 640),  # bottom-right corner
    Window(0, 1, 0, 640),  # first row
    Window(399, 400, 0, 640),  # last row
    Window(0, 400, 0, 1),  # first column
    Window(0, 400, 639, 640),  # last column
    Window(0, 7, 633, 640),  # top-right corner
    Window(393, 400, 0, 7),  # bottom-left corner
    Window(150, 151, 320, 321),  # one pixel
    Window(123, 245, 77, 410),  # interior
]


@pytest.fixture(scope="module", params=["rectangular_offcenter", "tilted_twotheta", "sourcefile"])
def frame(request, tmp_path_factory):
    folder = copy_inputs(tmp_path_factory.mktemp("inputs"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        exp = parse_nanobragg(case_args(request.param)).experiment
    setup = prepare_frame(exp, torch.float64)
    g = setup.detector
    full = render_window(setup, Window.full(g.slow_pixels, g.fast_pixels)).numpy()
    return setup, full


def test_windows_equal_full_frame_slices(frame):
    setup, full = frame
    g = setup.detector
    peak = float(np.abs(full).max())
    assert peak > 0
    for w in WINDOWS:
        w = Window(
            min(w.slow0, g.slow_pixels - 1),
            min(w.slow1, g.slow_pixels),
            min(w.fast0, g.fast_pixels - 1),
            min(w.fast1, g.fast_pixels),
        )
        part = render_window(setup, w).numpy()
        assert part.shape == w.shape
        diff = np.abs(part - full[w.slow0 : w.slow1, w.fast0 : w.fast1]).max()
        assert diff <= 1e-6 * peak, (w, diff / peak)


def test_tiles_reassemble_the_frame(frame):
    """A ragged 97 x 61 tiling covers the frame and reproduces it."""
    setup, full = frame
    g = setup.detector
    out = np.zeros_like(full)
    for s0 in range(0, g.slow_pixels, 97):
        for f0 in range(0, g.fast_pixels, 61):
            w = Window(s0, min(g.slow_pixels, s0 + 97), f0, min(g.fast_pixels, f0 + 61))
            out[w.slow0 : w.slow1, w.fast0 : w.fast1] = render_window(setup, w).numpy()
    assert np.abs(out - full).max() <= 1e-6 * np.abs(full).max()


def test_window_outside_frame_is_rejected(frame):
    setup, _ = frame
    g = setup.detector
    with pytest.raises(ValueError, match="window"):
        render_window(setup, Window(0, g.slow_pixels + 1, 0, 10))
