"""``braggtile export STORE``: a job's finished frames as NXmx, mini-CBF, SMV or float files.

Reads the store only (no torch, no cluster), so it runs while the job still renders.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from engine.errors import InputError, run_command
from engine.smv import ADC_OFFSET
from tiling.exports import FORMATS, export_series, open_store
from tiling.exports.series import export_scale, parse_frames, select_frames

PROG = "braggtile export"
DESCRIPTION = (
    "Export a job's finished frames (level 0) for data processing: --format nexus writes one "
    "NXmx file (dials.import run.nxs); cbf, smv and float write one file per frame named by "
    "the # characters of -o (img_#####.cbf: frame k is file k+1). Pixels become "
    "photons x --gain + --adc-offset ADU, the same for every frame; a store rendered with "
    "--no-photons holds the detector's ADU and is exported as stored."
)
#: Request fields of :mod:`tiling.exports` -> the command-line options naming them.
OPTIONS = {
    "frames": "--frames",
    "gain": "--gain",
    "adc-offset": "--adc-offset",
    "output": "-o",
    "format": "--format",
}


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``braggtile export`` to ``p``."""
    p.add_argument("store", metavar="STORE", help="the job's zarr store (OUT.zarr)")
    p.add_argument("--format", choices=FORMATS, help="file format")
    p.add_argument(
        "--truth",
        metavar="PATH",
        help="the frames' ground truth: PATH.expt a dxtbx ExperimentList (one experiment per "
        "frame), PATH.jsonl one JSON object per frame",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="nexus: the file (run.nxs); others: a template (cbf/img_#####.cbf)",
    )
    p.add_argument(
        "--frames",
        metavar="A:B",
        help="0-based frames A..B-1 (or K); default: every finished frame",
    )
    p.add_argument(
        "--gain",
        type=float,
        help="ADU per photon (default 1; not for a store rendered with --no-photons, whose "
        "detector ADU are exported as stored)",
    )
    p.add_argument(
        "--adc-offset",
        type=float,
        help=f"ADU added (default {ADC_OFFSET:g}; not for a store rendered with --no-photons)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _export_truth(args: argparse.Namespace) -> None:
    """Write ``--truth`` (.expt: dxtbx ExperimentList JSON; .jsonl: one line per frame)."""
    from tiling.truth import write_truth_expt, write_truth_jsonl

    writers = {".expt": write_truth_expt, ".json": write_truth_expt, ".jsonl": write_truth_jsonl}
    suffix = "." + args.truth.rpartition(".")[2]
    if suffix not in writers:
        raise InputError("--truth", f"{args.truth}: name it .expt or .jsonl")
    reader = open_store(args.store)
    try:
        count = writers[suffix](reader, args.truth)
    except OSError as err:
        raise InputError("--truth", f"cannot write {args.truth}: {err.strerror}") from None
    print(f"{args.truth}: ground truth of {count} frame(s)")


def _export(args: argparse.Namespace) -> int:
    if (args.format is None) != (args.output is None):
        raise InputError("--format", "give --format and -o together")
    if args.format is None and args.truth is None:
        raise InputError("--format", "give --format and -o, or --truth")
    if args.truth is not None:
        _export_truth(args)
    if args.format is None:
        return 0
    try:
        reader = open_store(args.store)
        scale = export_scale(reader, args.gain, args.adc_offset)
        frames = select_frames(reader, parse_frames(args.frames, reader.attributes.job.frames))
        with tqdm(
            total=len(frames), unit="frame", disable=args.no_progress, file=sys.stderr
        ) as bar:
            paths = export_series(reader, args.format, args.output, frames, scale, bar.update)
    except InputError as err:
        field = "STORE" if err.field == "store" else OPTIONS.get(err.field, err.field)
        raise InputError(field, err.detail) from None
    print(f"{args.output}: {len(frames)} frame(s) in {len(paths)} {args.format} file(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``braggtile export ARGS``; returns the exit status (2 for bad input)."""
    parser = configure_parser(argparse.ArgumentParser(prog=PROG, description=DESCRIPTION))
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as stop:  # --help, or bad options (argparse printed why)
        return int(stop.code or 0)
    return run_command(PROG, lambda: _export(args))
