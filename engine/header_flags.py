"""``-mask`` and ``-img``: an SMV file's header values, applied as if their flags were given.

C nanoBragg reads the ``-mask`` file's header, then the ``-img`` file's, before any other flag,
so every flag given on the command line wins over a header value, and ``-img`` wins over
``-mask``. Each header key sets the value its flag would set (in the flag's unit), without the
pivot a flag may select. The keys and their flags (the keyword is found as C's ``ValueOf``
finds it, see :mod:`engine.smv_input`):

=================  ==========================================================================
SIZE1, SIZE2       ``-detpixels_f``, ``-detpixels_s`` (always: C's pixel counts win over
                   ``-detsize``)
PIXEL_SIZE         ``-pixel``
DISTANCE           ``-distance`` (C finds ``CLOSE_DISTANCE`` in a header that has both)
CLOSE_DISTANCE     ``-close_distance``
WAVELENGTH         ``-lambda``
BEAM_CENTER_X      ``-Xbeam``
BEAM_CENTER_Y      ``-Ybeam``; for ``-mask`` C takes the detector height minus it
ORGX, ORGY         ``-ORGX``, ``-ORGY`` (found in ``XDS_ORGX``, ``XDS_ORGY``)
PHI, OSC_RANGE     ``-phi``, ``-osc``
TWOTHETA           nothing: C stores it in a per-pixel scratch variable, not the detector's
=================  ==========================================================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

from engine import flags as fl
from engine.cli_args import ParsedArgs, _finish, store_target
from engine.errors import InputError
from engine.smv_input import SMVFrame, read_smv_frame

#: C's default pixel size, m (the height a -mask BEAM_CENTER_Y is taken from, without PIXEL_SIZE).
C_PIXEL_SIZE_M = 0.1e-3

#: Header key -> (parse-state target, lower bound: "> 0", ">= 0" or None) of the flag's value.
HEADER_TARGETS: dict[str, tuple[str, str | None]] = {
    "PIXEL_SIZE": ("refs.pixel_mm", "> 0"),
    "DISTANCE": ("detector.distance_mm", "> 0"),
    "CLOSE_DISTANCE": ("detector.close_distance_mm", "> 0"),
    "WAVELENGTH": ("refs.lambda_A", "> 0"),
    "BEAM_CENTER_X": ("detector.xbeam_mm", None),
    "BEAM_CENTER_Y": ("detector.ybeam_mm", None),
    "ORGX": ("detector.orgx", None),
    "ORGY": ("detector.orgy", None),
    "PHI": ("scan.phi0_deg", None),
    "OSC_RANGE": ("scan.osc_deg", ">= 0"),
}


def mm_for_metres(metres: float) -> float:
    """A length in mm whose ``/ 1000.0`` (C's and the geometry's conversion) is ``metres``
    exactly, so a length C derived in metres reaches the geometry with the same bits."""
    mm = metres * 1000.0
    for _ in range(4):
        if mm / 1000.0 == metres:
            return mm
        mm = math.nextafter(mm, math.inf if mm / 1000.0 < metres else -math.inf)
    return metres * 1000.0


def _flag_targets(state: ParsedArgs) -> set[str]:
    """The parse-state targets that flags on the command line set (they beat any header)."""
    targets = {fl.BY_NAME[name].target for name in state.given if name in fl.BY_NAME}
    targets |= {f"detpixels.{k}" for k in state.detpixels}
    return {t for t in targets if t}


def _header_values(frame: SMVFrame, flag: str, pixel_m: float) -> dict[str, float]:
    """Target -> value of each key the header has, as C derives it from the header."""
    values: dict[str, float] = {}
    for key, (target, bound) in HEADER_TARGETS.items():
        value = frame.value(key)
        if math.isnan(value):
            continue
        ok = {None: True, "> 0": value > 0, ">= 0": value >= 0}[bound]
        if not (ok and math.isfinite(value)):
            rule = f"must be finite and {bound}" if bound else "must be finite"
            raise InputError(flag, f"{frame.path}: header {key}={value:g} {rule}")
        values[target] = value
    if flag == "-mask" and "detector.ybeam_mm" in values:  # C: Ybeam = detsize_s - Y/1000
        if "refs.pixel_mm" in values:
            pixel_m = values["refs.pixel_mm"] / 1000.0
        height_m = pixel_m * frame.slow_pixels
        values["detector.ybeam_mm"] = mm_for_metres(height_m - values["detector.ybeam_mm"] / 1000.0)
    values["detpixels.f"], values["detpixels.s"] = frame.fast_pixels, frame.slow_pixels
    return values


def apply_smv_headers(parsed: ParsedArgs, cwd_path: Callable[[str], str]) -> ParsedArgs:
    """A copy of ``parsed`` with the ``-mask`` then ``-img`` header values that no flag
    overrides, re-derived; the mask's path goes to ``sampling.mask_file``. ``cwd_path`` maps
    a file name to its path."""
    refs = parsed.refs
    if refs.mask_file is None and refs.img_file is None:
        return parsed
    state = copy.deepcopy(parsed)
    given = _flag_targets(state)
    pixel_m = C_PIXEL_SIZE_M
    mask_shape = None
    for flag, name in (("-mask", refs.mask_file), ("-img", refs.img_file)):
        if name is None:
            continue
        frame = read_smv_frame(cwd_path(name), flag, pixels=flag == "-mask")
        values = _header_values(frame, flag, pixel_m)
        if "refs.pixel_mm" in values:  # C's pixel size when it reads the next header
            pixel_m = values["refs.pixel_mm"] / 1000.0
        for target, value in values.items():
            if target not in given:
                if target.startswith("detpixels."):
                    state.detpixels[target[-1]] = int(value)
                else:
                    store_target(state, target, value)
        if flag == "-mask":
            mask_shape = (frame.fast_pixels, frame.slow_pixels)
            state.sampling["mask_file"] = cwd_path(name)
    _finish(state)
    det = state.detector
    if mask_shape is not None and mask_shape != (det["fast_pixels"], det["slow_pixels"]):
        raise InputError(
            "-mask",
            f"{refs.mask_file} is {mask_shape[0]}x{mask_shape[1]} pixels but the detector is "
            f"{det['fast_pixels']}x{det['slow_pixels']}",
        )
    return state
