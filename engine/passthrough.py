"""nanoBragg arguments inside another command's arguments (``braggtile render``, ``bench``).

argparse reads any value that starts with one of its option prefixes (``-o``, ``--t`` ...) as
an option, and nanoBragg arguments always start with ``-``. So they are taken out of ``argv``
before argparse sees it: the token after ``--nanobragg`` verbatim (split like a shell
would), ``--nanobragg=ARGS``, and everything after ``--``.
"""

from __future__ import annotations

from engine.argsplit import split_arguments
from engine.errors import InputError

FLAG = "--nanobragg"


def _split(text: str) -> list[str]:
    try:
        return split_arguments(text)
    except ValueError as err:
        raise InputError(FLAG, f"cannot split {text!r}: {err}") from None


def split_nanobragg(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``argv`` without the nanoBragg arguments, and those arguments (None if none given)."""
    own: list[str] = []
    nanobragg: list[str] | None = None
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            nanobragg = (nanobragg or []) + list(argv[i + 1 :])
            break
        if tok == FLAG:
            if i + 1 >= len(argv):
                raise InputError(FLAG, 'expects the nanoBragg arguments, quoted: "-cell ..."')
            nanobragg = (nanobragg or []) + _split(argv[i + 1])
            i += 2
            continue
        if tok.startswith(FLAG + "="):
            nanobragg = (nanobragg or []) + _split(tok[len(FLAG) + 1 :])
        else:
            own.append(tok)
        i += 1
    return own, nanobragg
