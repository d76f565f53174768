"""``braggtile bench`` (engine.bench): progress lines, then one JSON line with every field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.bench import main
from engine.resolve import parse_nanobragg

TINY = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 5 -distance 100 -detpixels 24"
FIELDS = {
    "cold_seconds": float,
    "warm_seconds": float,
    "pixels": int,
    "steps_per_pixel": int,
    "device": str,
    "dtype": str,
    "mpix_per_s": float,
}


def _result(out: str) -> dict:
    lines = [line for line in out.strip().splitlines() if line.strip()]
    result = json.loads(lines[-1])
    for name, kind in FIELDS.items():
        assert isinstance(result[name], kind), name
    assert sum(line.startswith("bench: repeat") for line in lines[:-1]) == result["repeat"]
    return result


def test_bench_prints_progress_then_json(capsys):
    assert main(["--nanobragg", TINY, "--repeat", "2", "--compile", "off"]) == 0
    result = _result(capsys.readouterr().out)
    assert result["pixels"] == 24 * 24
    assert result["device"] == "cpu" and result["dtype"] == "float32"
    assert result["repeat"] == 2 and len(result["seconds"]) == 2
    assert result["cold_seconds"] == result["seconds"][0]
    assert result["warm_seconds"] == result["seconds"][1]
    assert result["steps_per_pixel"] >= 1 and result["mpix_per_s"] > 0
    assert result["compiled"] is False and result["peak_rss_mib"] > 0


def test_bench_spec_tiles_and_float64(tmp_path, capsys):
    experiment = parse_nanobragg(TINY.split()).experiment
    spec = {"experiment": experiment.model_dump(mode="json"), "tile": 10, "dtype": "float64"}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(spec))
    argv = ["--spec", str(path), "--repeat", "3", "--compile", "off", "--threads", "1"]
    assert main(argv) == 0
    result = _result(capsys.readouterr().out)
    assert result["dtype"] == "float64" and result["tile"] == 10 and result["threads"] == 1
    assert result["pixels"] == 24 * 24 and len(result["seconds"]) == 3


def test_bench_bad_input():
    assert main(["--nanobragg", TINY, "--repeat", "0"]) == 2
    assert main([]) == 2  # neither --nanobragg nor --spec


def test_bench_runs_as_module():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.bench",
            "--nanobragg",
            TINY,
            "--repeat",
            "2",
            "--compile",
            "off",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _result(proc.stdout)["pixels"] == 24 * 24
