"""``braggtile bench --tiled``: time the tiled pipeline on a Dask cluster, one JSON line.

    braggtile bench --tiled [--workers N | --scheduler ADDR | --in-process] [--tile T]
                    [--frames F]
                    [--repeat R] [--dtype D] (--nanobragg "ARGS" | --spec job.json | -- ARGS)

Starts (or connects to) the cluster, renders the job into a fresh store in a temporary
folder once (``first_job_seconds``: fresh workers, kernels loaded from the on-disk cache),
then ``repeat`` more times (``warm_job_seconds``: their median), each into a new store with
its pyramid, deleted after the job (the folder is ``TMPDIR``'s: put it on tmpfs to time the
pipeline without the disk's write bandwidth). The JSON line holds
``cluster_start_seconds``, those job times, ``mpix_per_s`` (frames x pixels / warm job),
``frames_per_s`` (frames / warm job), ``stages``: worker seconds of the median warm job
summed over its tasks, by stage ("setup", "render", "statistics", "write" (chunk encoding
and write, record), "pyramid"), and "scheduling": the rest of workers x wall (idle workers,
task transfer and dispatch, client round trips); ``client_cpu_seconds``: CPU time of this
process during that job (the client, and the scheduler of an embedded cluster).
``--compare-kernel`` then times the in-process warm kernel on the same frames
(``kernel_mpix_per_s``, ``kernel_frames_per_s``) and reports ``tiled_share``, the tiled
pipeline's pixel rate as a fraction of the kernel's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.errors import EXIT_BAD_INPUT, InputError, run_command
from engine.memory import peak_rss_mib
from engine.passthrough import split_nanobragg


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the tiled benchmark (added to ``braggtile bench``'s parser)."""
    p.add_argument(
        "--tiled",
        action="store_true",
        help="time the tiled pipeline (cluster, tasks, store, pyramid) instead of the kernel",
    )
    p.add_argument("--workers", type=int, default=None, help="--tiled: embedded worker processes")
    p.add_argument("--scheduler", default=None, help="--tiled: address of a running scheduler")
    p.add_argument("--frames", type=int, default=None, help="--tiled: frames per job (1)")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="--tiled: one thread-based worker in this process (braggtile render --in-process)",
    )
    p.add_argument(
        "--compare-kernel",
        action="store_true",
        help="--tiled: also time the in-process warm kernel on the same frame afterwards"
        " (kernel_mpix_per_s, tiled_share = tiled / kernel pixel rate)",
    )


