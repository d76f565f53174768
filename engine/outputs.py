"""Files a nanoBragg run writes: float image, SMV int image, PGM, noise image and Fdump."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from engine.cli_args import Outputs
from engine.frame import FrameSetup
from engine.noise import noise_image
from engine.response import DetectorResponse, PointSpread, detector_image
from engine.smv import c_g, int_image, smv_header, write_float_image, write_pgm, write_smv
from engine.statistics import FrameStatistics
from engine.structure_factors import write_fdump
from engine.window import Window


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
            noise = pool.submit(_noise_image, setup, image, outputs, seed, frame, roi_mask)
        _write_images(setup, image, stats, outputs, roi_mask, say)
        if noise is not None:
            counts, line = noise.result()
            say(line)
            write_smv(outputs.noisefile, counts, smv_header(setup.plan))
            say(f"writing {outputs.noisefile} as 2-byte integers")
    return lines


def noise_response(outputs: Outputs, seed: int) -> DetectorResponse | None:
    """The detector response ``-gain``, ``-readout_noise``, ``-psf``, ``-overload`` ask of
    the noise image (None: none of them given, C's plain ``-noisefile``)."""
    plain = Outputs()
    own = ("gain", "readout_noise", "psf", "overload")
    if all(getattr(outputs, name) == getattr(plain, name) for name in own):
        return None
    psf = None if outputs.psf == "none" else PointSpread.parse(outputs.psf)
    return DetectorResponse(
        noise=True,
        seed=seed,
        gain=outputs.gain,
        adc_offset=outputs.adc_offset,
        readout_noise=outputs.readout_noise,
        psf=psf,
        overload=outputs.overload,
    )


def _noise_image(
    setup: FrameSetup,
    image: np.ndarray,
    outputs: Outputs,
    seed: int,
    frame: int,
    roi_mask: np.ndarray,
) -> tuple[np.ndarray, str]:
    """The noise image (uint16 ADU) and its log line: C's, or with a detector response."""
    response = noise_response(outputs, seed)
    if response is None:
        counts, photons, overloads = noise_image(
            torch.from_numpy(image),
            seed,
            frame,
            0,
            0,
            image.shape[1],
            outputs.adc_offset,
            torch.from_numpy(roi_mask),
        )
        return counts.numpy(), f"{photons:.0f} photons on noise image ({overloads} overloads)"
    geo = setup.detector
    window = Window.full(*image.shape)
    adu, overloads = detector_image(
        image, window, response, frame, geo.fast_pixels, geo.pixel_size, inside=roi_mask
    )
    return adu, f"detector response on noise image ({overloads} overloads)"


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
            write_smv(outputs.intfile, adu, smv_header(setup.plan))
            say(f"writing {outputs.intfile} as 2-byte integers")
        del adu  # one output image in memory at a time
        if outputs.pgmfile:
            pgm = write_pgm(outputs.pgmfile, image, outputs.pgm_scale, stats.rmsd, scale, roi_mask)
            say(f"pgm_scale = {c_g(pgm)}")
            say(f"writing {outputs.pgmfile} as 1-byte integers")
