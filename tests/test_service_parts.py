"""Parts of the service that need no server: input file names, contrast and colour, store keys."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from service.errors import BadInput, NotFound, TooLarge
from service.imaging import Contrast, lut, to_png
from service.inputs import check_name, parse_arguments, write_inputs
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
        Contrast("log", 0, 999).normalise(decades), [[0, 1 / 3, 2 / 3, 1]], atol=1e-12
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
