"""``braggtile nanobragg``: the nanoBragg-compatible command line."""

from __future__ import annotations

import sys
import time

import dask.config
import numpy as np
import torch

from engine import resolve_device
from engine.errors import InputError, run_command
from engine.flags import help_text
from engine.frame import FrameSetup
from engine.kernel import block_shape, render_window
from engine.memory import check_frame_memory
from engine.physics import subpixel_coordinates
from engine.precision import torch_dtype
from engine.resolve import NanoBraggRun, parse_nanobragg
from engine.setup import prepare_frame
from engine.smv import c_g
from engine.statistics import FrameStatistics, TileStatistics
from engine.window import Window

USAGE = """usage: braggtile nanobragg (-cell a b c al be ga | -mat A.mat)
                           (-hkl F.hkl | -default_F F) [nanoBragg flags]
nanoBragg flags (single dash, C spelling and defaults; -dtype, -device and -nocompile are
braggtile's own). Bad input exits with status 2 and a one-line message naming the flag.
"""


def usage(full: bool = False) -> str:
    """The usage text; ``full`` adds every flag of the table."""
    return USAGE + ("\n" + help_text() + "\n" if full else "  -help lists every flag\n")


def print_geometry(setup: FrameSetup, out=None) -> None:
    """Print the derived geometry in C nanoBragg's words and units (to stdout by default)."""
    out = sys.stdout if out is None else out
    g = setup.detector
    lat = setup.lattice
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"{g.convention.value.lower()} convention selected.")
    p("pivoting detector around " + ("sample" if g.pivot.value == "SAMPLE" else "direct beam spot"))
    cp = lat.cell_parameters
    p("Unit Cell: " + " ".join(f"{x:g}" for x in cp))
    p(f"volume = {lat.volume_A3:g} A^3")
    p("real-space cell vectors (Angstrom):")
    for i, axis in enumerate("XYZ"):
        p(f"{axis}: " + " ".join(f"{v[i] * 1e10:11.8f}" for v in (lat.a, lat.b, lat.c)))
    p("reciprocal-space cell vectors (Angstrom^-1):")
    for i, axis in enumerate("XYZ"):
        p(f"{axis}: " + " ".join(f"{v[i]:11.8f}" for v in (lat.a_star, lat.b_star, lat.c_star)))
    sx, sy, sz = (x * 1e6 for x in lat.size_m)
    p(f"crystal is {sx:g} x {sy:g} x {sz:g} microns")
    p(f"  {setup.n_sources} sources, {setup.n_orientations} phi steps x mosaic domains")
    p(f"  {setup.oversample}x{setup.oversample} pixel oversample steps")
    p(f"  structure factors: {'tricubic interpolation' if setup.interpolate else 'nearest'}")
    p(f"  incident fluence: {setup.fluence:g} photons/m^2")
    p(
        f"  distance={g.distance:g} detsize={g.detsize_f:g}x{g.detsize_s:g}  pixel={g.pixel_size:g}"
        f" meters ({g.fast_pixels}x{g.slow_pixels} pixels)"
    )
    p(f"  Xbeam={g.xbeam:g} Ybeam={g.ybeam:g}")
    p(f"  Fbeam={g.fbeam:g} Sbeam={g.sbeam:g}")
    p(f"  Xclose={g.xclose:g} Yclose={g.yclose:g}")
    p(f"  Fclose={g.fclose:g} Sclose={g.sclose:g}")
    p(f"  close_distance={g.close_distance:g}")
    p("  pix0_vector= " + " ".join(f"{x:g}" for x in g.pix0))
    p(f"  XDS ORGX={g.orgx:g} ORGY={g.orgy:g}")
    p("  DIRECTION_OF_DETECTOR_X-AXIS= " + " ".join(f"{x:g}" for x in g.fdet))
    p("  DIRECTION_OF_DETECTOR_Y-AXIS= " + " ".join(f"{x:g}" for x in g.sdet))
    p("  DIRECTION_OF_DETECTOR_Z-AXIS= " + " ".join(f"{x:g}" for x in g.odet))
    p("  INCIDENT_BEAM_DIRECTION= " + " ".join(f"{x:g}" for x in g.beam))
    p("  spindle ROTATION_AXIS= " + " ".join(f"{x:g}" for x in g.spindle))
    p("  dials origin= " + " ".join(f"{x:g}" for x in g.dials_origin))
    roi = setup.experiment.sampling.roi  # as C prints it: inclusive, else the pixel counts
    fmin, fmax, smin, smax = (
        (roi.xmin, roi.xmax, roi.ymin, roi.ymax) if roi else (0, g.fast_pixels, 0, g.slow_pixels)
    )
    p(f"  roi: {fmin} < x < {fmax} && {smin} < y < {smax}")
    if setup.experiment.sampling.mask_file is not None:
        p(f"  skipping zero-flagged pixels in {setup.experiment.sampling.mask_file}")


def max_position(setup: FrameSetup, stats: FrameStatistics) -> tuple[float, float]:
    """Position (m) C prints for max_I: the last sub-pixel centre of that pixel."""
    if stats.max_slow < 0:
        return 0.0, 0.0
    os_, sub = setup.oversample, setup.subpixel_size
    fast = subpixel_coordinates(stats.max_fast, 1, os_, sub, 0.0)
    slow = subpixel_coordinates(stats.max_slow, 1, os_, sub, 0.0)
    return float(fast[-1, 0]), float(slow[-1, 0])


