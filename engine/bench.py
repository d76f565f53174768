"""``braggtile bench``: time in-process renders of one frame, cold and warm.

    braggtile bench (--nanobragg "ARGS" | --spec job.json) [--repeat N] [--dtype D]
                    [--device cpu|cuda|auto] [--tile T] [--compile auto|on|off]
    braggtile bench [options] -- -hkl P1.hkl -cell ...     (nanoBragg arguments after --)

Renders the frame ``repeat`` times in this process (set-up included each time, as a
renderer of a series would). It prints a progress line per repeat, then, last, one JSON
line: ``cold_seconds`` (the first frame, compilation included), ``warm_seconds`` (median
of the repeats after the first), ``pixels``, ``steps_per_pixel`` (C nanoBragg's steps:
sources x phi steps x mosaic domains x oversample^2), ``device``, ``dtype``,
``mpix_per_s`` (pixels / warm_seconds / 1e6) and a few more (``peak_rss_mib``,
``compiled``, ``threads``, ``seconds``). Also runnable as ``python -m engine.bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import dask.config
import torch

from engine import resolve_device
from engine.argsplit import split_arguments
from engine.errors import EXIT_BAD_INPUT, InputError, run_command
from engine.jobfile import read_experiment
from engine.memory import check_frame_memory, peak_rss_mib
from engine.model import Experiment
from engine.passthrough import split_nanobragg
from engine.precision import PRECISIONS, torch_dtype
from engine.window import Window

PROG = "braggtile bench"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="braggtile bench", description="Time in-process renders of one frame."
    )
    p.add_argument(
        "--nanobragg", metavar="ARGS", help="nanoBragg arguments, one string (or after --)"
    )
    p.add_argument("--spec", metavar="JOB.json", help="a job spec (or experiment) JSON file")
    p.add_argument("--repeat", type=int, default=3, help="frames to render (default 3)")
    p.add_argument("--dtype", choices=PRECISIONS, default=None, help="float32 (default) or float64")
    p.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="render in T x T windows, as a tiling worker (default: the spec's"
        " tile, else the whole frame in one window; 0: whole frame); with --tiled, the"
        " job's tile (>= 1; default: the spec's, else 512)",
    )
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default=None,
        help="compiled kernel (default: braggtile.compile.mode, see engine/braggtile.yaml)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (default: torch's, normally one per core)",
    )
    return p


def _load(args) -> tuple[Experiment, str | None, str | None, int]:
    """Experiment, dtype and device named by the source (or None), and its tile size (or 0)."""
    nanobragg = getattr(args, "nanobragg_argv", None)
    if nanobragg is None and args.nanobragg is not None:
        nanobragg = split_arguments(args.nanobragg)
    if (nanobragg is None) == (args.spec is None):
        raise InputError("--nanobragg", "give nanoBragg arguments or --spec (one of them)")
    if nanobragg is not None:
        from engine.resolve import parse_nanobragg

        run = parse_nanobragg(nanobragg)
        return (
            run.experiment,
            run.dtype if "-dtype" in run.given else None,
            run.device if "-device" in run.given else None,
            0,
        )
    experiment, options = read_experiment(args.spec)
    return experiment, options.get("dtype"), None, int(options.get("tile") or 0)


def render_frame(experiment: Experiment, dtype: torch.dtype, device: torch.device, tile: int = 0):
    """Prepare and render one whole frame (in tile x tile windows when tile > 0)."""
    from engine.kernel import render_window
    from engine.setup import prepare_frame

    setup = prepare_frame(experiment, dtype, device)
    geo = setup.detector
    rows, cols = geo.slow_pixels, geo.fast_pixels
    if tile <= 0:
        image = render_window(setup, Window.full(rows, cols))
    else:
        image = torch.empty((rows, cols), dtype=dtype, device=device)
        for s0 in range(0, rows, tile):
            for f0 in range(0, cols, tile):
                w = Window(s0, min(rows, s0 + tile), f0, min(cols, f0 + tile))
                image[w.slow0 : w.slow1, w.fast0 : w.fast1] = render_window(setup, w)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return setup, image


def run(args) -> dict:
    if args.repeat < 1:
        raise InputError("--repeat", "must be >= 1")
    experiment, dtype_name, device_name, spec_tile = _load(args)
    det = experiment.detector
    check_frame_memory(det.fast_pixels, det.slow_pixels)
    dtype_name = args.dtype or dtype_name or "float32"
    dtype = torch_dtype(dtype_name, "--dtype")
    device = resolve_device(args.device or device_name or "cpu")
    tile = max(0, args.tile if args.tile is not None else spec_tile)
    threads = torch.get_num_threads()
    settings = {} if args.compile is None else {"braggtile.compile.mode": args.compile}
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        with dask.config.set(settings):
            return _measure(args, experiment, dtype, dtype_name, device, tile)
    finally:  # leave the process as it was (main() may run inside another program)
        torch.set_num_threads(threads)


def _measure(args, experiment, dtype, dtype_name, device, tile) -> dict:
    from engine.kernel import KernelCache, use_compiled

    seconds = []
    setup = None
    for i in range(args.repeat):
        t0 = time.perf_counter()
        setup, image = render_frame(experiment, dtype, device, tile)
        dt = time.perf_counter() - t0
        seconds.append(dt)
        label = "cold" if i == 0 else "warm"
        print(f"bench: repeat {i + 1}/{args.repeat} ({label}): {dt:.4f} s", flush=True)
        del image
    assert setup is not None
    geo = setup.detector
    pixels = geo.slow_pixels * geo.fast_pixels
    warm = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    compiled = use_compiled(setup) and not KernelCache.shared().failed(setup)
    result = {
        "cold_seconds": round(seconds[0], 6),
        "warm_seconds": round(warm, 6),
        "pixels": pixels,
        "steps_per_pixel": setup.steps,
        "samples_per_pixel": setup.steps * setup.sensor.layers,
        "device": str(device),
        "dtype": dtype_name,
        "mpix_per_s": round(pixels / max(warm, 1e-12) / 1e6, 3),
        "compiled": bool(compiled),
        "threads": torch.get_num_threads(),
        "tile": tile or None,
        "repeat": args.repeat,
        "seconds": [round(s, 6) for s in seconds],
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    if device.type == "cuda":
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point (``braggtile bench``): returns the process exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        own, nanobragg = split_nanobragg(argv)
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        args = _parser().parse_args(own)
    except SystemExit as stop:  # --help, or bad arguments (argparse printed why)
        return int(stop.code or 0)
    args.nanobragg_argv = nanobragg
    return run_command(PROG, lambda: _print(run(args)))


def _print(result: dict) -> int:
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
