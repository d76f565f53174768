"""C sources of ``engine/`` built once per CPU with the host's compiler and loaded with ctypes.

A library is built at ``-O3 -march=native -ffp-contract=off`` (no fused multiply-add changes
a rounding, so it gives the bits of the numpy code it mirrors) into
``~/.cache/braggtile/native``, named by the source's hash and the CPU's flags, written to a
temporary name and renamed, so processes that build it at once never load a partial file.
Each library has a dask-config setting (``auto``: use it when it builds, numpy otherwise;
``off``: numpy); either way the results are the same bits.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile

from engine import config

log = logging.getLogger(__name__)


def enabled(setting: str) -> bool:
    """Whether the dask-config ``setting`` (e.g. ``noise.native``) allows a compiled library."""
    return str(config.get(setting)).strip().lower() not in ("off", "false", "0", "no")


@functools.lru_cache(maxsize=1)
def cpu_flags_digest() -> str:
    """A digest of the CPU's flags: a ``-march=native`` build runs on CPUs with the same."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:16]


def library_path(source: str) -> str:
    """Where the library of ``source`` (a path) for this CPU lives, built or not."""
    with open(source, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    root = os.path.join(os.path.expanduser("~"), ".cache", "braggtile", "native")
    name = os.path.splitext(os.path.basename(source))[0]
    return os.path.join(root, f"{name}-{digest}-{platform.machine()}-{cpu_flags_digest()}.so")


def c_compiler() -> str | None:
    """The host's C compiler: ``$CC``, else ``cc`` or ``gcc`` on PATH; None if there is none."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(source: str, path: str) -> None:
    """Compile ``source`` into ``path`` (atomically); CalledProcessError/OSError on failure."""
    compiler = c_compiler()
    if compiler is None:
        raise OSError("no C compiler (cc or gcc) on PATH")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    try:
        command = [compiler, "-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared"]
        command += ["-o", partial, source]
        subprocess.run(command + ["-lm"], check=True, capture_output=True, timeout=120)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


@functools.cache
def load(source: str) -> ctypes.CDLL | None:
    """The library of ``source``, built if needed; None (logged once) if it cannot be."""
    path = library_path(source)
    try:
        if not os.path.exists(path):
            _build(source, path)
        return ctypes.CDLL(path)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.warning("%s unavailable, using numpy: %s %s", source, exc, detail[:500])
        return None
