"""The pixel kernel: renders any rectangular window of a frame from a :class:`FrameSetup`.

Every quantity of a pixel is a function of that pixel's indices and the frame set-up
only, so a window equals the same slice of a full-frame render. Memory is bounded by
``max_elements`` samples per block (pixels x sources x orientations), not by the window.

Float32 accuracy comes from stable forms: the scattering vector is built from the part
of the pixel position perpendicular to the incident beam (no ``d - i`` cancellation),
and the lattice transform is evaluated on ``h - round(h)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from engine.setup import R_E_SQR, FrameSetup
from engine.structure_factors import in_interpolation_range, lookup_nearest, lookup_tricubic
from engine.window import Window

DEFAULT_MAX_ELEMENTS = 1 << 22


@dataclass
class _Samples:
    """Per-(pixel, source) quantities for one layer, one sub-pixel and a chunk of sources."""

    layer: int
    subpixel: int
    sources: slice
    p_perp: torch.Tensor  # (P, S, 3) pixel position perpendicular to the incident beam, m
    p_par: torch.Tensor  # (P, S) component along the incident beam, m
    airpath: torch.Tensor  # (P, S) |r|, m
    w: torch.Tensor  # (P, S) |r| - p_par, m
    pos_dot_o: torch.Tensor  # (P,) r . odet, m

    def hkl(self, setup: FrameSetup) -> torch.Tensor:
        """Fractional Miller indices (P, S, M, 3) for every orientation."""
        cells = setup.t["cells"]  # (3, 3M)
        ai = setup.t["cells_dot_incident"][self.sources]  # (S, 3M)
        inv = setup.t["inv_lambda"][self.sources] / self.airpath  # (P, S)
        x = torch.matmul(self.p_perp, cells) - self.w.unsqueeze(-1) * ai
        x = x * inv.unsqueeze(-1)
        return x.unflatten(-1, (-1, 3))

    def stol(self, setup: FrameSetup) -> torch.Tensor:
        """sin(theta)/lambda (P, S), 1/m."""
        pp2 = (self.p_perp * self.p_perp).sum(-1)
        q = torch.sqrt(pp2 + self.w * self.w) / self.airpath
        return 0.5 * q * setup.t["inv_lambda"][self.sources]

    def polarization(self, setup: FrameSetup) -> torch.Tensor:
        """Kahn polarization factor (P, S)."""
        exp = setup.experiment.beam
        if exp.nopolar:
            return torch.ones_like(self.p_par)
        pp2 = (self.p_perp * self.p_perp).sum(-1)
        inv_r2 = 1.0 / (self.airpath * self.airpath)
        cos2 = self.p_par * self.p_par * inv_r2
        sin2 = pp2 * inv_r2
        factor = 1.0 + cos2
        if exp.polarization != 0.0:
            e = (self.p_perp * setup.t["e_in"][self.sources]).sum(-1)
            b = (self.p_perp * setup.t["b_in"][self.sources]).sum(-1)
            e2, b2 = e * e, b * b
            den = e2 + b2
            cos2psi = torch.where(den > 0, (e2 - b2) / torch.where(den > 0, den, 1.0), 1.0)
            factor = factor - exp.polarization * cos2psi * sin2
        return 0.5 * factor


def _axis_coordinates(setup: FrameSetup, lo: int, hi: int, sub: int, ref: float) -> torch.Tensor:
    """Sub-pixel centre coordinates (m) of pixels lo..hi-1 along one axis, minus ref (float64)."""
    os_ = setup.oversample
    size = setup.subpixel_size
    idx = torch.arange(lo, hi, dtype=torch.float64, device=setup.device)
    return size * (idx * os_ + sub) + size / 2.0 - ref


def _rotate_axis(v: torch.Tensor, axis: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (P, 3) about unit axis (3,) by angles phi (P,), right-handed."""
    s, c = torch.sin(phi).unsqueeze(-1), torch.cos(phi).unsqueeze(-1)
    d = (v @ axis).unsqueeze(-1) * (1.0 - c)
    return axis * d + v * c + torch.cross(axis.expand_as(v), v, dim=-1) * s


