"""``braggtile bench --tiled``: time the tiled pipeline on a Dask cluster, one JSON line.

    braggtile bench --tiled [--workers N | --scheduler ADDR | --in-process] [--tile T]
                    [--frames F | --stills N [--vary KEY=DIST ...]] [--seed S] [--repeat R]
                    [--dtype D] [--keep-stores] [--disk-probe-mb M]
                    [--noise ... | --no-pyramid | --pyramid-min P | --no-photons]
                    (--nanobragg "ARGS" | --spec job.json | -- ARGS)

``braggtile bench --tile-sweep`` times jobs of the same frames at several tile sizes instead
(:mod:`tiling.sweep`).

Starts (or connects to) the cluster, renders the job into a fresh store in a temporary
folder once (``first_job_seconds``: fresh workers, kernels loaded from the on-disk cache),
then ``repeat`` more times (``warm_job_seconds``: their median; ``first_job_ratio``:
first_job_seconds / warm_job_seconds, what the first job on a cluster costs over the next
ones, 1 when it costs nothing more), each into a new store with
its pyramid, deleted after the job (the folder is ``TMPDIR``'s: put it on tmpfs to time the
pipeline without the disk's write bandwidth; ``--keep-stores`` keeps every store until the
run ends, as a series filling a disk does). The JSON line holds
``cluster_start_seconds``, those job times, ``mpix_per_s`` (frames x pixels / warm job),
``frames_per_s`` (frames / warm job), ``stages``: worker seconds of the median warm job
summed over its tasks, by stage ("setup", "render", "statistics", "write" (chunk encoding
and write, record), "pyramid"), and "scheduling": the rest of workers x wall (idle workers,
task transfer and dispatch, client round trips); ``client_cpu_seconds``: CPU time of this
process during that job (the client, and the scheduler of an embedded cluster). After the
cluster closes it times the in-process warm kernel on the job's own frames (its first 3,
after a warm-up: ``kernel_warm_seconds`` per frame, ``kernel_mpix_per_s``,
``kernel_frames_per_s``; the pipeline's pixel rate as a fraction of it is ``tiled_share``;
``--compare-kernel`` is accepted and changes nothing).

The scheduler's memory, MiB (read from its ``/proc/self/status`` by ``run_on_scheduler``):
``scheduler_start_rss_mib`` before the first job, ``scheduler_rss_mib`` after the last one,
and ``scheduler_peak_rss_mib``, its peak during the jobs (the process's high-water mark, reset
before the first job; since the process started when the scheduler runs in this process:
``--in-process``, or an embedded cluster, whose scheduler shares this process with the client
and the benchmark, all three then counting the whole process).

The roofline: ``store_bytes`` is what the median warm job's store holds on disk (every file,
metadata included; stores of the same job are the same bytes), ``bytes_per_frame`` that over
the frames; ``disk_mb_per_s`` is measured in the same run by writing ``--disk-probe-mb`` MB
(default 256, 1 MB = 1e6 bytes) with an fsync into the folder the stores go to;
``kernel_frames_seconds`` = ``kernel_warm_seconds`` x frames, ``disk_seconds`` = store_bytes /
disk bandwidth, ``roofline_seconds`` = max of the two, and ``roofline_share`` =
roofline_seconds / warm_job_seconds (1: the job runs at the speed of its slower resource).
The detector response (``--noise``, ``--gain``, ...), ``--no-pyramid``, ``--pyramid-min``,
``--no-photons`` and the dataset options (``--stills N``: N independent stills, ``--vary``
per-frame draws, ``--frames-table``, ``--seed``) are ``braggtile render``'s.
"""

from __future__ import annotations

import argparse
import json
import os
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
    from tiling.cli import add_dataset_arguments, add_response_arguments, add_store_arguments

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
        help="--tiled: accepted for old scripts; the in-process warm kernel is always timed"
        " on the same frame afterwards (kernel_mpix_per_s, tiled_share, the roofline)",
    )
    p.add_argument(
        "--keep-stores",
        action="store_true",
        help="--tiled: keep every job's store until the run ends (default: each is deleted"
        " after its job, so the page cache reuses its pages)",
    )
    p.add_argument(
        "--disk-probe-mb",
        type=int,
        default=256,
        help="--tiled: MB written with fsync beside the stores to measure the disk (256)",
    )
    add_store_arguments(p)
    add_response_arguments(p)
    add_dataset_arguments(p)  # --stills N, --vary, --frames-table, --seed: as render's


