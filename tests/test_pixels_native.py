"""The compiled tile passes (engine/pixels.c) against their numpy path and against plain
sequential loops: the same lane sums, maxima and 2x2 means, bit for bit, on lane tails, block
edges, masks, NaN, ties, odd shapes and every input type the pyramid bins."""

from __future__ import annotations

import os

import dask.config
import numpy as np
import pytest

from engine import native, pixels
from engine.statistics import NO_PIXEL, TileStatistics
from engine.window import Window
from tiling.pyramid import bin2x2

pytestmark = pytest.mark.skipif(
    native.c_compiler() is None and not os.environ.get("CI"),
    reason="no C compiler: the tile passes use numpy",
)
NUMPY = {"braggtile.pixels.native": "off"}
# lane tails (n % 8), a block edge (2048 pixels) and several blocks
SHAPES = [(1, 1), (1, 7), (3, 5), (2, 4), (9, 9), (45, 46), (64, 32), (33, 65), (256, 257)]


@pytest.fixture(scope="module")
def lib():
    library = pixels.library()
    assert library is not None, "the tile-pass library did not build"
    assert os.path.exists(native.library_path(pixels._SOURCE))
    return library


def numpy_path(function, *args):
    with dask.config.set(NUMPY):
        assert pixels.library() is None
        return function(*args)


def sequential_lanes(values: np.ndarray) -> np.ndarray:
    """Lane sums by a plain loop: pixel i into lane i % 8, in order."""
    lanes = [0.0] * pixels.LANES
    for i, v in enumerate(values.reshape(-1).tolist()):
        lanes[i % pixels.LANES] += v
    return np.array(lanes)


def test_the_setting_off_means_numpy(lib) -> None:
    with dask.config.set(NUMPY):
        assert pixels.library() is None
    assert pixels.library() is lib


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
def test_moments_and_deviations_match_numpy_and_a_plain_loop(lib, shape, dtype, masked) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    x = (rng.gamma(0.3, 40.0, size=shape)).astype(dtype)
    mask = rng.random(shape) > 0.25 if masked else None
    sums, peak, at = pixels.moments(x, mask)
    inside = np.where(mask, x.astype(np.float64), 0.0) if masked else x.astype(np.float64)
    np.testing.assert_array_equal(sums, sequential_lanes(inside))
    numpy_sums, numpy_peak, numpy_at = numpy_path(pixels.moments, x, mask)
    np.testing.assert_array_equal(sums, numpy_sums)
    assert (peak, at) == (numpy_peak, numpy_at)
    if inside.max() > 0:
        flat = int(np.argmax(inside))
        assert (peak, at) == (float(inside.reshape(-1)[flat]), flat)
    else:
        assert (peak, at) == (0.0, -1)
    mean = pixels.combine(sums) / max(1, inside.size)
    dev = pixels.deviations(x, mean, mask)
    d = np.where(mask, x.astype(np.float64) - mean, 0.0) if masked else x - np.float64(mean)
    np.testing.assert_array_equal(dev, sequential_lanes(d * d))
    np.testing.assert_array_equal(dev, numpy_path(pixels.deviations, x, mean, mask))


@pytest.mark.parametrize("where", [0, 7, 8, 2047, 2048, 2049, 4099])
def test_the_first_of_tied_maxima_wins_wherever_it_lies(lib, where: int) -> None:
    x = np.zeros((1, 4101), dtype=np.float32)
    x[0, where] = x[0, -1] = 5.0
    x[0, where + 1 :: 997] = 5.0
    assert pixels.moments(x)[1:] == (5.0, where)
    assert numpy_path(pixels.moments, x)[1:] == (5.0, where)
    mask = np.ones_like(x, dtype=bool)
    mask[0, where] = False  # the next maximum inside the mask wins
    second = int(np.flatnonzero(x[0] * mask[0] == 5.0)[0])
    assert pixels.moments(x, mask)[1:] == (5.0, second)
    assert numpy_path(pixels.moments, x, mask)[1:] == (5.0, second)


def test_nan_zero_and_negative_tiles_report_no_maximum(lib) -> None:
    for path in (pixels.moments, lambda *a: numpy_path(pixels.moments, *a)):
        nan = np.ones((4, 5), dtype=np.float32)
        nan[2, 3] = np.nan
        sums, peak, at = path(nan, None)
        assert np.isnan(pixels.combine(sums)) and (peak, at) == (0.0, -1)
        masked_nan = np.ones((4, 5), dtype=bool)
        masked_nan[2, 3] = False  # a NaN outside the mask is not a pixel of the tile
        assert path(nan, masked_nan)[1:] == (1.0, 0)
        assert path(np.zeros((3, 3)), None)[1:] == (0.0, -1)
        assert path(-np.ones((3, 3)), None)[1:] == (0.0, -1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("source", [np.float32, np.float64, np.uint16, np.uint32])
@pytest.mark.parametrize("out", [np.float32, np.float64])
def test_2x2_means_match_numpy_on_every_type_and_odd_edge(lib, shape, source, out) -> None:
    rng = np.random.default_rng(7)
    x = (rng.gamma(0.5, 300.0, size=shape)).astype(source)
    got = bin2x2(x, out)
    want = numpy_path(bin2x2, x, out)
    assert got.dtype == want.dtype == np.dtype(out)
    assert got.tobytes() == want.tobytes()
    # the formula written out: ((tl + bl) + (tr + br)) x 0.25, odd edges the mean of two
    y = x.astype(np.float64)
    s, f = shape
    r, c = s // 2, f // 2
    if r and c:
        tl, bl = y[0 : 2 * r : 2, 0 : 2 * c : 2], y[1::2, 0 : 2 * c : 2][:r]
        tr, br = y[0 : 2 * r : 2, 1 : 2 * c : 2], y[1::2, 1 : 2 * c : 2][:r]
        np.testing.assert_array_equal(got[:r, :c], (((tl + bl) + (tr + br)) * 0.25).astype(out))
    if f % 2 and r:
        edge = ((y[0 : 2 * r : 2, -1] + y[1 : 2 * r : 2, -1]) * 0.5).astype(out)
        np.testing.assert_array_equal(got[:r, -1], edge)
    if s % 2 and f % 2:
        assert got[-1, -1] == np.asarray(y[-1, -1]).astype(out)


def test_tile_statistics_are_the_same_bits_either_way(lib) -> None:
    rng = np.random.default_rng(3)
    image = rng.gamma(0.4, 30.0, size=(97, 131)).astype(np.float32)
    roi = rng.random(image.shape) > 0.1
    skipped = rng.random(image.shape) > 0.95
    window = Window(10, 107, 20, 151)
    for args in ((None, None), (roi, None), (roi, skipped), (None, skipped)):
        compiled = TileStatistics.from_tile(image, window, *args)
        assert compiled == numpy_path(TileStatistics.from_tile, image, window, *args)
        assert compiled.max_slow != NO_PIXEL
