"""Per-frame draws of a dataset job: distributions, reproducibility, frames tables, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.dataset import (
    DatasetError,
    apply,
    draw,
    misset_umat,
    parse_distribution,
    read_frames_table,
)
from engine.model import Beam, Crystal, Detector, Experiment
from tiling.job import JobSpec

FRAMES = 2000
BASE = Experiment(
    crystal=Crystal(cell=(50.0, 60.0, 70.0, 90.0, 90.0, 90.0), misset_deg=(10.0, 20.0, 30.0)),
    beam=Beam(wavelength_A=1.2, fluence=1e24, flux=1e12),
    detector=Detector(
        fast_pixels=64, slow_pixels=64, distance_mm=100.0, xbeam_mm=3.0, ybeam_mm=3.5
    ),
)


def _many(key: str, dist: str) -> list:
    return [
        draw({key: dist}, 7, k, BASE)[key if key != "orientation" else "umat"]
        for k in range(FRAMES)
    ]


def _within(sample: np.ndarray, mean: float, std: float) -> None:
    """Sample mean within 5 standard errors of ``mean``; sample std within 10 % of ``std``."""
    assert abs(sample.mean() - mean) < 5 * std / math.sqrt(sample.size)
    assert sample.std() == pytest.approx(std, rel=0.1)


def test_random_orientations_are_uniform_over_rotations() -> None:
    umats = np.array(_many("orientation", "random")).reshape(-1, 3, 3)
    assert np.allclose(umats @ umats.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(umats), 1.0)
    # Haar measure: every entry has mean 0 and variance 1/3; the trace 1 + 2 cos(angle) has
    # mean 0 and variance 1.
    bound = 5 * math.sqrt(1 / 3 / FRAMES)
    assert np.abs(umats.mean(axis=0)).max() < bound
    assert (umats**2).mean(axis=0) == pytest.approx(np.full((3, 3), 1 / 3), abs=0.05)
    _within(np.trace(umats, axis1=1, axis2=2), 0.0, 1.0)


def test_jitter_is_a_small_rotation_after_the_misset() -> None:
    base = misset_umat(BASE.crystal.misset_deg)
    umats = np.array(_many("orientation", "jitter:0.5")).reshape(-1, 3, 3)
    rel = umats @ base.T  # the jitter alone
    vector = (
        np.stack(
            [rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]],
            axis=1,
        )
        / 2
    )
    deg = np.degrees(np.arcsin(np.clip(vector, -1, 1)))
    for axis in range(3):
        _within(deg[:, axis], 0.0, 0.5)


@pytest.mark.parametrize(
    ("key", "dist", "pick", "mean", "std"),
    [
        ("cell", "normal:0.02", lambda v: v[1], 60.0, 1.2),
        ("lambda", "normal:0.01", lambda v: v, 1.2, 0.012),
        ("distance", "normal:2", lambda v: v, 100.0, 2.0),
        ("beam_center", "normal:0.3", lambda v: v[1], 3.5, 0.3),
        ("flux", "lognormal:0.5", lambda v: math.log(v), 0.0, 0.5),
        ("mosaic", "uniform:0.1,0.5", lambda v: v, 0.3, 0.4 / math.sqrt(12)),
        ("water", "uniform:0,10", lambda v: v, 5.0, 10 / math.sqrt(12)),
        ("N", "uniform:2,5", lambda v: v[2], 3.5, math.sqrt((4**2 - 1) / 12)),
    ],
)
def test_distribution_moments(key, dist, pick, mean, std) -> None:
    sample = np.array([pick(v) for v in _many(key, dist)], dtype=float)
    _within(sample, mean, std)


def test_uniform_bounds_and_integers() -> None:
    n = np.array(_many("N", "uniform:2,5"))
    assert n.dtype.kind == "i" and n.min() == 2 and n.max() == 5
    mosaic = np.array(_many("mosaic", "uniform:0.1,0.5"))
    assert mosaic.min() >= 0.1 and mosaic.max() <= 0.5


def test_draws_depend_on_seed_and_frame_alone() -> None:
    vary = {"orientation": "random", "mosaic": "uniform:0,1", "N": "uniform:1,9"}
    forward = [draw(vary, 11, k, BASE) for k in range(20)]
    backward = [draw(vary, 11, k, BASE) for k in reversed(range(20))][::-1]
    assert forward == backward
    # another key varied alongside leaves a key's draws alone
    alone = [draw({"mosaic": "uniform:0,1"}, 11, k, BASE)["mosaic"] for k in range(20)]
    assert alone == [v["mosaic"] for v in forward]
    assert draw(vary, 12, 3, BASE) != forward[3]
    assert forward[3] != forward[4]


def test_a_job_frame_alone_equals_the_frame_of_a_batch() -> None:
    vary = {"orientation": "random", "cell": "normal:0.01", "distance": "normal:1"}
    job = JobSpec(BASE, frames=6, stills=True, variations=vary, seed=3)
    batch = [job.frame_experiment(k) for k in range(6)]
    again = JobSpec.from_dict(job.to_dict())
    assert again.fingerprint == job.fingerprint
    assert again.frame_experiment(4) == batch[4]
    assert batch[4].crystal.misset_deg != batch[5].crystal.misset_deg
    assert all(e.scan.phi0_deg == BASE.scan.phi0_deg for e in batch)  # stills: no rotation


def test_apply_sets_every_value() -> None:
    values = {
        "umat": misset_umat((1.0, 2.0, 3.0)).ravel().tolist(),
        "cell": [51, 61, 71, 90, 90, 90],
        "mosaic": 0.2,
        "N": [3, 4, 5],
        "lambda": 1.1,
        "flux": 2.0,
        "distance": 120.0,
        "beam_center": [4.0, 5.0],
        "water": 7.0,
        "phi": 12.0,
    }
    exp = apply(BASE, values)
    assert exp.crystal.misset_deg == pytest.approx((1.0, 2.0, 3.0))
    assert exp.crystal.cell == (51, 61, 71, 90, 90, 90)
    assert (exp.crystal.na, exp.crystal.nb, exp.crystal.nc) == (3, 4, 5)
    assert exp.crystal.mosaic_spread_deg == 0.2
    assert exp.beam.wavelength_A == 1.1 and exp.beam.fluence == 2e24 and exp.beam.flux == 2e12
    assert exp.detector.distance_mm == 120.0
    assert (exp.detector.xbeam_mm, exp.detector.ybeam_mm) == (4.0, 5.0)
    assert exp.sampling.water_um == 7.0 and exp.scan.phi0_deg == 12.0


def test_frames_table_sets_frames_and_values() -> None:
    rows = [{"phi": 5.0, "misset": [1, 2, 3]}, {"lambda": 0.9, "N": [2, 2, 2]}]
    job = JobSpec(BASE, frames_table=rows)
    assert job.frames == 2
    assert job.frame_experiment(0).scan.phi0_deg == 5.0
    assert job.frame_experiment(0).crystal.misset_deg == (1, 2, 3)
    assert job.frame_experiment(1).beam.wavelength_A == 0.9
    assert job.frame_phi0_deg(0) == 5.0
    with pytest.raises(ValueError, match="frames_table"):
        JobSpec(BASE, frames=3, frames_table=rows)
    with pytest.raises(ValueError, match="umat"):
        JobSpec(BASE, frames_table=[{"umat": [1, 0, 0, 0, 1, 0, 0, 0, 2]}])


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        ("colour", "random", "unknown key 'colour'"),
        ("orientation", "normal:1", "use random or jitter"),
        ("cell", "uniform:1,2", "use normal"),
        ("mosaic", "uniform:0.5,0.1", "above high"),
        ("mosaic", "uniform:-1,1", "low must be >= 0"),
        ("N", "uniform:1.5,3", "integers"),
        ("N", "uniform:0,3", "low must be >= 1"),
        ("flux", "lognormal", "spell it lognormal:SIGMA"),
        ("distance", "normal:x", "valid number"),
    ],
)
def test_bad_distributions_name_the_key(key: str, text: str, says: str) -> None:
    with pytest.raises(DatasetError, match=says) as err:
        parse_distribution(key, text)
    assert "\n" not in str(err.value) and str(err.value).startswith("--vary")


def test_frames_table_files_csv_and_json_lines(tmp_path) -> None:
    csv_file = tmp_path / "frames.csv"
    csv_file.write_text("phi,misset,lambda,N\n1.5,10 20 30,0.9,2 3 4\n2.5,,,\n")
    jsonl_file = tmp_path / "frames.jsonl"
    jsonl_file.write_text(
        '{"phi": 1.5, "misset": [10, 20, 30], "lambda": 0.9, "N": [2, 3, 4]}\n{"phi": 2.5}\n'
    )
    rows = read_frames_table(str(csv_file))
    assert rows == read_frames_table(str(jsonl_file))
    assert rows[0] == {"phi": 1.5, "misset": [10, 20, 30], "lambda": 0.9, "N": [2, 3, 4]}
    job = JobSpec(BASE, frames_table=rows)
    assert job.frames == 2 and job.frame_experiment(0).crystal.nc == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"phi": 1}\n{"phi": \n')
    with pytest.raises(DatasetError, match="bad.jsonl:2"):
        read_frames_table(str(bad))
    with pytest.raises(DatasetError, match="not a number"):
        csv_file.write_text("phi\nabc\n")
        read_frames_table(str(csv_file))
