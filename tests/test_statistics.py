"""Frame statistics from mergeable tile partials, against C nanoBragg's formulas."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from engine.statistics import NO_PIXEL, FrameStatistics, TileStatistics, merge_all
from engine.window import Window


def c_statistics(image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """The statistics as C nanoBragg computes them (serial loops' semantics, vectorised)."""
    x = image.astype(np.float64)
    inside = x[mask] if mask is not None else x.reshape(-1)
    n = inside.size
    total, sumsq = inside.sum(), (inside * inside).sum()
    mean = total / (n if n > 0 else 1)
    n2 = n if n > 1 else 2
    rms = math.sqrt(sumsq / (n2 - 1))
    rmsd = math.sqrt(((inside - mean) ** 2).sum() / (n2 - 1))
    max_i, pos = 0.0, (NO_PIXEL, NO_PIXEL)
    masked = np.where(mask, x, 0.0) if mask is not None else x
    if n and masked.max() > 0.0:
        flat = int(np.argmax(masked))  # first maximum in raster order
        max_i, pos = float(masked.reshape(-1)[flat]), divmod(flat, x.shape[1])
    return {"max_I": max_i, "pos": pos, "mean": mean, "rms": rms, "rmsd": rmsd, "n": n}


def split(image: np.ndarray, rows: list[int], cols: list[int]) -> list[TileStatistics]:
    """Partials of the tiles cut at the given row and column boundaries."""
    parts = []
    rb, cb = [0, *rows, image.shape[0]], [0, *cols, image.shape[1]]
    for s0, s1 in zip(rb[:-1], rb[1:], strict=True):
        for f0, f1 in zip(cb[:-1], cb[1:], strict=True):
            parts.append(TileStatistics.from_tile(image[s0:s1, f0:f1], Window(s0, s1, f0, f1)))
    return parts


def assert_matches_c(stats: FrameStatistics, ref: dict[str, float]) -> None:
    assert stats.pixels == ref["n"]
    assert stats.max_I == ref["max_I"]
    assert (stats.max_slow, stats.max_fast) == tuple(ref["pos"])
    for key in ("mean", "rms", "rmsd"):
        assert getattr(stats, key) == pytest.approx(ref[key], rel=1e-12, abs=1e-300)


def test_whole_frame_matches_c() -> None:
    rng = np.random.default_rng(1)
    image = rng.gamma(0.5, 20.0, size=(37, 53)).astype(np.float32)
    stats = TileStatistics.from_tile(image, Window(0, 37, 0, 53)).summary()
    assert_matches_c(stats, c_statistics(image))


def test_ragged_tiles_merge_to_the_whole_in_any_order() -> None:
    rng = np.random.default_rng(2)
    image = (rng.gamma(0.3, 100.0, size=(61, 45)) + 1e4).astype(np.float32)  # large mean
    parts = split(image, [16, 32, 48], [7, 30])
    ref = c_statistics(image)
    assert_matches_c(merge_all(parts).summary(), ref)
    random.Random(3).shuffle(parts)
    assert_matches_c(merge_all(parts).summary(), ref)
    tree = parts[0].merge(parts[1]).merge(merge_all(parts[2:]))
    assert_matches_c(tree.summary(), ref)


def test_ties_go_to_the_first_pixel_in_raster_order() -> None:
    image = np.zeros((8, 8), dtype=np.float32)
    image[2, 6] = image[5, 1] = image[2, 7] = 9.0
    parts = split(image, [3], [4])
    for order in (parts, parts[::-1]):
        stats = merge_all(order).summary()
        assert (stats.max_I, stats.max_slow, stats.max_fast) == (9.0, 2, 6)


def test_roi_mask_restricts_every_statistic() -> None:
    rng = np.random.default_rng(4)
    image = rng.uniform(0, 5, size=(20, 30)).astype(np.float32)
    image[0, 0] = 100.0  # outside the ROI: must not be the max
    mask = np.zeros_like(image, dtype=bool)
    mask[3:15, 4:22] = True
    stats = TileStatistics.from_tile(image, Window(0, 20, 0, 30), mask).summary()
    assert_matches_c(stats, c_statistics(image, mask))
    assert stats.pixels == 12 * 18


def test_empty_and_all_zero_follow_c() -> None:
    empty = TileStatistics().summary()
    assert (empty.max_I, empty.mean, empty.rms, empty.rmsd, empty.pixels) == (0.0, 0.0, 0.0, 0.0, 0)
    zeros = TileStatistics.from_tile(np.zeros((4, 4)), Window(0, 4, 0, 4)).summary()
    assert (zeros.max_I, zeros.max_slow, zeros.max_fast) == (0.0, NO_PIXEL, NO_PIXEL)
    one = TileStatistics.from_tile(np.full((1, 1), 3.0), Window(5, 6, 7, 8)).summary()
    assert (one.max_I, one.max_slow, one.max_fast, one.mean) == (3.0, 5, 7, 3.0)
    assert one.rms == pytest.approx(3.0)  # n raised to 2: sqrt(9 / 1)


def test_window_offsets_place_the_maximum_in_the_frame() -> None:
    tile = torch.zeros((4, 5), dtype=torch.float32)
    tile[3, 2] = 1.5
    stats = TileStatistics.from_tile(tile, Window(100, 104, 200, 205))
    assert (stats.max_slow, stats.max_fast) == (103, 202)
    with pytest.raises(ValueError):
        TileStatistics.from_tile(tile, Window(0, 5, 0, 5))


def test_json_round_trip() -> None:
    rng = np.random.default_rng(5)
    stats = TileStatistics.from_tile(rng.uniform(size=(6, 7)), Window(1, 7, 2, 9))
    again = TileStatistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again == stats
    summary = stats.summary()
    assert FrameStatistics.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
