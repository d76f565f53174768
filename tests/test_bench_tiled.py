"""``braggtile bench --tiled`` (tiling.bench): a real embedded cluster, one JSON line."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest
import torch

from tiling.worker import STAGES as WORKER_STAGES

SMALL = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 5 -distance 100 -detpixels 300"
STAGES = (*WORKER_STAGES, "scheduling")


def _bench(*args: str) -> tuple[list[str], dict]:
    cmd = [sys.executable, "-m", "service.cli", "bench", "--tiled", *args, "--nanobragg", SMALL]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return lines, json.loads(lines[-1])


def test_tiled_bench_reports_cluster_jobs_rate_and_stages():
    lines, result = _bench(
        "--workers", "2", "--tile", "128", "--frames", "2", "--repeat", "2", "--compare-kernel"
    )  # fmt: skip
    assert sum(line.startswith("bench: job") for line in lines[:-1]) == 3
    assert result["tiled"] is True and result["workers"] == 2
    assert result["frames"] == 2 and result["tile"] == 128
    assert result["pixels"] == 2 * 300 * 300
    assert result["tiles"] == 2 * 3 * 3
    assert result["cluster_start_seconds"] > 0 and result["first_job_seconds"] > 0
    assert len(result["warm_seconds"]) == 2
    warm = statistics.median(result["warm_seconds"])
    assert result["warm_job_seconds"] == pytest.approx(warm, abs=2e-6)  # the median warm job
    assert result["mpix_per_s"] == pytest.approx(result["pixels"] / warm / 1e6, abs=1e-3)
    assert result["frames_per_s"] == pytest.approx(2 / warm, rel=1e-3, abs=1e-3)
    ratio = result["first_job_seconds"] / result["warm_job_seconds"]
    assert result["first_job_ratio"] == pytest.approx(ratio, rel=1e-3)
    # the embedded scheduler runs in the bench process: its memory is that process's
    assert 0 < result["scheduler_start_rss_mib"] <= result["scheduler_peak_rss_mib"]
    assert 0 < result["scheduler_rss_mib"] <= result["scheduler_peak_rss_mib"]
    assert result["scheduler_peak_rss_mib"] <= result["peak_rss_mib"]
    stages = result["stages"]
    assert set(stages) == set(STAGES)
    # every stage ran (300 px > 256: one pyramid level) and took less than the workers had
    budget = max(result["warm_seconds"]) * result["workers"]
    for name in STAGES[:-1]:
        assert 0 < stages[name] < budget, name
    assert 0 <= stages["scheduling"] < budget
    assert sum(stages.values()) <= budget * 1.0001
    assert result["client_cpu_seconds"] > 0
    # --compare-kernel: the in-process kernel on the same frame, and the pipeline's share of it
    assert result["kernel_warm_seconds"] > 0
    # timed where the workers rendered: their CPUs here (a GPU where a worker declares one)
    assert result["kernel_device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    # (rates are rounded to 3 decimals, the share to 4: abs covers the rounding of slow runs)
    assert result["kernel_mpix_per_s"] == pytest.approx(
        300 * 300 / result["kernel_warm_seconds"] / 1e6, rel=1e-3, abs=1e-3
    )
    assert result["kernel_frames_per_s"] == pytest.approx(
        1 / result["kernel_warm_seconds"], rel=1e-3, abs=1e-3
    )
    assert result["tiled_share"] == pytest.approx(
        result["mpix_per_s"] / result["kernel_mpix_per_s"], rel=1e-3, abs=1e-3
    )


def test_tiled_bench_help_and_bad_input():
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "bench", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--tiled" in proc.stdout and "--scheduler" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "bench",
            "--tiled",
            "--frames",
            "0",
            "--nanobragg",
            SMALL,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--frames" in proc.stderr
    for tile in ("0", "-5"):  # a tiled job needs tiles of at least one pixel
        cmd = [sys.executable, "-m", "service.cli", "bench", "--tiled", "--tile", tile,
               "--nanobragg", SMALL]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            "braggtile bench: error: --tile: Input should be greater than or equal to 1"
        ]


def test_tiled_bench_times_a_dataset_of_stills():
    """--stills N --vary: a dataset job (small frames, several per task), its frames/s and the
    kernel's on the job's own frames."""
    small = "-cell 78 78 37 90 90 90 -N 6 -default_F 100 -lambda 1 -distance 120 -detpixels 64"
    cmd = [sys.executable, "-m", "service.cli", "bench", "--tiled", "--workers", "1",
           "--stills", "6", "--vary", "orientation=random", "--vary", "N=uniform:3,12",
           "--seed", "3", "--repeat", "1", "--nanobragg", small]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frames"] == 6 and result["tiles"] == 6 and result["pixels"] == 6 * 64 * 64
    warm = result["warm_job_seconds"]
    assert result["frames_per_s"] == pytest.approx(6 / warm, rel=1e-3, abs=1e-3)
    assert result["kernel_frames_per_s"] == pytest.approx(
        1 / result["kernel_warm_seconds"], rel=1e-3, abs=1e-3
    )
    bad = [*cmd[:7], "--stills", "0", "--nanobragg", small]
    proc = subprocess.run(bad, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["braggtile bench: error: --stills: must be >= 1"]