def _samples(
    setup: FrameSetup, slow: tuple[int, int], fast: tuple[int, int], max_elements: int
) -> Iterator[_Samples]:
    """Yield sample blocks in C's loop order: layer, sub-pixel (slow, fast), sources."""
    geo = setup.detector
    dt = setup.dtype
    os_ = setup.oversample
    t = setup.t
    n_src = setup.n_sources
    n_pix = (slow[1] - slow[0]) * (fast[1] - fast[0])
    per_source = n_pix * max(1, setup.n_orientations) * 3
    chunk = max(1, min(n_src, max_elements // max(1, per_source)))
    par, perp, odet_par = t["par"], t["perp"], t["odet_par"]
    for layer in range(setup.sensor.layers):
        depth = layer * setup.sensor.step
        for sub in range(os_ * os_):
            sub_s, sub_f = divmod(sub, os_)
            d_f = _axis_coordinates(setup, fast[0], fast[1], sub_f, geo.fbeam)
            d_s = _axis_coordinates(setup, slow[0], slow[1], sub_s, geo.sbeam)
            grid_s, grid_f = torch.meshgrid(d_s, d_f, indexing="ij")
            grid_s, grid_f = grid_s.reshape(-1), grid_f.reshape(-1)
            if geo.curved:
                curved = _curved_positions(setup, grid_f, grid_s, depth)
            else:
                g_f, g_s = grid_f.to(dt), grid_s.to(dt)
                pos_dot_o = odet_par[0] + g_f * odet_par[1] + g_s * odet_par[2] + depth
            for s0 in range(0, n_src, chunk):
                sl = slice(s0, min(n_src, s0 + chunk))
                if geo.curved:
                    p_perp, p_par, pos_dot_o = _decompose(setup, curved, sl)
                else:
                    pa, pe = par[sl], perp[sl]
                    p_par = pa[:, 0] + g_f[:, None] * pa[:, 1] + g_s[:, None] * pa[:, 2]
                    p_perp = (
                        pe[:, 0] + g_f[:, None, None] * pe[:, 1] + g_s[:, None, None] * pe[:, 2]
                    )
                    if depth:
                        p_par = p_par + depth * pa[:, 3]
                        p_perp = p_perp + depth * pe[:, 3]
                pp2 = (p_perp * p_perp).sum(-1)
                r = torch.sqrt(p_par * p_par + pp2)
                w = torch.where(p_par >= 0, pp2 / (p_par + r), r - p_par)
                yield _Samples(layer, sub, sl, p_perp, p_par, r, w, pos_dot_o)


def _curved_positions(
    setup: FrameSetup, grid_f: torch.Tensor, grid_s: torch.Tensor, depth: float
) -> torch.Tensor:
    """Pixel positions (P, 3) on C's curved detector, float64 (all pixels at one distance)."""
    geo = setup.detector
    kw = {"dtype": torch.float64, "device": setup.device}
    f, s, o = (torch.tensor(v, **kw) for v in (geo.fdet, geo.sdet, geo.odet))
    r0 = torch.tensor(geo.pix0 + geo.fbeam * geo.fdet + geo.sbeam * geo.sdet, **kw)
    flat = r0 + grid_f[:, None] * f + grid_s[:, None] * s + depth * o
    start = (geo.distance * torch.tensor(geo.beam, **kw)).expand_as(flat)
    turned = _rotate_axis(start, s, flat[:, 1] / geo.distance)
    return _rotate_axis(turned, f, flat[:, 2] / geo.distance)


def _decompose(
    setup: FrameSetup, pos: torch.Tensor, sl: slice
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split float64 positions about each incident direction, then cast."""
    inc = setup.t["incident"][sl].to(torch.float64)
    p_par = pos @ inc.T  # (P, S)
    p_perp = pos[:, None, :] - p_par[..., None] * inc[None]
    odet = torch.tensor(setup.detector.odet, dtype=torch.float64, device=pos.device)
    dt = setup.dtype
    return p_perp.to(dt), p_par.to(dt), (pos @ odet).to(dt)


def lattice_factor(setup: FrameSetup, hkl: torch.Tensor) -> torch.Tensor:
    """F_latt for fractional indices hkl (..., 3): the fused kernel's lattice transform."""
    from engine.fused import lattice_transform, structure_of

    h, k, l = hkl.unbind(-1)  # noqa: E741
    fudge = setup.experiment.crystal.fudge
    return lattice_transform(structure_of(setup), h, k, l, setup.t["recip"], fudge)


def structure_factor(setup: FrameSetup, hkl: torch.Tensor) -> torch.Tensor | float:
    """F_cell for fractional indices hkl (..., 3): nearest, tricubic or default_F."""
    table = setup.sf_table
    if table.hkls == 0:
        return table.default_F
    values = setup.sf_values()
    h, k, l = hkl.unbind(-1)  # noqa: E741
    if setup.interpolate:
        return lookup_tricubic(values, table, h, k, l)
    return lookup_nearest(values, table, h, k, l)


def _render_block(
    setup: FrameSetup, slow: tuple[int, int], fast: tuple[int, int], max_elements: int
) -> torch.Tensor:
    """Render pixels [slow) x [fast) (inside the ROI) to a (rows, cols) tensor."""
    samp = setup.experiment.sampling
    geo = setup.detector
    n_pix = (slow[1] - slow[0]) * (fast[1] - fast[0])
    dt, dev = setup.dtype, setup.device
    total = torch.zeros(n_pix, dtype=dt, device=dev)
    polar_first = torch.zeros(n_pix, dtype=dt, device=dev)
    have_polar = torch.zeros(n_pix, dtype=torch.bool, device=dev)
    omega_first = capture = None
    sensor = setup.sensor
    dmin = setup.dmin_m
    for smp in _samples(setup, slow, fast, max_elements):
        first_chunk = smp.sources.start == 0
        airpath0 = smp.airpath[:, 0]
        omega = None
        if samp.oversample_omega or omega_first is None:
            if geo.point_pixel:
                omega = 1.0 / (airpath0 * airpath0)
            else:
                omega = geo.pixel_size**2 / (airpath0 * airpath0) * geo.close_distance / airpath0
            if omega_first is None:
                omega_first = omega
        if sensor.thick and first_chunk and (samp.oversample_thick or smp.subpixel == 0):
            parallax = smp.pos_dot_o / airpath0
            a = smp.layer * sensor.step * sensor.mu / parallax
            b = sensor.step * sensor.mu / parallax
            capture = -torch.exp(-a) * torch.expm1(-b)  # exp(-a) - exp(-a-b)
        valid = None
        if dmin > 0.0:
            valid = smp.stol(setup) * dmin <= 0.5
        polar = None
        if samp.oversample_polar or not bool(have_polar.all()):
            polar = smp.polarization(setup)
            if not bool(have_polar.all()):
                if valid is None:
                    cand, found = polar[:, 0], torch.ones_like(have_polar)
                else:
                    idx = valid.to(torch.int8).argmax(dim=1, keepdim=True)
                    cand, found = polar.gather(1, idx)[:, 0], valid.any(dim=1)
                take = found & ~have_polar
                polar_first = torch.where(take, cand, polar_first)
                have_polar = have_polar | found
        hkl = smp.hkl(setup)
        f_latt = lattice_factor(setup, hkl)
        f_cell = structure_factor(setup, hkl)
        intensity = f_latt * f_latt * (f_cell * f_cell)  # (P, S, M)
        per_source = intensity.sum(-1)  # (P, S)
        if samp.oversample_polar:
            per_source = per_source * polar
        if valid is not None:
            per_source = per_source * valid.to(dt)
        contrib = per_source.sum(-1)
        if samp.oversample_thick and sensor.thick:
            contrib = contrib * capture
        if samp.oversample_omega:
            contrib = contrib * omega
        total = total + contrib
    pixel = (total + setup.background) * (R_E_SQR * setup.fluence / setup.steps)
    if sensor.thick and not samp.oversample_thick:
        pixel = pixel * capture  # C keeps the last layer's value
    if not samp.oversample_polar:
        pixel = pixel * polar_first
    if not samp.oversample_omega:
        pixel = pixel * omega_first
    return pixel.reshape(slow[1] - slow[0], fast[1] - fast[0])


def _rows_per_block(setup: FrameSetup, cols: int, max_elements: int) -> int:
    per_row = cols * max(1, setup.n_orientations) * 3
    return max(1, max_elements // per_row)


#: In ``auto`` mode a frame is compiled when it has at least this many samples in its ROI.
AUTO_COMPILE_SAMPLES = 1 << 22


def frame_samples(setup: FrameSetup) -> int:
    """Samples of the frame's ROI: pixels x layers x sub-pixels x sources x orientations."""
    fmin, fmax, smin, smax = setup.roi
    geo = setup.detector
    cols = max(0, min(geo.fast_pixels, fmax + 1) - fmin)
    rows = max(0, min(geo.slow_pixels, smax + 1) - smin)
    return rows * cols * setup.steps * setup.sensor.layers


def use_fused(setup: FrameSetup) -> bool:
    """Whether this frame renders with the compiled fused kernel (the same for every window).

    ``BRAGGTILE_COMPILE``: ``1`` always (where supported), ``0`` never, ``auto`` (default)
    when the frame is big enough for compilation to pay off.
    """
    from engine import fused

    mode = fused.compile_mode()
    if mode == "off" or not fused.supported(setup):
        return False
    return mode == "on" or frame_samples(setup) >= AUTO_COMPILE_SAMPLES


def render_window(
    setup: FrameSetup, window: Window, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> torch.Tensor:
    """Render ``window`` of the frame: tensor (rows, cols) of photons/pixel; 0 outside the ROI.

    Frames chosen by :func:`use_fused` render with the compiled kernel of
    :mod:`engine.fused` (eager if it cannot compile); the others with the eager kernel below.
    """
    geo = setup.detector
    window = Window(*window).validate(geo.slow_pixels, geo.fast_pixels)
    out = torch.zeros(window.shape, dtype=setup.dtype, device=setup.device)
    fmin, fmax, smin, smax = setup.roi
    f0, f1 = max(window.fast0, fmin), min(window.fast1, fmax + 1)
    s0, s1 = max(window.slow0, smin), min(window.slow1, smax + 1)
    if f0 >= f1 or s0 >= s1:
        return out
    if use_fused(setup):
        from engine import fused

        region = out[s0 - window.slow0 : s1 - window.slow0, f0 - window.fast0 : f1 - window.fast0]
        if fused.try_render_region(setup, (s0, s1), (f0, f1), region):
            return out
    step = _rows_per_block(setup, f1 - f0, max_elements)
    with torch.no_grad():
        for r in range(s0, s1, step):
            r1 = min(s1, r + step)
            block = _render_block(setup, (r, r1), (f0, f1), max_elements)
            out[r - window.slow0 : r1 - window.slow0, f0 - window.fast0 : f1 - window.fast0] = block
    return out


def interpolation_in_range(setup: FrameSetup, max_elements: int = DEFAULT_MAX_ELEMENTS) -> bool:
    """True if every sample of the frame's ROI lies inside the tricubic interpolation range.

    C nanoBragg turns interpolation off for the rest of a run at the first sample outside
    the table; deciding it for the whole frame up front keeps windows independent.
    """
    fmin, fmax, smin, smax = setup.roi
    geo = setup.detector
    f0, f1 = fmin, min(geo.fast_pixels, fmax + 1)
    s0, s1 = smin, min(geo.slow_pixels, smax + 1)
    step = _rows_per_block(setup, f1 - f0, max_elements)
    with torch.no_grad():
        for r in range(s0, s1, step):
            for smp in _samples(setup, (r, min(s1, r + step)), (f0, f1), max_elements):
                h, k, l = smp.hkl(setup).unbind(-1)  # noqa: E741
                if not bool(in_interpolation_range(setup.sf_table, h, k, l).all()):
                    return False
    return True
