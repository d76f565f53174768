"""A job's input files and nanoBragg arguments, resolved inside the job's own folder.

Inline ``inputs`` ({"P1.hkl": "<text>", "mask.img": "base64:<data>", ...}) are written into
the job folder; file names in the arguments (and in a typed job's experiment) may name only
those files: a bare name, no path separator, no ``..``, not absolute. Nothing outside the job
folder is ever read.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from engine.argsplit import split_arguments
from engine.flags import FLAGS
from engine.model import Experiment
from service.errors import BadInput, TooLarge
from service.settings import Limits

#: nanoBragg flags whose value is a file name (inputs and outputs alike), from the flag table.
FILE_FLAGS = frozenset(name for flag in FLAGS if flag.values == "FILE" for name in flag.names)
#: Flags naming a file the job reads (the others name outputs, written in the job folder).
INPUT_FLAGS = ("-hkl", "-mat", "-sourcefile", "-mask", "-img", "-stol", "-4stol", "-Q")
#: Input files (section, field) in the typed job model.
EXPERIMENT_FILES = (("crystal", "hkl_file"), ("crystal", "fdump_file"), ("sampling", "mask_file"))
#: Prefix of an input given as base64 (binary files, e.g. an SMV -mask).
BASE64 = "base64:"
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


def _content(name: str, text: str) -> bytes:
    """An input's bytes: its text (UTF-8), or its data when given as ``base64:<data>``."""
    if not text.startswith(BASE64):
        return text.encode()
    try:
        return base64.b64decode(text[len(BASE64) :], validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(
            f"inputs.{name}: not valid base64 after {BASE64!r}", field=f"inputs.{name}"
        ) from None


def write_inputs(folder: Path, inputs: dict[str, str], limits: Limits) -> None:
    """Write the inline input files into ``folder`` (created); ``base64:`` ones decoded."""
    if len(inputs) > limits.max_inputs:
        raise TooLarge(
            f"inputs: {len(inputs)} files, more than the limit of {limits.max_inputs}",
            field="inputs",
            limit=limits.max_inputs,
        )
    contents = {name: _content(name, text) for name, text in inputs.items()}
    size = sum(len(data) for data in contents.values())
    if size > limits.max_input_bytes:
        raise TooLarge(
            f"inputs: {size} bytes, more than the limit of {limits.max_input_bytes}",
            field="inputs",
            limit=limits.max_input_bytes,
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        check_name(name, f"inputs.{name}")
        (folder / name).write_bytes(data)


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
            if tok in INPUT_FLAGS:
                local[i + 1] = _local(folder, name, tok, inputs)
            else:  # outputs, and -dump (read as Fdump when there is no -hkl): job folder only
                local[i + 1] = str(folder / check_name(name, tok))
    if "-dump" not in argv:  # an Fdump is looked for under C's default name: in the folder
        local = ["-dump", str(folder / "Fdump.bin"), *local]
    run = parse_nanobragg(local)
    return run.experiment, run.dtype


def resolve_experiment(experiment: Experiment, folder: Path, inputs: dict[str, str]) -> Experiment:
    """A typed job's experiment with its input files resolved in ``folder``."""
    update: dict[str, dict[str, str]] = {}
    for section, name in EXPERIMENT_FILES:
        value = getattr(getattr(experiment, section), name)
        if value is not None:
            field = f"job.experiment.{section}.{name}"
            update.setdefault(section, {})[name] = _local(folder, str(value), field, inputs)
    if not update:
        return experiment
    return experiment.model_copy(
        update={s: getattr(experiment, s).model_copy(update=u) for s, u in update.items()}
    )


def check_files(experiment: Experiment) -> None:
    """Read the experiment's structure-factor and mask files once, so bad content is a 422
    at submit."""
    from engine.smv_input import read_pixel_mask
    from engine.structure_factors import read_fdump, read_hkl

    mask_file, det = experiment.sampling.mask_file, experiment.detector
    if mask_file is not None:
        shape = read_pixel_mask(mask_file).shape
        if shape != (det.slow_pixels, det.fast_pixels):
            raise BadInput(
                f"-mask: {Path(mask_file).name} is {shape[1]}x{shape[0]} pixels but the "
                f"detector is {det.fast_pixels}x{det.slow_pixels}",
                field="-mask",
            )
    crystal = experiment.crystal
    if crystal.hkl_file is not None:
        read_hkl(crystal.hkl_file, crystal.default_F)
    elif crystal.fdump_file is not None:
        read_fdump(crystal.fdump_file, crystal.default_F)
