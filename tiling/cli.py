"""``braggtile render``: render a job into an OME-Zarr store on a Dask cluster.

``service.cli`` wires :func:`add_render_parser` into the ``braggtile`` command; ``python -m
tiling render ...`` runs the same command stand-alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.memory import peak_rss_mib
from engine.model import Experiment
from engine.precision import PRECISIONS
from tiling.cluster import connect
from tiling.events import Event, FrameDone, JobStarted, TileDone
from tiling.graph import render_job
from tiling.job import JobSpec
from tiling.outputs import NanoBraggFiles, requested_outputs
from tiling.pyramid import DEFAULT_MIN_SIZE
from tiling.store import StoreMismatchError
from tiling.worker import FrameWriter

DEFAULT_TILE = 512
DESCRIPTION = (
    "Render a nanoBragg job tile by tile on Dask workers into an OME-Zarr (zarr v3) store. "
    "Re-running the same command on a partial store finishes only the missing tiles."
)


def add_render_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``render`` sub-command to an ``argparse`` subparsers object; returns its parser.

    The parser's ``func`` default is :func:`run_render`.
    """
    p = subparsers.add_parser(
        "render",
        help="render frames into an OME-Zarr store on a Dask cluster",
        description=DESCRIPTION,
    )
    return configure_parser(p)


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``braggtile render`` to ``p``."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--nanobragg", metavar="ARGS", help='nanoBragg arguments, quoted: "-N 5 ..."')
    src.add_argument(
        "--spec",
        metavar="JOB.json",
        help='an Experiment as JSON, or {"experiment": ..., "frames", "tile", "dtype"}',
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="zarr store path")
    p.add_argument("--tile", type=int, help=f"tile (= chunk) size, pixels (default {DEFAULT_TILE})")
    p.add_argument("--frames", type=int, help="consecutive oscillation frames (default 1)")
    p.add_argument(
        "--dtype", choices=PRECISIONS, help="precision (default: -dtype, else float32)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, help="embedded LocalCluster worker processes (ignores the env)"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="existing Dask scheduler (or DASK_SCHEDULER_ADDRESS)"
    )
    p.add_argument(
        "--torch-threads", type=int, help="torch threads per worker (default: cores/workers)"
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: GPU workers when there are any (default)",
    )
    p.add_argument(
        "--pyramid-min",
        type=int,
        default=DEFAULT_MIN_SIZE,
        help=f"stop the pyramid at this many pixels (default {DEFAULT_MIN_SIZE})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a store of another job")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_render)
    return p


def load_job(args: argparse.Namespace) -> tuple[JobSpec, FrameWriter | None]:
    """The job the arguments describe (command-line options win over a spec file's), and the
    writer of the C output files named in ``--nanobragg`` (None if none are)."""
    options: dict[str, Any] = {}
    writer_outputs = None
    dtype = "float32"
    if args.nanobragg is not None:
        from engine.cli_args import parse_nanobragg

        argv = shlex.split(args.nanobragg)
        run = parse_nanobragg(argv)
        experiment, dtype = run.experiment, run.dtype
        writer_outputs = requested_outputs(argv, run.outputs)
    else:
        data = json.loads(Path(args.spec).read_text())
        if isinstance(data, dict) and "experiment" in data:
            options = {k: data[k] for k in ("frames", "tile", "dtype", "pyramid_min") if k in data}
            data = data["experiment"]
        experiment = Experiment.model_validate(data)
    job = JobSpec(
        experiment=absolute_input_paths(experiment),
        frames=args.frames if args.frames is not None else options.get("frames", 1),
        tile=args.tile if args.tile is not None else options.get("tile", DEFAULT_TILE),
        dtype=args.dtype or options.get("dtype", dtype),
        pyramid_min=args.pyramid_min,
    )
    writer = NanoBraggFiles(writer_outputs, job.frames) if writer_outputs else None
    return job, writer


def absolute_input_paths(experiment: Experiment) -> Experiment:
    """``experiment`` with its input files (HKL, Fdump) as absolute paths, for any worker."""
    crystal = experiment.crystal
    update = {
        name: os.path.abspath(value)
        for name in ("hkl_file", "fdump_file")
        if (value := getattr(crystal, name)) is not None
    }
    if not update:
        return experiment
    return experiment.model_copy(update={"crystal": crystal.model_copy(update=update)})


def run_render(args: argparse.Namespace) -> int:
    """Run ``braggtile render``; returns the process exit status."""
    try:
        job, writer = load_job(args)
    except (OSError, ValueError) as exc:
        print(f"braggtile render: error: {exc}", file=sys.stderr)
        return 2

    bar: tqdm | None = None

    def on_event(event: Event) -> None:
        nonlocal bar
        if isinstance(event, JobStarted):
            bar = tqdm(
                total=event.tiles_total,
                initial=event.tiles_done,
                unit="tile",
                disable=args.no_progress,
                file=sys.stderr,
            )
        elif isinstance(event, TileDone) and bar is not None:
            bar.update(1)
        elif isinstance(event, FrameDone) and event.log:
            tqdm.write(event.log.rstrip("\n"))

    path = args.output if "://" in args.output else os.path.abspath(args.output)
    gpu = {"auto": None, "cpu": False, "cuda": True}[args.device]
    try:
        with connect(args.scheduler, args.workers, args.torch_threads, gpu=gpu) as client:
            done = render_job(
                client,
                path,
                job,
                overwrite=args.overwrite,
                device=args.device,
                on_event=on_event,
                frame_writer=writer,
            )
    except (StoreMismatchError, ValueError) as exc:
        print(f"braggtile render: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "braggtile render: interrupted; run the same command again to resume", file=sys.stderr
        )
        return 130
    finally:
        if bar is not None:
            bar.close()
    det = job.experiment.detector
    print(
        f"{args.output}: {job.frames} frame(s) of {det.slow_pixels}x{det.fast_pixels} pixels, "
        f"{done.tiles_rendered} tiles rendered, {done.tiles_resumed} resumed, "
        f"in {done.wall_s:.2f} s: {done.pixels_per_s:.4g} pixels/s "
        f"(client peak RSS {peak_rss_mib():.0f} MiB)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``braggtile render ARGS``: parse the render options (no sub-command name) and run."""
    parser = configure_parser(
        argparse.ArgumentParser(prog="braggtile render", description=DESCRIPTION)
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run_render(args)