def roi_mask(setup: FrameSetup) -> np.ndarray:
    """Boolean (slow, fast) mask of the rendered pixels."""
    return setup.roi.mask(setup.detector.slow_pixels, setup.detector.fast_pixels)


#: Pixels of a rendered band: bounds the kernel's temporaries, so the process stays lean.
BAND_PIXELS = 1 << 20


def render_frame(setup: FrameSetup, progress: bool) -> np.ndarray:
    """Render the whole frame in row bands, with a progress bar on stderr.

    A band is a whole number of compiled blocks' rows (no padded rows between bands).
    """
    g = setup.detector
    image = np.zeros((g.slow_pixels, g.fast_pixels), dtype=np.float32)
    rows = block_shape(setup)[0]
    band = max(rows, BAND_PIXELS // max(1, g.fast_pixels) // rows * rows)
    band = min(g.slow_pixels, band)
    bands = range(0, g.slow_pixels, band)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=g.slow_pixels, unit="row", desc="render", file=sys.stderr, leave=False)
    for s0 in bands:
        s1 = min(g.slow_pixels, s0 + band)
        block = render_window(setup, Window(s0, s1, 0, g.fast_pixels))
        image[s0:s1] = block.to(torch.float32).cpu().numpy()
        if bar is not None:
            bar.update(s1 - s0)
    if bar is not None:
        bar.close()
    return image


#: Pixels per statistics partial: small enough that torch reduces each in one thread, in cache.
STATISTICS_PIXELS = 1 << 15


def frame_statistics(
    image: np.ndarray, mask: np.ndarray, skipped: np.ndarray | None = None
) -> FrameStatistics:
    """Statistics of the ROI pixels of a whole frame, merged from partials of row bands;
    ``skipped``: the ROI pixels ``-mask`` skips (see :meth:`TileStatistics.from_tile`).

    The bands depend only on the frame width, so the float64 sums are the same on every run.
    """
    slow, fast = image.shape
    rows = max(1, STATISTICS_PIXELS // max(1, fast))
    total = TileStatistics()
    for s0 in range(0, slow, rows):
        s1 = min(slow, s0 + rows)
        band = mask[s0:s1]
        total = total.merge(
            TileStatistics.from_tile(
                image[s0:s1],
                Window(s0, s1, 0, fast),
                None if band.all() else band,
                None if skipped is None else skipped[s0:s1],
            )
        )
    return total.summary()


OUTPUT_FLAGS = (
    ("floatfile", "-floatfile"),
    ("intfile", "-intfile"),
    ("pgmfile", "-pgmfile"),
    ("noisefile", "-noisefile"),
)


def check_output_paths(run_: NanoBraggRun) -> None:
    """Each output file can be created: its folder exists and is writable (before rendering)."""
    import os

    for name, flag in OUTPUT_FLAGS:
        path = getattr(run_.outputs, name)
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise InputError(flag, f"{path} is a folder, not a file")
        if not os.path.isdir(folder):
            raise InputError(flag, f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise InputError(flag, f"cannot write {path}: folder {folder} is not writable")


def run(run_: NanoBraggRun) -> int:
    settings = {} if run_.compile else {"braggtile.compile.mode": "off"}
    with dask.config.set(settings):
        return _run(run_)


def _run(run_: NanoBraggRun) -> int:
    from engine.outputs import write_outputs

    dtype = torch_dtype(run_.dtype)
    det = run_.experiment.detector
    check_frame_memory(det.fast_pixels, det.slow_pixels)
    check_output_paths(run_)
    device = resolve_device(run_.device)
    t0 = time.perf_counter()
    setup = prepare_frame(run_.experiment, dtype, device)
    print("nanoBragg-compatible renderer (braggtile engine)")
    if run_.experiment.crystal.fdump_file is not None:
        print(f"reading Fs from {run_.experiment.crystal.fdump_file}")
    print_geometry(setup)
    image = render_frame(setup, run_.outputs.progress)
    seconds = time.perf_counter() - t0
    mask = roi_mask(setup)
    stats = frame_statistics(image, mask, setup.skipped(Window.full(*image.shape)))
    x, y = max_position(setup, stats)
    print(f"max_I = {c_g(stats.max_I)}  at {c_g(x)} {c_g(y)}")
    print(f"mean= {c_g(stats.mean)} rms= {c_g(stats.rms)} rmsd= {c_g(stats.rmsd)}")
    write_outputs(setup, image, stats, run_.outputs, mask, log=print)
    mpix = image.size / max(seconds, 1e-9) / 1e6
    print(
        f"rendered {image.size} pixels on {device} ({run_.dtype}) in {seconds:.3f} s "
        f"({mpix:.1f} Mpixel/s)"
    )
    return 0


def main(argv: list[str]) -> int:
    """Entry point: returns the process exit status (2 for bad input)."""
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if any(a in ("-h", "-help", "--help") for a in argv):
        print(usage(full=True))
        return 0
    return run_command("braggtile nanobragg", lambda: run(parse_nanobragg(argv)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
