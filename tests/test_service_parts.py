"""Parts of the service that need no server: input file names, contrast and colour, store keys."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from engine.model import Experiment
from service.errors import BadInput, NotFound, TooLarge
from service.imaging import Contrast, lut, to_png
from service.inputs import check_name, parse_arguments, resolve_experiment, write_inputs
from service.routers.ops import colormaps
from service.routers.zarr import store_file
from service.settings import Limits

CELL = "-cell 100 100 100 90 90 90 -lambda 1 -distance 100 -detpixels 32"


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "~root"])
def test_names_that_are_not_plain_file_names_are_refused(name: str) -> None:
    with pytest.raises(BadInput) as err:
        check_name(name, "-hkl")
    assert err.value.field == "-hkl"


def test_arguments_read_only_the_job_inputs(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "job"
    inputs = {"P1.hkl": "1 0 0 100\n0 1 0 50\n"}
    write_inputs(folder, inputs, Limits())
    experiment, dtype = parse_arguments(f"{CELL} -hkl P1.hkl -dtype float64", folder, inputs)
    assert experiment.crystal.hkl_file == str(folder / "P1.hkl") and dtype == "float64"
    with pytest.raises(BadInput, match="not among the job's inputs"):
        parse_arguments(f"{CELL} -hkl other.hkl", folder, inputs)
    # C reads Fdump.bin from the working folder when there is no -hkl: never the server's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Fdump.bin").write_bytes(b"not for this job")
    with pytest.raises(InputError) as err:
        parse_arguments(CELL, folder, inputs)
    assert err.value.field == "-hkl"


def test_a_typed_job_names_its_mask_among_the_inputs(tmp_path: Path) -> None:
    exp = Experiment.model_validate(
        {"crystal": {"cell": [50, 50, 50, 90, 90, 90], "default_F": 1},
         "sampling": {"mask_file": "m.img"}}
    )  # fmt: skip
    inputs = {"m.img": "base64:" + base64.b64encode(b"\x00\xff{").decode()}
    write_inputs(tmp_path, inputs, Limits())
    assert (tmp_path / "m.img").read_bytes() == b"\x00\xff{"  # binary, byte for byte
    resolved = resolve_experiment(exp, tmp_path, inputs)
    assert resolved.sampling.mask_file == str(tmp_path / "m.img")
    with pytest.raises(BadInput) as err:
        resolve_experiment(exp, tmp_path, {})
    assert err.value.field == "job.experiment.sampling.mask_file"


def test_inline_inputs_over_the_limit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TooLarge) as err:
        write_inputs(tmp_path, {"P1.hkl": "x" * 101}, Limits(max_input_bytes=100))
    assert err.value.limit == 100 and not list(tmp_path.iterdir())


def test_contrast_scales() -> None:
    data = np.array([[-1.0, 0.0, 25.0, 100.0, 200.0]])
    np.testing.assert_allclose(
        Contrast("linear", 0, 100).normalise(data), [[0, 0, 0.25, 1, 1]], atol=1e-12
    )
    np.testing.assert_allclose(Contrast("sqrt", 0, 100).normalise(data)[0, 2], 0.5)
    # log: the display's three decades, vmin to vmax: each tenfold step above vmin (in units
    # of a 999th of the range) is a third of the scale, 0 and the largest value its ends
    decades = np.array([[0.0, 9.0, 99.0, 999.0]])
    np.testing.assert_allclose(
        Contrast("log", 0, 100).normalise(data)[0, 2], np.log(1 + 1000 * 0.25) / np.log(1001)
    )
    grey = np.asarray(Image.open(io.BytesIO(to_png(decades, Contrast("log", 0, 999)))))
    np.testing.assert_array_equal(grey, [[0, 85, 170, 255]])
    assert Contrast().limits(data) == (0.0, 200.0)  # default: 0 to the largest value
    assert Contrast(vmin=5.0, vmax=5.0).limits(data) == (5.0, 6.0)  # never an empty range


def test_png_orientation_and_colormaps() -> None:
    data = np.zeros((3, 5))
    data[0, 4] = 10.0  # slow 0, fast 4: top right
    grey = Image.open(io.BytesIO(to_png(data, Contrast())))
    assert grey.size == (5, 3) and grey.mode == "L"
    assert grey.getpixel((4, 0)) == 255 and grey.getpixel((0, 2)) == 0
    colour = Image.open(io.BytesIO(to_png(data, Contrast(colormap="viridis"))))
    assert colour.mode == "RGB"
    assert colour.getpixel((4, 0)) == (0xFD, 0xE7, 0x25)  # viridis' brightest yellow
    assert colour.getpixel((0, 0)) == (0x44, 0x01, 0x54)
    table = lut("magma")
    assert table.shape == (256, 3) and tuple(table[0]) == (0, 0, 4)
    reverse = Image.open(io.BytesIO(to_png(data, Contrast(colormap="gray_r"))))
    assert reverse.getpixel((4, 0)) == (0, 0, 0) and reverse.getpixel((0, 0)) == (255, 255, 255)


def expected_rgb(value: float, vmin: float, vmax: float, scale: str, doc: dict) -> list[int]:
    """The colour the colormaps document defines for ``value``, worked out in plain Python."""
    t = min(1.0, max(0.0, (value - vmin) / (vmax - vmin)))
    a = doc["scales"]["log"]["parameters"]["a"]
    s = {"linear": t, "sqrt": math.sqrt(t), "log": math.log(1 + a * t) / math.log(1 + a)}[scale]
    return doc["colormaps"][doc["colormap"]][math.floor((doc["size"] - 1) * s + 0.5)]


@pytest.mark.parametrize("scale", ["linear", "sqrt", "log"])
def test_png_pixels_are_the_served_table_entries(scale: str) -> None:
    served = json.loads(json.dumps(colormaps()))  # the JSON GET /v1/colormaps sends
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.uniform(-20, 2200, 300), rng.exponential(40, 300)]).reshape(20, 30)
    for name in served["colormaps"]:
        png = to_png(data, Contrast(scale, 1.5, 2000.0, name))
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        doc = {**served, "colormap": name}
        want = [[expected_rgb(v, 1.5, 2000.0, scale, doc) for v in row] for row in data]
        np.testing.assert_array_equal(pixels, np.array(want), err_msg=f"{name}/{scale}")


def test_store_keys_stay_inside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    (store / "0" / "c").mkdir(parents=True)
    (store / "zarr.json").write_text("{}")
    (tmp_path / "secret").write_text("no")
    assert store_file(str(store), "zarr.json") == store / "zarr.json"
    for key in ("", "0", "0/c", "../secret", "0/../../secret", "/etc/passwd", "0//zarr.json"):
        with pytest.raises(NotFound):
            store_file(str(store), key)


def test_serve_refuses_bad_options_before_starting(capsys, tmp_path: Path) -> None:
    from service.cli import main

    assert main(["serve", "--workers", "0", "--data", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--workers" in err and ">= 1" in err.replace("greater than or equal to", ">=")
    assert not (tmp_path / "d").exists()
    assert main(["--help"]) == 0 and "serve" in capsys.readouterr().out
