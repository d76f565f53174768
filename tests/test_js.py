"""The viewer's pure JavaScript modules (npy, colour, geometry) under Node's test runner.

``node --test tests/js`` runs tests/js/*.test.mjs. This test first writes what the server
produces for the same inputs: the colormaps document (as GET /v1/colormaps serves it) and the
RGB pixels of PNGs rendered by service.imaging for every scale, so the JS test proves the
viewer colours exactly like the server's PNGs. Skipped without Node, except under CI=true.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.colormaps import SCALES
from service.imaging import Contrast, to_png
from service.routers.ops import colormaps

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node") or shutil.which("nodejs")
#: Contrast and colormap of the PNG cases; one case per scale.
STYLE = {"vmin": 2.0, "vmax": 5000.0, "colormap": "inferno"}


def write_fixtures(folder: Path) -> int:
    """The colormaps document and, per scale, a float32 .npy input and its PNG's RGB bytes."""
    (folder / "colormaps.json").write_text(json.dumps(colormaps()))
    rng = np.random.default_rng(7)
    data = np.concatenate(
        [rng.exponential(300.0, 4000), rng.uniform(-10.0, 6000.0, 2000), np.linspace(0, 50, 100)]
    ).astype(np.float32)
    data = data.reshape(61, 100)
    np.save(folder / "input.npy", data)
    cases = []
    for scale in SCALES:
        style = {**STYLE, "scale": scale}
        png = to_png(data, Contrast(scale, style["vmin"], style["vmax"], style["colormap"]))
        rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        (folder / f"{scale}.rgb").write_bytes(rgb.tobytes())
        cases.append({"npy": "input.npy", "rgb": f"{scale}.rgb", "style": style})
    (folder / "png_cases.json").write_text(json.dumps(cases))
    return len(cases)


def test_javascript_modules_under_node(tmp_path: Path) -> None:
    if NODE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed; CI must run the JS tests (apt-get install nodejs)")
        pytest.skip("node is not installed (Debian: apt-get install nodejs)")
    assert write_fixtures(tmp_path) == 3
    env = {**os.environ, "BRAGGTILE_JS_FIXTURES": str(tmp_path)}
    run = subprocess.run(
        [NODE, "--test", "tests/js"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]
    assert "# fail 0" in run.stdout and "# skipped 0" in run.stdout, run.stdout[-4000:]
