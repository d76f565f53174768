"""MKL VML chooses its kernels before a render runs them on two threads (engine.vml).

oneMKL 2024.2 picks each vector math function's kernel on its first call, and that choice
races when the first call runs on several threads: one thread's chunk then comes out of a
12-bit kernel (pytorch/pytorch#188792; in braggtile, one render window in about 50 fresh
``render --in-process`` processes). The race itself strikes too rarely to test; what these
tests check is the order that rules it out: every VML function's first call in a process is
engine.vml's call on one element, watched by a preloaded library (``tests/vml_first_calls.c``)
that sees every call torch makes into VML.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import native

ROOT = Path(__file__).resolve().parents[1]
ARGS = "-N 5 -cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -distance 100 -detpixels 300"
RENDER = [
    sys.executable, "-m", "tiling", "render", "--nanobragg", ARGS, "--tile", "128",
    "--frames", "2", "--no-progress",
]  # fmt: skip
OPS = "Acos Asin Atan Cos Erf Erfc ErfInv Exp Ln Log10 Log2 Sin Sqrt Tan Tanh Trunc".split()


@pytest.fixture(scope="module")
def watcher(tmp_path_factory) -> Path:
    """tests/vml_first_calls.c built as a shared library."""
    compiler = native.c_compiler()
    if compiler is None:  # CI has one: there, its absence fails rather than skips
        missing = pytest.fail if os.environ.get("CI") else pytest.skip
        missing("no C compiler (cc or gcc) on PATH")
    lib = tmp_path_factory.mktemp("vml") / "vml_first_calls.so"
    source = ROOT / "tests" / "vml_first_calls.c"
    cmd = [compiler, "-O1", "-fPIC", "-shared", "-o", str(lib), str(source), "-ldl"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return lib


def _watched(watcher: Path, cmd: list[str], tmp_path: Path) -> list[dict[str, dict[str, int]]]:
    """Run ``cmd`` with the watcher preloaded; per process that called VML:
    {"first": {function: elements of its first call}, "large": {...: of its first >= 2048}}."""
    logs = tmp_path / "vml"
    logs.mkdir()
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "LD_PRELOAD": str(watcher),
        "VML_FIRST_CALLS_DIR": str(logs),
    }  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    processes = []
    for log in sorted(logs.iterdir()):
        calls: dict[str, dict[str, int]] = {"first": {}, "large": {}}
        for line in log.read_text().splitlines():
            kind, name, n = line.split()
            calls[kind][name] = int(n)
        processes.append(calls)
    return processes


def _late_first_calls(process: dict[str, dict[str, int]]) -> dict[str, int]:
    """Functions whose first call was not engine.vml's call on one element."""
    return {name: n for name, n in process["first"].items() if n != 1}


def test_an_in_process_render_never_makes_a_first_call(watcher: Path, tmp_path: Path) -> None:
    """The job's render windows run airpath's sqrt on two threads (chunks of thousands of
    elements), always after its first call, on one element."""
    cmd = [*RENDER, "-o", str(tmp_path / "s.zarr"), "--in-process"]
    (process,) = _watched(watcher, cmd, tmp_path)
    assert process["large"]["vmsSqrt"] > 2048  # the watcher sees the render's calls
    assert not _late_first_calls(process), "first called by a render, not by engine.vml"


def test_dask_worker_processes_never_make_a_first_call(watcher: Path, tmp_path: Path) -> None:
    """Each worker process of a local cluster likewise, on its first task."""
    cmd = [*RENDER, "-o", str(tmp_path / "s.zarr"), "--workers", "2"]
    processes = _watched(watcher, cmd, tmp_path)
    assert any("vmsSqrt" in p["large"] for p in processes)  # a worker process rendered
    for process in processes:
        assert not _late_first_calls(process), "first called by a render, not by engine.vml"


def test_importing_the_noise_module_makes_every_first_call(watcher: Path, tmp_path: Path) -> None:
    """Noise draws (exp, log, sqrt, cos, trunc) run in threads of their own: every VML
    function, in both precisions, has made its first call, on one element, once the module
    is imported."""
    processes = _watched(watcher, [sys.executable, "-c", "import engine.noise"], tmp_path)
    assert processes, "importing engine.noise called no VML function"
    assert processes[0]["first"] == {f"vm{p}{op}": 1 for op in OPS for p in "sd"}
