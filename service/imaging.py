"""PNG pictures of pixel arrays: contrast (vmin/vmax), scale and colormap, with Pillow.

A pixel value x (photons) maps to t = clip((x - vmin) / (vmax - vmin), 0, 1), then
``linear``: t, ``sqrt``: sqrt(t), ``log``: log10(1 + 999 t) / 3 (the display's 3 decades),
then to a colour of the colormap. Defaults: vmin = 0, vmax = the largest value shown.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

Scale = Literal["linear", "sqrt", "log"]
Colormap = Literal["gray", "viridis", "inferno", "magma"]

#: Nine evenly spaced colours of each colormap (matplotlib's perceptual maps, sampled).
_ANCHORS: dict[str, list[str]] = {
    "gray": ["000000", "ffffff"],
    "viridis": "440154 472d7b 3b528b 2c728e 21918c 28ae80 5ec962 addc30 fde725".split(),
    "inferno": "000004 1f0c48 550f6d 88226a ba3655 e35933 f98e09 f9cb35 fcffa4".split(),
    "magma": "000004 1c1044 4f127b 812581 b5367a e55064 fb8761 fec287 fcfdbf".split(),
}


def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colour table of colormap ``name`` (linear between its anchors)."""
    anchors = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name]])
    x = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    return (
        np.stack([np.interp(t, x, anchors[:, c]) for c in range(3)], axis=1)
        .round()
        .astype(np.uint8)
    )


_LUTS = {name: lut(name) for name in _ANCHORS}


@dataclass(frozen=True)
class Contrast:
    """How values become colours: [vmin, vmax] photons, scale and colormap."""

    scale: Scale = "linear"
    vmin: float | None = None
    vmax: float | None = None
    colormap: Colormap = "gray"

    def limits(self, data: np.ndarray) -> tuple[float, float]:
        finite = data[np.isfinite(data)]
        vmin = 0.0 if self.vmin is None else float(self.vmin)
        vmax = float(finite.max()) if self.vmax is None and finite.size else self.vmax
        vmax = vmin + 1.0 if vmax is None or vmax <= vmin else float(vmax)
        return vmin, vmax

    def normalise(self, data: np.ndarray) -> np.ndarray:
        """Values in [0, 1] after contrast and scale."""
        vmin, vmax = self.limits(data)
        t = np.clip((np.nan_to_num(data.astype(np.float64)) - vmin) / (vmax - vmin), 0.0, 1.0)
        if self.scale == "sqrt":
            return np.sqrt(t)
        if self.scale == "log":
            return np.log10(1.0 + 999.0 * t) / 3.0
        return t


def to_png(data: np.ndarray, contrast: Contrast) -> bytes:
    """A (slow, fast) array as PNG bytes: row 0 at the top, fast pixels left to right."""
    index = np.round(contrast.normalise(np.asarray(data)) * 255.0).astype(np.uint8)
    if contrast.colormap == "gray":
        image = Image.fromarray(index)
    else:
        image = Image.fromarray(_LUTS[contrast.colormap][index])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
