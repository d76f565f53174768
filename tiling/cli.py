"""``braggtile render``: render a job into an OME-Zarr store on a Dask cluster.

``service.cli`` wires :func:`add_render_parser` into the ``braggtile`` command; ``python -m
tiling render ...`` runs the same command stand-alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from engine import config
from engine.argsplit import split_arguments
from engine.errors import EXIT_INTERRUPTED, InputError, run_command
from engine.jobfile import read_job_file, spec_error
from engine.memory import peak_rss_mib
from engine.passthrough import split_nanobragg
from engine.precision import PRECISIONS
from tiling.cluster import connect, scheduler_address
from tiling.events import Event, EventHook, FrameDone, JobDone, JobStarted, TileDone
from tiling.graph import JobCancelled, render_job
from tiling.job import DEFAULT_TILE, JobSpec
from tiling.lock import StoreLock
from tiling.outputs import NanoBraggFiles, requested_outputs
from tiling.pyramid import DEFAULT_MIN_SIZE
from tiling.worker import FrameWriter

#: Exit status after SIGTERM, as a shell reports a process the signal ended (128 + 15).
EXIT_TERMINATED = 128 + signal.SIGTERM

PROG = "braggtile render"
#: Job fields named by another option than --FIELD.
OPTION_NAMES = {
    "variations": "--vary",
    "experiment": "--spec",
    "spec": "--spec",
    "photons": "--no-photons",
}
DESCRIPTION = (
    "Render a nanoBragg job tile by tile on Dask workers into an OME-Zarr (zarr v3) store. "
    "Re-running the same command on a partial store finishes only the missing tiles. "
    "nanoBragg arguments go after --nanobragg (one quoted string) or after -- "
    "(braggtile render -o out.zarr -- -hkl P1.hkl -cell ...)."
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
    p.add_argument(
        "--nanobragg",
        metavar="ARGS",
        help='nanoBragg arguments, quoted: "-hkl P1.hkl -cell ..." (or give them after --)',
    )
    p.add_argument(
        "--spec",
        metavar="JOB.json",
        help="a job (JobSpec JSON: experiment, frames, tile, dtype, pyramid_min) or a bare "
        "Experiment; the old spelling is read too",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="zarr store path")
    p.add_argument("--tile", type=int, help=f"tile (= chunk) size, pixels (default {DEFAULT_TILE})")
    p.add_argument("--frames", type=int, help="consecutive oscillation frames (default 1)")
    p.add_argument("--dtype", choices=PRECISIONS, help="precision (default: -dtype, else float32)")
    add_dataset_arguments(p)
    where = add_cluster_arguments(p)
    where.add_argument(
        "--in-process",
        action="store_true",
        help="render in this process (one thread-based worker using every core): no cluster"
        " start-up, same store and events; for one-machine jobs",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: GPU workers when there are any (default)",
    )
    add_store_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace a store of another job")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_response_arguments(p)
    p.set_defaults(func=run_render)
    return p


def add_response_arguments(p: argparse.ArgumentParser) -> None:
    """The detector response options: any of them stores the detector's image (ADU) too."""
    group = p.add_argument_group(
        "detector response", "the detector's image (ADU) is stored beside the photons"
    )
    group.add_argument("--noise", action="store_true", help="Poisson photon noise")
    group.add_argument("--gain", type=float, metavar="ADU", help="ADU per photon (1)")
    group.add_argument("--readout-noise", type=float, metavar="ADU", help="rms, ADU (0)")
    group.add_argument(
        "--psf", metavar="SHAPE:FWHM_UM", help="point spread: gauss:FWHM_UM or fiber:FWHM_UM"
    )
    group.add_argument("--overload", type=int, metavar="ADU", help="saturation, ADU (65535)")
    group.add_argument("--adc-offset", type=float, metavar="ADU", help="ADC offset, ADU (40)")


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    """What the store keeps besides level 0: the pyramid (``--pyramid-min``, ``--no-pyramid``)
    and whether the photons are kept when the detector's image is stored (``--no-photons``)."""
    p.add_argument(
        "--pyramid-min",
        type=int,
        help=f"stop the pyramid at this many pixels (default {DEFAULT_MIN_SIZE})",
    )
    p.add_argument(
        "--no-pyramid",
        action="store_true",
        help="level 0 only, no pyramid levels (for batch jobs nobody browses; the same as "
        "--pyramid-min of the detector's longest side)",
    )
    p.add_argument(
        "--no-photons",
        action="store_true",
        help="keep only the detector's image (integer ADU; needs --noise or another detector "
        "response option), not the float photons: it becomes the store's level 0",
    )


