"""PNG pictures of pixel arrays: contrast (vmin/vmax), scale and colormap, with Pillow.

Colours follow :mod:`service.colormaps` (the definition the viewer also uses): a pixel value
x (photons) maps to t = clip((x - vmin) / (vmax - vmin), 0, 1), then the scale, then an entry
of the colormap's 256-entry table. Defaults: vmin = 0, vmax = the largest value shown.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service.colormaps import TABLES, Colormap, Scale, stretch, table_index


def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colour table of colormap ``name``."""
    return TABLES[name]


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
        return stretch(self.scale, t)


def to_png(data: np.ndarray, contrast: Contrast) -> bytes:
    """A (slow, fast) array as PNG bytes: row 0 at the top, fast pixels left to right."""
    index = table_index(contrast.normalise(np.asarray(data)))
    table = lut(contrast.colormap)
    if contrast.colormap == "gray":
        image = Image.fromarray(table[:, 0][index])  # one channel: grey levels
    else:
        image = Image.fromarray(table[index])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
