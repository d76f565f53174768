"""THE colour definition of braggtile's pictures: colormaps and scales, for the server's PNGs
and (served at ``GET /v1/colormaps``) for the viewer, which colours tiles in the browser.

A pixel value x (photons) becomes a colour in three steps, the same on both sides:

1. ``t = clip((x - vmin) / (vmax - vmin), 0, 1)`` (float64; NaN counts as 0 on the server);
2. ``s = scale(t)``: ``linear`` t, ``sqrt`` sqrt(t), ``log`` log(1 + a t) / log(1 + a) with
   a = 1000 (3 decades, astropy's LogStretch);
3. ``index = floor(255 s + 0.5)``, the colour is ``table[index]`` of a 256-entry RGB table.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

#: Colormaps whose tables are interpolated from anchors: viridis, inferno and magma
#: (matplotlib's CC0 perceptual colormaps) sampled at 33 evenly spaced points, hex RGB.
_ANCHORS: dict[str, str] = {
    "viridis": (
        "440154470d6048186a482374472d7b4537814240863e49893b528b375b8d33638d2f6b8e2c728e297a8e26828e"
        "23898e21918c1f988b1fa08822a78528ae8032b67a3fbc734ec36b5ec96270cf5784d44b98d83eaddc30c2df23"
        "d8e219ece51bfde725"
    ),
    "inferno": (
        "0000040403120b0724150b37210c4a2f0a5b3d09654a0c6b57106e64156e71196e7d1e6d8a226a972766a32c61"
        "b0315bbc3754c73e4cd24644db503be45a31eb6628f1731df68013f98e09fb9d07fcac11fbbc21f9cb35f5db4c"
        "f2ea69f3f68afcffa4"
    ),
    "magma": (
        "0000040303120a0822130d341d114729115a36106b440f7651127c5d177f6a1c81762181832681902a819c2e7f"
        "aa337db73779c43c75d0416fdc4869e75263ef5d5ef56b5cf9795dfc8961fd9869fea772feb67cfec488fed395"
        "fde2a3fcf0b2fcfdbf"
    ),
}
#: Table entries per colormap.
SIZE = 256
#: The log scale's a: log(1 + a t) / log(1 + a) spans log10(1 + a) = 3 decades.
LOG_A = 1000.0


def _from_anchors(hex_rgb: str) -> np.ndarray:
    """(SIZE, 3) uint8 table, linear between evenly spaced anchors, rounded to integers."""
    anchors = np.array(
        [
            [int(hex_rgb[i + c : i + c + 2], 16) for c in (0, 2, 4)]
            for i in range(0, len(hex_rgb), 6)
        ]
    )
    x = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, SIZE)
    columns = [np.interp(t, x, anchors[:, c]) for c in range(3)]
    return np.floor(np.stack(columns, axis=1) + 0.5).astype(np.uint8)


def _tables() -> dict[str, np.ndarray]:
    ramp = np.repeat(np.arange(SIZE, dtype=np.uint8)[:, None], 3, axis=1)
    tables = {"gray": ramp, "gray_r": ramp[::-1].copy()}
    tables.update({name: _from_anchors(hex_rgb) for name, hex_rgb in _ANCHORS.items()})
    for table in tables.values():
        table.flags.writeable = False
    return tables


#: Colormap name -> (SIZE, 3) uint8 RGB table (read-only), in the order the viewer lists them.
TABLES: dict[str, np.ndarray] = _tables()
#: Scale name -> its formula (in t, the value's place in [vmin, vmax]) and parameters.
SCALES: dict[str, dict[str, Any]] = {
    "linear": {"formula": "t", "parameters": {}},
    "sqrt": {"formula": "sqrt(t)", "parameters": {}},
    "log": {"formula": "log(1 + a*t) / log(1 + a)", "parameters": {"a": LOG_A}},
}

Colormap = Literal[tuple(TABLES)]  # type: ignore[valid-type]
Scale = Literal[tuple(SCALES)]  # type: ignore[valid-type]


def stretch(scale: str, t: np.ndarray) -> np.ndarray:
    """``SCALES[scale]`` applied to ``t`` in [0, 1] (float64)."""
    if scale == "sqrt":
        return np.sqrt(t)
    if scale == "log":
        return np.log1p(LOG_A * t) / math.log1p(LOG_A)
    if scale == "linear":
        return t
    raise ValueError(f"scale: {scale!r} is not one of {', '.join(SCALES)}")


def table_index(s: np.ndarray) -> np.ndarray:
    """Table entries (uint8) of scaled values ``s`` in [0, 1]: floor(255 s + 0.5)."""
    return np.floor(s * (SIZE - 1) + 0.5).astype(np.uint8)


def document() -> dict[str, Any]:
    """What ``GET /v1/colormaps`` serves: the tables as [[r, g, b], ...] and the scales."""
    return {
        "size": SIZE,
        "index": "floor(255 * scale(t) + 0.5)",
        "t": "clip((value - vmin) / (vmax - vmin), 0, 1)",
        "colormaps": {name: table.tolist() for name, table in TABLES.items()},
        "scales": SCALES,
    }
