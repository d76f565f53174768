"""The ``braggtile`` console command: one entry point, one subcommand per job.

- ``braggtile nanobragg ARGS``  render a frame with nanoBragg's flags (engine)
- ``braggtile render ...``      tiled render of frames into an OME-Zarr store (tiling)
- ``braggtile bench ...``       speed benchmark: in-process kernel or --tiled (tiling)
- ``braggtile export STORE ...`` finished frames as NXmx, mini-CBF, SMV or float files (tiling)
- ``braggtile serve ...``       the HTTP service: jobs, events, tiles, zarr (service)
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function taking argv and returning the exit status, summary)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "nanobragg": ("engine.cli", "main", "render one frame with C nanoBragg's flags"),
    "render": ("tiling.cli", "main", "tiled render of one or more frames into OME-Zarr on Dask"),
    "bench": ("tiling.bench", "main", "time renders (in-process, or --tiled); one JSON line"),
    "export": ("tiling.exports.cli", "main", "a job's finished frames as NXmx, CBF, SMV or float"),
    "serve": ("service.serve", "main", "HTTP service: submit jobs, stream tiles, serve zarr"),
}


def usage() -> str:
    lines = ["usage: braggtile SUBCOMMAND [ARGS]", "", "subcommands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, _, summary) in SUBCOMMANDS.items()]
    lines.append("\nrun 'braggtile SUBCOMMAND --help' for the options of one subcommand")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"braggtile: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = SUBCOMMANDS[name]
    try:
        entry = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as err:
        print(f"braggtile {name}: not available in this installation ({err})", file=sys.stderr)
        return 2
    return int(entry(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