def run(args: argparse.Namespace, experiment, dtype_name: str, spec_tile: int) -> dict:
    """Start the cluster, render the job 1 + ``args.repeat`` times; the JSON result."""
    job = _job(args, experiment, dtype_name, spec_tile)
    folder = Path(tempfile.mkdtemp(prefix="braggtile-bench-"))
    try:
        cluster_start, workers, gpu, jobs, cpu, sizes, memory = _run_jobs(args, job, folder)
        disk_mb_per_s = disk_bandwidth(folder, args.disk_probe_mb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    first = jobs[0]
    warm_index = list(range(1, len(jobs))) or [0]
    median_index = sorted(warm_index, key=lambda i: jobs[i].wall_s)[(len(warm_index) - 1) // 2]
    median, warm_jobs = jobs[median_index], [jobs[i] for i in warm_index]
    warm = statistics.median(d.wall_s for d in warm_jobs)
    kernel = _kernel_rate(job, dtype_name, gpu)
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
        "first_job_ratio": round(first.wall_s / max(warm, 1e-12), 4),
        "warm_seconds": [round(d.wall_s, 6) for d in warm_jobs],
        "mpix_per_s": round(pixels / max(warm, 1e-12) / 1e6, 3),
        "frames_per_s": round(job.frames / max(warm, 1e-12), 3),
        "pixels": pixels,
        "frames": job.frames,
        "tile": job.tile,
        "tiles": median.tiles_rendered,
        "workers": workers,
        "scheduler": args.scheduler,
        "dtype": dtype_name,
        "stages": {k: round(v, 6) for k, v in stages.items()},
        "client_cpu_seconds": round(cpu[median_index], 6),
        **memory,
        **kernel,
        **_store_fields(job),
        **roofline(
            sizes[median_index], job.frames, disk_mb_per_s, kernel["kernel_warm_seconds"], warm
        ),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def _job(args: argparse.Namespace, experiment, dtype_name: str, spec_tile: int):
    """The benchmark's job: the experiment with the command's frames (or stills and their
    draws), tile, detector response and store options (InputError naming a bad one)."""
    from tiling.cli import dataset_options, response_options, store_options, with_options
    from tiling.job import DEFAULT_TILE, JobSpec

    dataset = dataset_options(args)
    table = dataset["frames_table"]
    frames = dataset.pop("frames")
    frames = args.frames if frames is None else frames
    frames = frames if frames is not None else len(table) if table else 1
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", "must be >= 1")
    if args.disk_probe_mb < 1:
        raise InputError("--disk-probe-mb", "must be >= 1")
    tile = args.tile if args.tile is not None else spec_tile or DEFAULT_TILE
    base = JobSpec(experiment)
    options = {"response": response_options(args, None)} | dataset
    options |= store_options(args, base)
    return with_options(base, frames=frames, tile=tile, dtype=dtype_name, **options)


def _run_jobs(args: argparse.Namespace, job, folder: Path):
    """Render ``job`` 1 + ``args.repeat`` times into stores in ``folder``: (cluster start
    seconds, workers, whether they declare GPUs, JobDone of each job, this process's CPU
    seconds during each, bytes each store held, the scheduler's memory fields)."""
    from tiling.cluster import connect
    from tiling.graph import gpu_workers, render_job
    from tiling.remote import scheduler_memory
    from tiling.store import store_bytes

    t0 = time.perf_counter()
    with connect(args.scheduler, args.workers, in_process=args.in_process) as client:
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        gpu = gpu_workers(client)
        cluster_start = time.perf_counter() - t0
        before = client.run_on_scheduler(scheduler_memory, os.getpid())  # resets its peak
        jobs, cpu, sizes = [], [], []  # cpu[i]: this process's CPU seconds during jobs[i]
        for i in range(1 + args.repeat):
            path = str(folder / f"job{i}.zarr")
            cpu0 = time.process_time()
            jobs.append(render_job(client, path, job, overwrite=True))
            cpu.append(time.process_time() - cpu0)
            sizes.append(store_bytes(path))
            if not args.keep_stores:
                shutil.rmtree(path, ignore_errors=True)  # bounded space (and page cache)
            print(f"bench: job {i + 1}/{1 + args.repeat}: {jobs[-1].wall_s:.4f} s", flush=True)
        after = client.run_on_scheduler(scheduler_memory)
    memory = {
        "scheduler_start_rss_mib": round(before["rss_mib"], 1),
        "scheduler_rss_mib": round(after["rss_mib"], 1),
        "scheduler_peak_rss_mib": round(after["peak_mib"], 1),
    }
    return cluster_start, workers, gpu, jobs, cpu, sizes, memory


def _store_fields(job) -> dict:
    """What the job's store keeps: detector noise, photons, pyramid levels."""
    return {
        "noise": bool(job.response is not None and job.response.noise),
        "detector": job.response is not None,
        "photons": job.photons,
        "levels": len(job.level_shapes),
    }


#: Block written by :func:`disk_bandwidth` (random bytes: no file system compresses them).
PROBE_BLOCK = 8 << 20


def disk_bandwidth(folder: Path, megabytes: int) -> float:
    """MB/s (1 MB = 1e6 bytes) of writing ``megabytes`` MB into a new file in ``folder`` and
    fsyncing it, as ``dd conv=fsync`` does; the file is removed."""
    block = os.urandom(PROBE_BLOCK)
    total = megabytes * 1_000_000
    path = folder / "disk-probe.bin"
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as fh:
        left = total
        while left > 0:
            left -= fh.write(memoryview(block)[: min(left, PROBE_BLOCK)])
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return round(total / 1e6 / max(seconds, 1e-9), 1)


def roofline(
    store_size: int, frames: int, disk_mb_per_s: float, kernel_seconds: float, warm: float
) -> dict:
    """The roofline fields: bytes per frame, the disk's and the kernel's times for the job,
    the larger of the two, and its share of the warm job's time ``warm``."""
    kernel_frames = kernel_seconds * frames
    disk = store_size / (disk_mb_per_s * 1e6)
    top = max(kernel_frames, disk)
    return {
        "store_bytes": store_size,
        "bytes_per_frame": round(store_size / frames),
        "disk_mb_per_s": disk_mb_per_s,
        "kernel_frames_seconds": round(kernel_frames, 6),
        "disk_seconds": round(disk, 6),
        "roofline_seconds": round(top, 6),
        "roofline_share": round(top / max(warm, 1e-12), 4),
    }


def _kernel_rate(job, dtype_name: str, gpu: bool = False) -> dict:
    """The in-process warm kernel on the job's frames (up to its first 3, after one warm-up
    render), timed here after the cluster closed: whole frames, on every core, or on this
    host's GPU when ``gpu`` (the workers declared GPUs) and CUDA is here; seconds per frame
    (median), Mpix/s, frames/s and the device."""
    import torch

    from engine.bench import render_frame
    from engine.precision import torch_dtype

    device_name = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    dtype, device = torch_dtype(dtype_name), torch.device(device_name)
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
        "kernel_device": device_name,
    }


def main(argv: list[str] | None = None) -> int:
    """``braggtile bench``: the tiled benchmark with ``--tiled``, else the in-process one
    (:mod:`engine.bench`); returns the process exit status (2 for bad input)."""
    from engine import bench
    from tiling import sweep

    argv = list(sys.argv[1:] if argv is None else argv)
    own = argv[: argv.index("--")] if "--" in argv else argv
    if not {"--tiled", "--tile-sweep", "-h", "--help"} & set(own):
        return bench.main(argv)
    try:
        own, nanobragg = split_nanobragg(argv)
    except InputError as err:
        print(f"{bench.PROG}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    parser = bench._parser()
    add_arguments(parser)
    sweep.add_arguments(parser)
    try:
        args = parser.parse_args(own)
    except SystemExit as stop:  # --help, or bad arguments (argparse printed why)
        return int(stop.code or 0)
    args.nanobragg_argv = nanobragg

    def measure() -> int:
        if args.repeat < 1:
            raise InputError("--repeat", "must be >= 1")
        experiment, dtype_name, _, spec_tile = bench._load(args)
        dtype_name = args.dtype or dtype_name or "float32"
        if args.tile_sweep:
            result = sweep.run(args, _job(args, experiment, dtype_name, spec_tile))
        else:
            result = run(args, experiment, dtype_name, spec_tile)
        print(json.dumps(result), flush=True)
        return 0

    return run_command(bench.PROG, measure)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
