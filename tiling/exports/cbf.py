"""Mini-CBF frames (Pilatus-style header, byte-offset compressed int32) written by ``fabio``.

The header holds the fields dxtbx's ``FormatCBFMini`` reads: Pixel_size, Silicon sensor
thickness (when the job gives one), Exposure_time/period, Count_cutoff, Wavelength,
Detector_distance, Beam_xy (pixels), Start_angle and Angle_increment. The header convention is
``GENERIC_MINI`` (dxtbx's name for simulated pixel-array data of any size): the Pilatus
reader would mask Pilatus module gaps, which a simulated detector does not have. The format
has no axes: readers assume fast = +x, slow = -y and the rotation axis along fast, as in
nanoBragg's default (MOSFLM) convention.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tiling.exports.series import FrameFile, Scale

#: int32 ADU; the largest is the count cutoff.
CBF_TOP = 2**31 - 1


def pilatus_header(item: FrameFile, top: int) -> str:
    """The ``_array_data.header_contents`` lines of frame ``item`` (SI units, degrees)."""
    attrs = item.reader.attributes
    geo = attrs.geometry
    experiment = item.reader.job.experiment
    px = geo.pixel_size_mm * 1e-3
    exposure = experiment.beam.exposure_s
    lines = [
        "# Detector: braggtile nanoBragg simulation, S/N 0",
        "# " + datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        f"# Pixel_size {px:.6e} m x {px:.6e} m",
    ]
    if experiment.detector.thick_um > 0:
        lines.append(f"# Silicon sensor, thickness {experiment.detector.thick_um * 1e-6:.6e} m")
    lines += [
        f"# Exposure_time {exposure:.7f} s",
        f"# Exposure_period {exposure:.7f} s",
        f"# Count_cutoff {top} counts",
        f"# Wavelength {experiment.beam.wavelength_A:.7f} A",
        f"# Detector_distance {geo.distance_mm * 1e-3:.7f} m",
        f"# Beam_xy ({geo.beam_centre_mm.fast / geo.pixel_size_mm:.4f}, "
        f"{geo.beam_centre_mm.slow / geo.pixel_size_mm:.4f}) pixels",
        f"# Start_angle {geo.frame_phi0_deg[item.frame]:.7f} deg.",
        f"# Angle_increment {geo.osc_deg:.7f} deg.",
        f"# Phi {geo.frame_phi0_deg[item.frame]:.7f} deg.",
        "# Oscillation_axis X, CW",
    ]
    return "\n".join(lines)


def write_cbf(item: FrameFile, scale: Scale, path: str) -> None:
    """Write frame ``item`` as a mini-CBF at ``path``: ADU = photons x gain + offset, int32."""
    from fabio.cbfimage import CbfImage

    header = {
        "_array_data.header_convention": "GENERIC_MINI",
        "_array_data.header_contents": pilatus_header(item, CBF_TOP),
    }
    image = CbfImage(data=scale.adu(item.photons, CBF_TOP, "int32"), header=header)
    image.write(path)
