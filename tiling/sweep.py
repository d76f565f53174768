"""``braggtile bench --tile-sweep``: the cost of a pixel at each tile size, one JSON line.

    braggtile bench --tile-sweep [--sweep-tiles 128,256,512,1024] [--frames F] [--repeat R]
                    [--dtype D] [store, response and dataset options as --tiled]
                    (--nanobragg "ARGS" | --spec job.json | -- ARGS)

Renders the same job in this process (one thread-based worker: ``braggtile render
--in-process``) once at every tile size to warm up (kernels, set-ups), then ``repeat`` rounds
of one job per tile size, the sizes in turn within a round (so a machine whose load drifts
weighs on every size alike), each into a new store. Per tile size:
``seconds`` (median job), ``runs`` (every round's), ``ns_per_pixel`` (seconds / rendered
pixels, x 1e9) and ``ratio`` (its ns_per_pixel over the smallest one's); ``spread`` is the
largest ratio (1.10: the costliest size pays 10% more per pixel than the cheapest);
``stages``: per size, the worker's seconds by stage (``tiling.worker.STAGES``), the mean of
the rounds.

The stores stay until the sweep ends (``stores_kept``) when the timed rounds' stores, sized by
the warm-up round's (``store_bytes``, per size), fit in half the disk's free space; else each
goes once its job is timed. Deleting each store after its job made the sweep measure itself:
ext4 without a journal (the build VM's disk) skips, when it allocates an inode, each inode
freed in the last 60 s (360 s while its table block is unwritten), so a job that followed
another's deletion paid up to 0.9 ms per file it created, against 60-120 us, and a tile-128
job makes 25 times the files of a tile-1024 one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from engine.errors import InputError

#: Tile sizes of the sweep unless ``--sweep-tiles`` names others.
DEFAULT_TILES = (128, 256, 512, 1024)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep's options (added to ``braggtile bench``'s parser beside ``--tiled``'s)."""
    p.add_argument(
        "--tile-sweep",
        action="store_true",
        help="time in-process jobs of the same frames at several tile sizes (--sweep-tiles):"
        " seconds, ns per pixel and ratio to the cheapest per size",
    )
    p.add_argument(
        "--sweep-tiles",
        default=",".join(map(str, DEFAULT_TILES)),
        help="--tile-sweep: tile sizes, comma-separated (128,256,512,1024)",
    )


def tile_sizes(text: str) -> list[int]:
    """The sizes of ``--sweep-tiles`` (InputError naming the flag if one is not >= 1)."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"must be integers separated by commas, got {text!r}"
        raise InputError("--sweep-tiles", message) from None
    if not sizes or min(sizes) < 1:
        raise InputError("--sweep-tiles", f"every tile size must be >= 1, got {text!r}")
    return list(dict.fromkeys(sizes))


def summarise(runs: dict[int, list[float]], pixels: dict[int, int]) -> dict:
    """The sweep's figures from each tile size's job seconds (``runs``) and rendered pixels:
    per size the median job, ns per pixel and the ratio to the cheapest; the largest ratio."""
    per_pixel = {t: statistics.median(s) / pixels[t] * 1e9 for t, s in runs.items()}
    best = min(per_pixel.values())
    sizes = {
        str(t): {
            "seconds": round(statistics.median(s), 6),
            "runs": [round(x, 6) for x in s],
            "ns_per_pixel": round(per_pixel[t], 3),
            "ratio": round(per_pixel[t] / best, 4),
        }
        for t, s in runs.items()
    }
    return {"tiles": sizes, "spread": round(max(per_pixel.values()) / best, 4)}


def keep_stores(store_bytes: dict[int, int], repeat: int, free_bytes: int) -> bool:
    """True if ``repeat`` more rounds of stores of ``store_bytes`` (per tile size, bytes)
    fit in half of ``free_bytes``, the disk's free space."""
    return sum(store_bytes.values()) * repeat <= free_bytes // 2


def run(args: argparse.Namespace, job) -> dict:
    """Warm up, then ``args.repeat`` rounds of one in-process job per tile size; the JSON."""
    from tiling.cli import with_options
    from tiling.cluster import connect
    from tiling.graph import render_job
    from tiling.store import store_bytes

    sizes = tile_sizes(args.sweep_tiles)
    jobs = {tile: with_options(job, tile=tile) for tile in sizes}
    runs: dict[int, list[float]] = {tile: [] for tile in sizes}
    pixels: dict[int, int] = {}
    stages: dict[int, dict[str, float]] = {}  # worker seconds by stage, summed over rounds
    sizes_bytes: dict[int, int] = {}  # bytes of each size's warm-up store
    kept = True  # round 0's stores are kept until their sizes are known
    folder = Path(tempfile.mkdtemp(prefix="braggtile-sweep-"))
    try:
        with connect(in_process=True) as client:
            for round_ in range(1 + args.repeat):  # round 0 warms up
                for tile in sizes:
                    path = str(folder / f"t{tile}-{round_}.zarr")
                    t0 = time.perf_counter()
                    done = render_job(client, path, jobs[tile], overwrite=True)
                    seconds = time.perf_counter() - t0
                    if not round_:
                        sizes_bytes[tile] = store_bytes(path)
                    if not kept:
                        shutil.rmtree(path, ignore_errors=True)
                    pixels[tile] = done.pixels_rendered
                    if round_:
                        runs[tile].append(seconds)
                        for name, value in done.stages.items():
                            stages.setdefault(tile, {}).setdefault(name, 0.0)
                            stages[tile][name] += value / args.repeat
                    print(f"bench: round {round_}/{args.repeat} tile {tile}: {seconds:.4f} s",
                          flush=True)  # fmt: skip
                if not round_:
                    free = shutil.disk_usage(folder).free
                    kept = keep_stores(sizes_bytes, args.repeat, free)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "tile_sweep": True,
        "frames": job.frames,
        "pixels": pixels[sizes[0]],
        "dtype": job.dtype,
        "repeat": args.repeat,
        "stores_kept": kept,
        "store_bytes": {str(t): n for t, n in sizes_bytes.items()},
        **summarise(runs, pixels),
        "stages": {str(t): {k: round(v, 6) for k, v in s.items()} for t, s in stages.items()},
    }
