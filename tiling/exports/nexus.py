"""One NXmx (NeXus/HDF5) file for a series of finished frames, as dxtbx's FormatNXmx reads it.

Layout (McStas lab frame: z along the beam, y up; lengths in mm, angles in degrees)::

    /entry                      NXentry, definition "NXmx"
      data/data                 NXdata signal: (frames, slow, fast) uint16 or uint32 ADU,
                                one frame per chunk, bitshuffle + LZ4 (hdf5plugin)
      instrument/               NXinstrument
        beam/incident_wavelength          Angstrom
        detector/                         NXdetector: sensor, saturation, count time,
          transformations/origin          translation to the first pixel's corner
          module/                         NXdetector_module: data_origin, data_size,
                                          module_offset, fast/slow_pixel_direction (pixel size)
      sample/transformations/omega        rotation about the spindle, one start per frame,
                                          omega_end and omega_increment_set

nanoBragg's lab frame is turned rigidly so that its beam vector becomes McStas +z (its +y
stays up as far as the beam allows): for the MOSFLM convention (beam +x) the DIALS origin of
the file equals the DIALS_ORIGIN of C's SMV header.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from tiling.exports.series import Scale, max_photons
from tiling.layout import Geometry
from tiling.store import StoreReader

#: dxtbx reads integer pixels as int32, so uint32 data stops at the largest int32.
UINT32_TOP = 2**31 - 1
UINT16_TOP = 65535
#: Sensor thickness (um) written when the job gives none (nanoBragg's -detector_thick 0):
#: dxtbx always builds a parallax correction that needs a thickness > 0. Its shift,
#: (1/mu)[1 - (1 + mu t/cos) exp(-mu t/cos)] sin, is about mu t^2 sin / (2 cos^2): for
#: t = 1e-9 mm and any mu below 1e4 /mm, under 1e-14 mm / cos^2 (of the ray to the normal),
#: far below 1e-6 pixel; and never more than t tan = 1e-9 mm x tan.
NEGLIGIBLE_THICKNESS_UM = 1e-6


def mcstas_rotation(beam: tuple[float, float, float]) -> np.ndarray:
    """The 3x3 rotation taking nanoBragg lab vectors to McStas ones (beam -> +z, y up)."""
    z = np.asarray(beam, dtype=np.float64)
    z = z / np.linalg.norm(z)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    y = up - np.dot(up, z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z])


def pixel_type(scale: Scale, photons: float) -> tuple[str, int]:
    """(dtype, saturation ADU) holding ``photons`` x gain + offset: uint16 when it fits."""
    if scale.highest(photons) <= UINT16_TOP:
        return "uint16", UINT16_TOP
    return "uint32", UINT32_TOP


def _text(group, name: str, value: str, **attrs) -> None:
    dataset = group.create_dataset(name, data=value)
    dataset.attrs.update(attrs)


def _axis(group, name: str, value, kind: str, vector, depends_on: str, units: str):
    """A transformation field: ``value`` along/about ``vector`` after ``depends_on``."""
    dataset = group.create_dataset(name, data=np.asarray(value, dtype=np.float64))
    dataset.attrs.update(
        {
            "transformation_type": kind,
            "vector": np.asarray(vector, dtype=np.float64),
            "depends_on": depends_on,
            "units": units,
            "offset": np.zeros(3),
            "offset_units": "mm",
        }
    )
    return dataset


def _group(parent, name: str, nx_class: str):
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _detector(instrument, reader: StoreReader, rotation: np.ndarray, saturation: int) -> None:
    """The NXdetector: sensor, saturation, and the module's position and axes."""
    geo: Geometry = reader.attributes.geometry
    experiment = reader.job.experiment
    detector = _group(instrument, "detector", "NXdetector")
    _text(detector, "description", "braggtile nanoBragg simulation")
    _text(detector, "type", "pixel")
    _text(detector, "sensor_material", "Si")
    thick_um = experiment.detector.thick_um
    thick_um = thick_um if thick_um > 0 else NEGLIGIBLE_THICKNESS_UM
    thickness = detector.create_dataset("sensor_thickness", data=thick_um)
    thickness.attrs["units"] = "um"
    detector.create_dataset("saturation_value", data=np.int64(saturation))
    detector.create_dataset("count_time", data=experiment.beam.exposure_s).attrs["units"] = "s"
    detector.create_dataset("distance", data=geo.distance_mm).attrs["units"] = "mm"
    for name, value in (("x", geo.beam_centre_pixels.fast), ("y", geo.beam_centre_pixels.slow)):
        detector.create_dataset(f"beam_center_{name}", data=value).attrs["units"] = "pixel"
    origin = rotation @ np.asarray(geo.pix0_vector_m) * 1e3  # mm
    transformations = _group(detector, "transformations", "NXtransformations")
    length = float(np.linalg.norm(origin))
    direction = origin / length if length > 0 else np.array([0.0, 0.0, 1.0])
    placed = _axis(transformations, "origin", [length], "translation", direction, ".", "mm")
    _text(detector, "depends_on", placed.name)
    _module(detector, geo, rotation, placed.name)