def store_options(args: argparse.Namespace, job: JobSpec) -> dict[str, Any]:
    """The job options of :func:`add_store_arguments` (None: not given) for ``job``."""
    pyramid_min = getattr(args, "pyramid_min", None)
    if getattr(args, "no_pyramid", False):
        if pyramid_min is not None:
            raise InputError("--no-pyramid", "give --no-pyramid or --pyramid-min, not both")
        det = job.experiment.detector
        pyramid_min = max(det.slow_pixels, det.fast_pixels)
    photons = False if getattr(args, "no_photons", False) else None
    return {"pyramid_min": pyramid_min, "photons": photons}


#: Response options: command-line option -> DetectorResponse field.
RESPONSE_OPTIONS = {
    "--noise": "noise",
    "--seed": "seed",
    "--gain": "gain",
    "--readout-noise": "readout_noise",
    "--psf": "psf",
    "--overload": "overload",
    "--adc-offset": "adc_offset",
}


def response_options(args: argparse.Namespace, seed: int | None) -> dict[str, Any] | None:
    """The detector response the options ask for, as a dict (None: none asked for);
    ``seed``: the nanoBragg arguments' ``-seed``, used when ``--seed`` is not given."""
    values = {field: getattr(args, field, None) for field in RESPONSE_OPTIONS.values()}
    given = {field: v for field, v in values.items() if v is not None and v is not False}
    if not given.keys() - {"seed"}:  # --seed alone seeds a dataset's draws
        return None
    if "seed" not in given and seed is not None:
        given["seed"] = seed
    return given  # --psf stays text: PointSpread reads its SHAPE:FWHM_UM form


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """Options of a dataset job: independent stills, per-frame draws, or a frames table."""
    p.add_argument(
        "--stills",
        type=int,
        metavar="N",
        help="N independent still frames (no rotation between them; -osc is still the "
        "rotation within a frame)",
    )
    p.add_argument(
        "--vary",
        action="append",
        metavar="KEY=DIST",
        help="draw a parameter per frame (repeatable): orientation=random|jitter:DEG, "
        "cell=normal:FRACTION, mosaic=uniform:LO,HI (deg), N=uniform:LO,HI, "
        "lambda=normal:FRACTION, flux=lognormal:SIGMA, distance=normal:MM, "
        "beam_center=normal:MM, water=uniform:LO,HI (um)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="seed of the per-frame draws (default 0) and of the detector noise (default: "
        "-seed, else 0)",
    )
    p.add_argument(
        "--frames-table",
        metavar="FILE",
        help="one row per frame (CSV or JSON lines): phi, misset or umat, cell, mosaic, N, "
        "lambda, flux, distance, beam_center, water",
    )


def dataset_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job options of the dataset arguments (None: not given)."""
    from engine import dataset

    if args.stills is not None and args.frames is not None:
        raise InputError("--stills", "give --stills N or --frames N, not both")
    for flag, count in (("--frames", args.frames), ("--stills", args.stills)):
        if count is not None and count < 1:
            raise InputError(flag, "must be >= 1")
    variations = None
    if args.vary:
        variations = {}
        for item in args.vary:
            key, sep, dist = item.partition("=")
            if not sep:
                raise InputError("--vary", f"{item!r}: spell it KEY=DIST")
            variations[key.strip()] = dist.strip()
        dataset.parse_variations(variations)
    table = dataset.read_frames_table(args.frames_table) if args.frames_table else None
    return {
        "stills": True if args.stills is not None else None,
        "frames": args.stills,
        "variations": variations,
        "seed": args.seed,
        "frames_table": table,
    }


def add_cluster_arguments(p: argparse.ArgumentParser) -> Any:
    """Where the workers are, for ``render`` and ``serve``: ``--workers`` | ``--scheduler`` |
    ``--cluster`` (a mutually exclusive group, returned for more choices), the batch job range
    and ``--torch-threads``."""
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, help="embedded LocalCluster worker processes (ignores the env)"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="existing Dask scheduler (or DASK_SCHEDULER_ADDRESS)"
    )
    add_batch_arguments(p, where)
    p.add_argument(
        "--torch-threads", type=int, help="torch threads per worker (default: cores/workers)"
    )
    return where


def add_batch_arguments(p: argparse.ArgumentParser, where: Any) -> None:
    """``--cluster slurm|pbs|sge|lsf`` (into the mutually exclusive group ``where``) and the
    adaptive job range ``--min-jobs``/``--max-jobs``: workers as batch jobs via dask-jobqueue."""
    from tiling.batch import BATCH_CLUSTERS

    where.add_argument(
        "--cluster",
        choices=list(BATCH_CLUSTERS),
        help="start workers as batch jobs with dask-jobqueue, configured by jobqueue.<kind> "
        "in the Dask config (see deploy/jobqueue.yaml; needs braggtile[hpc])",
    )
    p.add_argument("--min-jobs", type=int, default=0, help="--cluster: fewest batch jobs (0)")
    p.add_argument("--max-jobs", type=int, default=4, help="--cluster: most batch jobs (4)")


def load_job(args: argparse.Namespace) -> tuple[JobSpec, FrameWriter | None]:
    """The job the arguments describe (command-line options win over a spec file's), and the
    writer of the C output files named in ``--nanobragg`` (None if none are)."""
    nanobragg = nanobragg_argv(args)
    if (nanobragg is None) == (args.spec is None):
        raise InputError("--nanobragg", "give the job as nanoBragg arguments or --spec (one)")
    writer_outputs = None
    seed = None
    if nanobragg is not None:
        from engine.resolve import parse_nanobragg

        run = parse_nanobragg(nanobragg)
        job = JobSpec(run.experiment, dtype=run.dtype)
        writer_outputs = requested_outputs(nanobragg, run.outputs)
        seed = run.outputs.seed
    else:
        job = load_spec(args.spec)
    overrides = {
        "frames": args.frames,
        "tile": args.tile,
        "dtype": args.dtype,
        "response": response_options(args, seed),
    } | store_options(args, job)
    dataset = dataset_options(args)
    table = dataset["frames_table"]
    frames = args.frames if dataset["frames"] is None else dataset.pop("frames")
    dataset.pop("frames", None)
    overrides |= dataset | {"frames": len(table) if frames is None and table else frames}
    job = with_options(job, **overrides)
    if writer_outputs and not job.photons:
        raise InputError(
            "--no-photons",
            "the nanoBragg output files (-floatfile, -intfile, -pgmfile, -noisefile) are made "
            "from the photons: leave them out, or keep the photons",
        )
    writer = NanoBraggFiles(writer_outputs, job.frames) if writer_outputs else None
    return job, writer


def with_options(job: JobSpec, **options: Any) -> JobSpec:
    """``job`` with the given command-line options (None: keep the job's), validated: a bad
    value is an InputError naming its option (``tile`` -> ``--tile``)."""
    data = job.to_dict() | {k: v for k, v in options.items() if v is not None}
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(part) for part in first["loc"]] or ["spec"]
        if loc[0] == "response" and len(loc) > 1:
            option = "--psf" if loc[1] == "psf" else "--" + loc[1].replace("_", "-")
        else:
            option = OPTION_NAMES.get(loc[0], "--" + loc[0].replace("_", "-"))
        raise InputError(option, first["msg"].removeprefix("Value error, ")) from None


def nanobragg_argv(args: argparse.Namespace) -> list[str] | None:
    """The nanoBragg arguments (split from argv by :func:`main`, or from ``--nanobragg``)."""
    given = getattr(args, "nanobragg_argv", None)
    if given is not None:
        return given
    if args.nanobragg is not None:
        return split_arguments(args.nanobragg)
    return None


def load_spec(path: str) -> JobSpec:
    """A job from a ``--spec`` JSON file (a job or a bare experiment, old spelling too)."""
    data = read_job_file(path)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise spec_error(err, path) from None


def check_output(path: str) -> None:
    """Create the store's folder now, so that an unusable ``-o`` fails before any work."""
    if "://" in path:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise InputError("-o", f"cannot create the store {path}: {err.strerror or err}") from None
    if not os.access(path, os.W_OK):
        raise InputError("-o", f"cannot write the store {path}: permission denied")


def runs_in_process(args: argparse.Namespace, job: JobSpec) -> bool:
    """Whether a render with no cluster named (no ``--workers``, ``--scheduler``, ``--cluster``
    or ``DASK_SCHEDULER_ADDRESS``) is small enough to run in this process: at most
    ``braggtile.tiling.in-process-pixels`` pixels in all frames. Starting worker processes
    costs about 2 s here, more than a 4096 x 4096 frame takes to render."""
    if args.workers is not None or args.scheduler or args.cluster or scheduler_address(None):
        return False
    det = job.experiment.detector
    pixels = job.frames * det.fast_pixels * det.slow_pixels
    return pixels <= config.integer("tiling.in-process-pixels")


def run_render(args: argparse.Namespace) -> int:
    """Run ``braggtile render``; returns the process exit status (2 for bad input)."""
    return run_command(PROG, lambda: _render(args))


#: What ``braggtile render`` says and returns after the first SIGINT or SIGTERM.
STOPS = {
    signal.SIGINT: ("interrupted", EXIT_INTERRUPTED),
    signal.SIGTERM: ("terminated", EXIT_TERMINATED),
}


class Terminated(BaseException):
    """SIGTERM reached ``braggtile render`` before its job ran (a BaseException, as
    KeyboardInterrupt is: no ``except Exception`` stops it on its way out)."""


class Stop:
    """The first SIGINT or SIGTERM of a render (``signum``). While the job runs (``armed``)
    it only sets ``cancel``: render_job sees it within CANCEL_POLL_S, cancels its live tasks
    and raises JobCancelled at a point of its own, so nothing is raised inside whatever the
    main thread was doing (a lock of the client, the event loop's hand-off) and the cluster
    closes whole. Before the job (a cluster starting, workers awaited) it raises
    KeyboardInterrupt or :class:`Terminated` there, as Python's own SIGINT handler does."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False
        self.cancel = threading.Event()

    def __call__(self, signum: int, frame: Any) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
        self.signum = signum
        if self.armed:
            self.cancel.set()
        elif signum == signal.SIGTERM:
            raise Terminated
        else:
            raise KeyboardInterrupt

    @property
    def what(self) -> tuple[str, int]:
        """What to say, and the exit status (of a SIGINT when none came here: Python's own
        handler raised KeyboardInterrupt before this one was in place)."""
        return STOPS[signal.Signals(self.signum or signal.SIGINT)]


@contextmanager
def signals_stop(stop: Stop) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM go to ``stop``, so that the cluster closes on
    the way out (a batch cluster cancels its batch jobs) and the store stays resumable;
    outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, stop) for signum in STOPS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _render(args: argparse.Namespace) -> int:
    job, writer = load_job(args)
    path = args.output if "://" in args.output else os.path.abspath(args.output)
    check_output(path)
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

    in_process = args.in_process or runs_in_process(args, job)
    stop = Stop()
    try:
        with signals_stop(stop):
            with StoreLock(path):  # refuse a store in use before starting a cluster
                pass
            done, workers = _render_on_cluster(args, path, job, writer, in_process, on_event, stop)
    except (KeyboardInterrupt, Terminated, JobCancelled):
        what, status = stop.what
        print(f"{PROG}: {what}; run the same command again to resume", file=sys.stderr)
        return status
    finally:
        if bar is not None:
            bar.close()
    where = "in this process" if in_process else f"on {workers} worker(s)"
    det = job.experiment.detector
    print(
        f"{args.output}: {job.frames} frame(s) of {det.slow_pixels}x{det.fast_pixels} pixels, "
        f"{done.tiles_rendered} tiles rendered, {done.tiles_resumed} resumed, "
        f"in {done.wall_s:.2f} s {where}: {done.pixels_per_s:.4g} pixels/s "
        f"(client peak RSS {peak_rss_mib():.0f} MiB)"
    )
    return 0


def _render_on_cluster(
    args: argparse.Namespace,
    path: str,
    job: JobSpec,
    writer: FrameWriter | None,
    in_process: bool,
    on_event: EventHook,
    stop: Stop,
) -> tuple[JobDone, int]:
    """Render ``job`` into ``path`` on the cluster the arguments name; returns the result and
    the cluster's workers when the render ended (a batch cluster starts its workers only once
    the tiles are submitted, so they are counted after the render, before it retires them)."""
    with connect(
        args.scheduler,
        args.workers,
        args.torch_threads,
        gpu={"auto": None, "cpu": False, "cuda": True}[args.device],
        cluster=args.cluster,
        jobs=(args.min_jobs, args.max_jobs),
        in_process=in_process,
    ) as client:
        stop.armed = True  # a signal from here on cancels the job (see Stop)
        try:
            done = render_job(
                client,
                path,
                job,
                overwrite=args.overwrite,
                device=args.device,
                on_event=on_event,
                frame_writer=writer,
                cancel=stop.cancel,
            )
        finally:
            stop.armed = False
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    return done, workers


def main(argv: list[str] | None = None) -> int:
    """``braggtile render ARGS``: parse the render options (no sub-command name) and run."""
    parser = configure_parser(argparse.ArgumentParser(prog=PROG, description=DESCRIPTION))
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        own, nanobragg = split_nanobragg(argv)
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(own)
    except SystemExit as stop:  # --help, or bad options (argparse printed why)
        return int(stop.code or 0)
    args.nanobragg_argv = nanobragg
    return run_render(args)
