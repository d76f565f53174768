"""The one registry of output formats: tiles (npy, png) and whole frames (float, SMV)."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.plan import plan
from engine.resolve import parse_nanobragg
from engine.smv import int_image, read_smv, smv_header, write_smv
from engine.statistics import TileStatistics
from engine.window import Window
from service.imaging import Contrast
from service.serializers import REGISTRY, FrameContext, Options, register, serializer

ARGS = (
    "-cell 100 100 100 90 90 90 -default_F 1 -lambda 1.2 -distance 100 -detpixels_f 6 "
    "-detpixels_s 4"
)


def test_every_format_has_one_entry() -> None:
    found = {(s.name, s.media_type, s.extension, s.whole_frame) for s in REGISTRY.values()}
    assert found == {
        ("npy", "application/x-npy", "npy", False),
        ("png", "image/png", "png", False),
        ("float", "application/octet-stream", "bin", True),
        ("smv", "application/octet-stream", "img", True),
    }
    with pytest.raises(KeyError, match="no format 'tiff'; known: float, npy, png, smv"):
        serializer("tiff")
    with pytest.raises(ValueError, match="registered twice"):
        register("npy", "application/x-npy", "npy")(lambda pixels, context, options: b"")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_keeps_the_exact_values(dtype) -> None:
    pixels = (np.arange(12, dtype=dtype).reshape(3, 4) + 0.1).astype(dtype)
    got = np.load(io.BytesIO(serializer("npy").encode(pixels, None, Options())))
    assert got.dtype == dtype and got.dtype.byteorder in "<="
    np.testing.assert_array_equal(got, pixels)


def test_png_follows_the_contrast() -> None:
    pixels = np.array([[0.0, 50.0, 100.0, 200.0]])
    body = serializer("png").encode(pixels, None, Options(contrast=Contrast(vmin=0, vmax=100)))
    image = np.asarray(Image.open(io.BytesIO(body)))
    assert image.tolist() == [[0, 128, 255, 255]]


def test_whole_frame_formats_are_the_c_files(tmp_path: Path) -> None:
    experiment = parse_nanobragg(shlex.split(ARGS)).experiment
    header = smv_header(plan(experiment))
    pixels = np.array([[0, 1, 2, 3, 4, 5]] * 4, dtype=np.float32) * np.float32(1.5)
    mask = np.ones(pixels.shape, dtype=bool)
    stats = TileStatistics.from_tile(pixels, Window(0, 4, 0, 6)).summary()
    context = FrameContext(stats, mask, header)
    floats = serializer("float").encode(pixels, context, Options())
    np.testing.assert_array_equal(np.frombuffer(floats, "<f4").reshape(4, 6), pixels)
    body = serializer("smv").encode(pixels, context, Options(adc=10.0, scale=100.0))
    adu, _ = int_image(pixels, 100.0, 10.0, mask, max_i=stats.max_I)
    write_smv(tmp_path / "c.img", adu, header)  # what `braggtile nanobragg -intfile` writes
    assert body == (tmp_path / "c.img").read_bytes()
    text, image = read_smv(tmp_path / "c.img")
    assert text["WAVELENGTH"] == "1.2" and image[0].tolist() == [10, 160, 310, 460, 610, 760]
    with pytest.raises(ValueError, match="statistics and header"):
        serializer("smv").encode(pixels, None, Options())
