"""Files a nanoBragg run writes: float image, SMV int image, PGM, noise image and Fdump."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from engine.cli_args import Outputs
from engine.frame import FrameSetup
from engine.geometry import RTD, DetectorGeometry
from engine.model import Experiment
from engine.noise import noise_image
from engine.scan import resolve_phi
from engine.smv import SMVHeader, c_g, int_image, write_float_image, write_pgm, write_smv
from engine.statistics import FrameStatistics
from engine.structure_factors import write_fdump


def smv_header(
    detector: DetectorGeometry, wavelength_A: float, phi0_deg: float, osc_deg: float
) -> SMVHeader:
    """The header values C nanoBragg writes into its SMV images, from the frame's detector
    geometry, wavelength (Angstrom), start angle and oscillation (degrees)."""
    g = detector
    mm = 1000.0
    return SMVHeader(
        fast_pixels=g.fast_pixels,
        slow_pixels=g.slow_pixels,
        pixel_size_mm=g.pixel_size * mm,
        distance_mm=g.distance * mm,
        wavelength_A=wavelength_A,
        beam_center_x_mm=g.xbeam * mm,
        beam_center_y_mm=g.ybeam * mm,
        adxv_center_x_mm=g.fbeam * mm,
        adxv_center_y_mm=(g.detsize_s - g.sbeam) * mm,
        mosflm_center_x_mm=(g.sbeam - 0.5 * g.pixel_size) * mm,
        mosflm_center_y_mm=(g.fbeam - 0.5 * g.pixel_size) * mm,
        denzo_x_beam_mm=g.sbeam * mm,
        denzo_y_beam_mm=g.fbeam * mm,
        dials_origin_mm=g.dials_origin,
        xds_orgx=g.orgx,
        xds_orgy=g.orgy,
        close_distance_mm=g.close_distance * mm,
        phi_deg=phi0_deg,
        osc_start_deg=phi0_deg,
        osc_range_deg=osc_deg,
        twotheta_deg=g.twotheta * RTD,
    )


def experiment_smv_header(experiment: Experiment, detector: DetectorGeometry) -> SMVHeader:
    """:func:`smv_header` of a frame's experiment and its detector geometry."""
    phi0, osc, _, _ = resolve_phi(experiment.scan)
    return smv_header(detector, experiment.beam.wavelength_A, phi0, osc)


def write_outputs(
    setup: FrameSetup,
    image: np.ndarray,
    stats: FrameStatistics,
    outputs: Outputs,
    roi_mask: np.ndarray,
    frame: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Write the outputs requested in ``outputs`` for a rendered frame (photons/pixel).

    Returns C nanoBragg's log lines about them; ``log`` (e.g. ``print``) also gets each line
    as it happens.
    """
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    with ThreadPoolExecutor(1, thread_name_prefix="braggtile-noise") as pool:
        noise = None
        if outputs.noisefile:  # drawn while the other files are made (it needs no statistics)
            seed = outputs.seed if outputs.seed is not None else int(time.time())
            noise = pool.submit(
                noise_image,
                torch.from_numpy(image),
                seed,
                frame,
                0,
                0,
                image.shape[1],
                outputs.adc_offset,
                torch.from_numpy(roi_mask),
            )
        _write_images(setup, image, stats, outputs, roi_mask, say)
        if noise is not None:
            counts, photons, overloads = noise.result()
            say(f"{photons:.0f} photons on noise image ({overloads} overloads)")
            write_smv(
                outputs.noisefile,
                counts.numpy(),
                experiment_smv_header(setup.experiment, setup.detector),
            )
            say(f"writing {outputs.noisefile} as 2-byte integers")
    return lines


def _write_images(
    setup: FrameSetup,
    image: np.ndarray,
    stats: FrameStatistics,
    outputs: Outputs,
    roi_mask: np.ndarray,
    say: Callable[[str], None],
) -> None:
    """The Fdump, float, int and PGM files of ``write_outputs``, in C's order."""
    if setup.experiment.crystal.hkl_file is not None and outputs.dumpfile:
        try:
            write_fdump(setup.sf_table, outputs.dumpfile)
            say(f"writing dump file for next time: {outputs.dumpfile}")
        except OSError as err:
            say(f"WARNING: unable to open dump file: {outputs.dumpfile} ({err.strerror})")
    if outputs.floatfile:
        write_float_image(outputs.floatfile, image)
        say(f"writing {outputs.floatfile} as {image.size} 4-byte floats")
    if outputs.intfile or outputs.pgmfile:  # the PGM's fallback scale is the int file's
        adu, scale = int_image(
            image, outputs.intfile_scale, outputs.adc_offset, roi_mask, max_i=stats.max_I
        )
        if outputs.intfile:
            say(f"intfile_scale = {c_g(scale)}")
            write_smv(outputs.intfile, adu, experiment_smv_header(setup.experiment, setup.detector))
            say(f"writing {outputs.intfile} as 2-byte integers")
        del adu  # one output image in memory at a time
        if outputs.pgmfile:
            pgm = write_pgm(outputs.pgmfile, image, outputs.pgm_scale, stats.rmsd, scale, roi_mask)
            say(f"pgm_scale = {c_g(pgm)}")
            say(f"writing {outputs.pgmfile} as 1-byte integers")
