"""Small example jobs for the viewer's preset menu (nanoBragg flags; small detectors)."""

from __future__ import annotations

from service.models import Preset

PRESETS: list[Preset] = [
    Preset(
        name="cubic lysozyme-like",
        description="100 A cubic cell, 5x5x5 cells, 512x512 pixels at 100 mm",
        nanobragg=(
            "-cell 100 100 100 90 90 90 -misset 10 20 30 -N 5 -default_F 100 -lambda 1 "
            "-distance 100 -detpixels 512"
        ),
    ),
    Preset(
        name="mosaic crystal",
        description="mosaic spread 0.5 deg over 10 domains, 0.2 deg oscillation, 384x384 pixels",
        nanobragg=(
            "-cell 78 78 38 90 90 90 -misset 5 15 25 -N 10 -default_F 100 -lambda 1.0 "
            "-mosaic 0.5 -mosaic_dom 10 -osc 0.2 -phisteps 4 -distance 120 -detpixels 384"
        ),
    ),
    Preset(
        name="wide detector",
        description="700x300 pixels (fast x slow), 200 A cell, water background",
        nanobragg=(
            "-cell 200 200 200 90 90 90 -misset 3 7 11 -N 4 -default_F 100 -lambda 1 "
            "-distance 150 -water 50 -detpixels_f 700 -detpixels_s 300"
        ),
    ),
]
