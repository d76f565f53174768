"""Memory stays bounded by the block size, not by sources x phi x mosaic x sub-pixels x layers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

GIB = 1 << 30

# 9 sources (3x3 divergence), 10 mosaic domains, 4 phi steps, 3x3 sub-pixels, 2 sensor layers
ARGS = (
    "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 10 -misset 4 8 12 "
    "-hdivrange 0.5 -vdivrange 0.5 -hdivsteps 3 -vdivsteps 3 -square_div "
    "-mosaic 1 -mosaic_domains 10 -phi 0 -osc 2 -phisteps 4 -oversample 3 "
    "-detector_thick 100 -detector_thicksteps 2 -distance 200 -detpixels 512"
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from engine import Window, prepare_frame, render_window
    from engine.memory import peak_rss_mib
    from engine.resolve import parse_nanobragg
    import resource
    setup = prepare_frame(parse_nanobragg(sys.argv[1].split()).experiment, torch.float32)
    image = render_window(setup, Window(0, 512, 0, 512))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    render_window(setup, Window(0, 512, 0, 512))  # warm: block buffers come from the heap
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({
        "sources": setup.n_sources, "orientations": setup.n_orientations,
        "oversample": setup.oversample, "layers": setup.sensor.layers,
        "positive": bool((image > 0).all()), "finite": bool(torch.isfinite(image).all()),
        "peak_rss_bytes": peak_rss_mib() * 2**20, "warm_page_faults": faults,
    }))
    """
)


def test_many_samples_per_pixel_render_under_2_gib():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ARGS], capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["sources"], result["orientations"]) == (9, 40)
    assert (result["oversample"], result["layers"]) == (3, 2)
    assert result["positive"] and result["finite"]
    assert result["peak_rss_bytes"] < 2 * GIB, result
    # a warm render reuses freed block buffers (engine.memory.keep_freed_memory): unmapped
    # after each block, they would fault in again page by page (GiBs of 4 KiB faults)
    assert result["warm_page_faults"] * 4096 < 256 << 20, result