def _module(detector, geo: Geometry, rotation: np.ndarray, depends_on: str) -> None:
    """The single NXdetector_module spanning the whole image."""
    module = _group(detector, "module", "NXdetector_module")
    module.create_dataset("data_origin", data=np.array([0, 0], dtype=np.int64))
    module.create_dataset(
        "data_size", data=np.array([geo.slow_pixels, geo.fast_pixels], dtype=np.int64)
    )
    offset = _axis(module, "module_offset", 0.0, "translation", [1.0, 0.0, 0.0], depends_on, "mm")
    for name, vector in (("fast", geo.fdet_vector), ("slow", geo.sdet_vector)):
        direction = rotation @ np.asarray(vector)
        _axis(
            module,
            f"{name}_pixel_direction",
            geo.pixel_size_mm,
            "translation",
            direction,
            offset.name,
            "mm",
        )


def _sample(entry, geo: Geometry, frames: list[int], rotation: np.ndarray) -> None:
    """The NXsample on the goniometer: omega about the spindle, one start angle per frame."""
    sample = _group(entry, "sample", "NXsample")
    _text(sample, "name", "braggtile crystal")
    transformations = _group(sample, "transformations", "NXtransformations")
    starts = np.array([geo.frame_phi0_deg[k] for k in frames], dtype=np.float64)
    axis = rotation @ np.asarray(geo.spindle_axis)
    omega = _axis(transformations, "omega", starts, "rotation", axis, ".", "deg")
    end = transformations.create_dataset("omega_end", data=starts + geo.osc_deg)
    end.attrs["units"] = "deg"
    step = transformations.create_dataset("omega_increment_set", data=geo.osc_deg)
    step.attrs["units"] = "deg"
    _text(sample, "depends_on", omega.name)


Progress = Callable[[int], None]


def write_nexus(
    reader: StoreReader,
    frames: list[int],
    scale: Scale,
    path: str,
    progress: Progress | None = None,
) -> None:
    """Write ``frames`` (finished, level 0) of ``reader``'s job as one NXmx file at ``path``,
    one frame in memory at a time; ``progress(1)`` after each frame."""
    import h5py
    import hdf5plugin

    geo = reader.attributes.geometry
    dtype, top = pixel_type(scale, max_photons(reader, frames))
    rotation = mcstas_rotation(geo.beam_vector)
    with h5py.File(path, "w") as out:
        out.attrs.update({"default": "entry", "creator": "braggtile", "NX_class": "NXroot"})
        entry = _group(out, "entry", "NXentry")
        entry.attrs["default"] = "data"
        _text(entry, "definition", "NXmx", version="1.0")
        _text(entry, "start_time", datetime.now(UTC).isoformat())
        instrument = _group(entry, "instrument", "NXinstrument")
        _text(instrument, "name", "braggtile", short_name="braggtile")
        beam = _group(instrument, "beam", "NXbeam")
        wavelength = reader.job.experiment.beam.wavelength_A
        beam.create_dataset("incident_wavelength", data=wavelength).attrs["units"] = "angstrom"
        _detector(instrument, reader, rotation, top)
        _sample(entry, geo, frames, rotation)
        data = _group(entry, "data", "NXdata")
        data.attrs["signal"] = "data"
        images = data.create_dataset(
            "data",
            shape=(len(frames), geo.slow_pixels, geo.fast_pixels),
            dtype=dtype,
            chunks=(1, geo.slow_pixels, geo.fast_pixels),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        for index, frame in enumerate(frames):
            images[index] = scale.adu(reader.read_frame(0, frame), top, dtype)
            if progress is not None:
                progress(1)
