"""A job's input files and nanoBragg arguments, resolved inside the job's own folder.

Inline ``inputs`` ({"P1.hkl": "<text>", ...}) are written into the job folder; file names in
the arguments (and in a typed job's experiment) may name only those files: a bare name, no
path separator, no ``..``, not absolute. Nothing outside the job folder is ever read.
"""

from __future__ import annotations

from pathlib import Path

from engine.argsplit import split_arguments
from engine.flags import FLAGS
from engine.model import Experiment
from service.errors import BadInput, TooLarge
from service.settings import Limits

#: nanoBragg flags whose value is a file name (inputs and outputs alike), from the flag table.
FILE_FLAGS = frozenset(name for flag in FLAGS if flag.values == "FILE" for name in flag.names)
#: Input files of a crystal in the typed job model.
CRYSTAL_FILES = ("hkl_file", "fdump_file")
#: Longest file name, bytes of UTF-8 (the common file systems' limit).
MAX_NAME_BYTES = 255


def check_name(name: str, field: str) -> str:
    """``name`` if it is a plain file name; else BadInput naming ``field``."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith("~")
    ):
        raise BadInput(
            f"{field}: {name!r} is not a plain file name (no path separators, '..' or "
            "absolute paths; name a file given in 'inputs')",
            field=field,
        )
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise BadInput(
            f"{field}: a file name of {size} bytes, more than the limit of {MAX_NAME_BYTES}",
            field=field,
            limit=MAX_NAME_BYTES,
        )
    return name


def write_inputs(folder: Path, inputs: dict[str, str], limits: Limits) -> None:
    """Write the inline input files into ``folder`` (created)."""
    if len(inputs) > limits.max_inputs:
        raise TooLarge(
            f"inputs: {len(inputs)} files, more than the limit of {limits.max_inputs}",
            field="inputs",
            limit=limits.max_inputs,
        )
    size = sum(len(text.encode()) for text in inputs.values())
    if size > limits.max_input_bytes:
        raise TooLarge(
            f"inputs: {size} bytes, more than the limit of {limits.max_input_bytes}",
            field="inputs",
            limit=limits.max_input_bytes,
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in inputs.items():
        check_name(name, f"inputs.{name}")
        (folder / name).write_text(text)


def _local(folder: Path, name: str, field: str, inputs: dict[str, str]) -> str:
    check_name(name, field)
    if name not in inputs:
        raise BadInput(f"{field}: file {name!r} is not among the job's inputs", field=field)
    return str(folder / name)


def parse_arguments(args: str, folder: Path, inputs: dict[str, str]) -> tuple[Experiment, str]:
    """The experiment and dtype of nanoBragg ``args``, files resolved in ``folder``.

    The one place the service calls the engine's nanoBragg parser.
    """
    from engine.resolve import parse_nanobragg

    try:
        argv = split_arguments(args)
    except ValueError as err:
        raise BadInput(f"nanobragg: {err}", field="nanobragg") from None
    local = list(argv)
    for i, tok in enumerate(argv[:-1]):
        if tok in FILE_FLAGS:
            name = argv[i + 1]
            if tok in ("-hkl", "-mat", "-sourcefile"):
                local[i + 1] = _local(folder, name, tok, inputs)
            else:  # outputs, and -dump (read as Fdump when there is no -hkl): job folder only
                local[i + 1] = str(folder / check_name(name, tok))
    if "-dump" not in argv:  # an Fdump is looked for under C's default name: in the folder
        local = ["-dump", str(folder / "Fdump.bin"), *local]
    run = parse_nanobragg(local)
    return run.experiment, run.dtype


def resolve_experiment(experiment: Experiment, folder: Path, inputs: dict[str, str]) -> Experiment:
    """A typed job's experiment with its crystal's input files resolved in ``folder``."""
    crystal = experiment.crystal
    update = {}
    for name in CRYSTAL_FILES:
        value = getattr(crystal, name)
        if value is not None:
            update[name] = _local(folder, str(value), f"job.experiment.crystal.{name}", inputs)
    if not update:
        return experiment
    return experiment.model_copy(update={"crystal": crystal.model_copy(update=update)})


def check_files(experiment: Experiment) -> None:
    """Read the experiment's structure-factor file once, so bad content is a 422 at submit."""
    from engine.structure_factors import read_fdump, read_hkl

    crystal = experiment.crystal
    if crystal.hkl_file is not None:
        read_hkl(crystal.hkl_file, crystal.default_F)
    elif crystal.fdump_file is not None:
        read_fdump(crystal.fdump_file, crystal.default_F)
