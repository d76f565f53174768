"""Read experiments written in the old (pre-0.2) spelling.

The old model used ``-1`` for "not given", kept the spindle axis on the detector, called the
per-frame rotation ``goniometer`` (phi0, osc, phistep, phisteps) and gave the crystal size in
micrometres. :func:`upgrade_experiment` rewrites such a dict into the current model's
spelling; a dict already in the current spelling passes unchanged.
"""

from __future__ import annotations

from typing import Any

_SCAN_KEYS = ("phi0_deg", "osc_deg", "phistep_deg", "phisteps")
_SENTINELS = {
    "beam": (
        "dispersion",
        "dispstep",
        "dispsteps",
        "hdivrange_mrad",
        "hdivstep_mrad",
        "hdivsteps",
        "vdivrange_mrad",
        "vdivstep_mrad",
        "vdivsteps",
    ),
    "detector": ("thicksteps",),
    "crystal": ("mosaic_spread_deg", "mosaic_domains"),
    "scan": ("osc_deg", "phistep_deg", "phisteps"),
}


def is_legacy(data: Any) -> bool:
    """Whether ``data`` (a dict) is an experiment in the old spelling."""
    if not isinstance(data, dict):
        return False
    gonio = data.get("goniometer")
    if isinstance(gonio, dict) and any(k in gonio for k in _SCAN_KEYS):
        return True
    det, cry = data.get("detector"), data.get("crystal")
    if isinstance(det, dict) and "spindle_axis" in det:
        return True
    if isinstance(cry, dict) and "size_um" in cry:
        return True
    return any(
        isinstance(data.get(part), dict) and _is_negative(data[part].get(key))
        for part, keys in _SENTINELS.items()
        for key in keys
    )


def _is_negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value < 0


def upgrade_experiment(data: Any) -> Any:
    """``data`` in the current spelling (a copy; anything not a legacy dict is returned as is)."""
    if not is_legacy(data):
        return data
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    gonio = out.pop("goniometer", None) or {}
    scan = dict(out.get("scan") or {})
    scan.update({k: gonio.pop(k) for k in _SCAN_KEYS if k in gonio})
    out["scan"] = scan
    goniometer = dict(gonio)
    det = out.get("detector")
    if isinstance(det, dict) and "spindle_axis" in det:
        axis = det.pop("spindle_axis")
        if axis is not None:
            goniometer["spindle_axis"] = axis
    out["goniometer"] = goniometer
    cry = out.get("crystal")
    if isinstance(cry, dict) and "size_um" in cry:
        size = cry.pop("size_um")
        cry["size_mm"] = None if size is None else [x / 1000.0 for x in size]
    for part, keys in _SENTINELS.items():
        section = out.get(part)
        if isinstance(section, dict):
            for key in keys:
                if _is_negative(section.get(key)):
                    section[key] = None
    return out