def run(args: argparse.Namespace, experiment, dtype_name: str, spec_tile: int) -> dict:
    """Start the cluster, render the job 1 + ``args.repeat`` times; the JSON result."""
    from tiling.cli import with_options
    from tiling.cluster import connect
    from tiling.graph import render_job
    from tiling.job import DEFAULT_TILE, JobSpec

    frames = args.frames if args.frames is not None else 1
    if frames < 1:
        raise InputError("--frames", "must be >= 1")
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", "must be >= 1")
    tile = args.tile if args.tile is not None else spec_tile or DEFAULT_TILE
    job = with_options(JobSpec(experiment), frames=frames, tile=tile, dtype=dtype_name)
    folder = Path(tempfile.mkdtemp(prefix="braggtile-bench-"))
    try:
        t0 = time.perf_counter()
        with connect(args.scheduler, args.workers, in_process=args.in_process) as client:
            workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            cluster_start = time.perf_counter() - t0
            jobs, cpu = [], []  # cpu[i]: this process's CPU seconds during jobs[i]
            for i in range(1 + args.repeat):
                path = str(folder / f"job{i}.zarr")
                cpu0 = time.process_time()
                jobs.append(render_job(client, path, job, overwrite=True))
                cpu.append(time.process_time() - cpu0)
                shutil.rmtree(path, ignore_errors=True)  # bounded space (and page cache)
                print(f"bench: job {i + 1}/{1 + args.repeat}: {jobs[-1].wall_s:.4f} s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    first = jobs[0]
    warm_index = list(range(1, len(jobs))) or [0]
    median_index = sorted(warm_index, key=lambda i: jobs[i].wall_s)[(len(warm_index) - 1) // 2]
    median, warm_jobs = jobs[median_index], [jobs[i] for i in warm_index]
    warm = statistics.median(d.wall_s for d in warm_jobs)
    kernel = _kernel_rate(job, dtype_name) if args.compare_kernel else None
    if kernel is not None:
        rate = median.pixels_rendered / max(warm, 1e-12) / 1e6
        kernel["tiled_share"] = round(rate / kernel["kernel_mpix_per_s"], 4)
    stages = dict(median.stages)
    busy = sum(stages.values())
    stages["scheduling"] = max(0.0, workers * median.wall_s - busy)
    pixels = median.pixels_rendered
    return {
        "tiled": True,
        "cluster_start_seconds": round(cluster_start, 6),
        "first_job_seconds": round(first.wall_s, 6),
        "warm_job_seconds": round(warm, 6),
        "warm_seconds": [round(d.wall_s, 6) for d in warm_jobs],
        "mpix_per_s": round(pixels / max(warm, 1e-12) / 1e6, 3),
        "frames_per_s": round(frames / max(warm, 1e-12), 3),
        "pixels": pixels,
        "frames": frames,
        "tile": tile,
        "tiles": median.tiles_rendered,
        "workers": workers,
        "scheduler": args.scheduler,
        "dtype": dtype_name,
        "stages": {k: round(v, 6) for k, v in stages.items()},
        "client_cpu_seconds": round(cpu[median_index], 6),
        **(kernel or {}),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def _kernel_rate(job, dtype_name: str) -> dict:
    """The in-process warm kernel on the job's frames (up to its first 3, after one warm-up
    render), timed here after the cluster closed (whole frames, every core): seconds per
    frame (median), Mpix/s and frames/s."""
    import torch

    from engine.bench import render_frame
    from engine.precision import torch_dtype

    dtype, device = torch_dtype(dtype_name), torch.device("cpu")
    render_frame(job.frame_experiment(0), dtype, device)  # warm
    seconds = []
    for frame in range(min(job.frames, 3)):
        experiment = job.frame_experiment(frame)
        t0 = time.perf_counter()
        render_frame(experiment, dtype, device)
        seconds.append(time.perf_counter() - t0)
    warm = statistics.median(seconds)
    det = job.experiment.detector
    return {
        "kernel_warm_seconds": round(warm, 6),
        "kernel_mpix_per_s": round(det.fast_pixels * det.slow_pixels / warm / 1e6, 3),
        "kernel_frames_per_s": round(1.0 / warm, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """``braggtile bench``: the tiled benchmark with ``--tiled``, else the in-process one
    (:mod:`engine.bench`); returns the process exit status (2 for bad input)."""
    from engine import bench

    argv = list(sys.argv[1:] if argv is None else argv)
    own = argv[: argv.index("--")] if "--" in argv else argv
    if not {"--tiled", "-h", "--help"} & set(own):
        return bench.main(argv)
    try:
        own, nanobragg = split_nanobragg(argv)
    except InputError as err:
        print(f"{bench.PROG}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    parser = bench._parser()
    add_arguments(parser)
    try:
        args = parser.parse_args(own)
    except SystemExit as stop:  # --help, or bad arguments (argparse printed why)
        return int(stop.code or 0)
    args.nanobragg_argv = nanobragg

    def measure() -> int:
        if args.repeat < 1:
            raise InputError("--repeat", "must be >= 1")
        experiment, dtype_name, _, spec_tile = bench._load(args)
        result = run(args, experiment, args.dtype or dtype_name or "float32", spec_tile)
        print(json.dumps(result), flush=True)
        return 0

    return run_command(bench.PROG, measure)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
