"""OME-Zarr (NGFF) images: opened lazily, with their axes and pixel size, in the TIFF reader's layout.

A shared module, because :func:`napari_livecell.core.images.read_image` (the
one place every command reads its images) opens OME-Zarr folders with it. The
labels side (writing ``labels/cells`` frame by frame, reading it back) is
:mod:`napari_livecell.core.formats.ome_zarr`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class ImageReadError(ValueError):
    """A path that does not hold a readable image."""


NGFF_AXES = ("t", "c", "z", "y", "x")
_METRE_PREFIXES = {
    "yocto": 1e-24, "zepto": 1e-21, "atto": 1e-18, "femto": 1e-15, "pico": 1e-12, "nano": 1e-9,
    "micro": 1e-6, "milli": 1e-3, "centi": 1e-2, "deci": 1e-1, "": 1.0, "hecto": 1e2, "kilo": 1e3,
    "mega": 1e6, "giga": 1e9, "tera": 1e12, "peta": 1e15, "exa": 1e18, "zetta": 1e21, "yotta": 1e24,
}  # fmt: skip
_OTHER_LENGTHS = {"angstrom": 1e-10, "inch": 0.0254, "foot": 0.3048, "yard": 0.9144, "mile": 1609.344,
                  "parsec": 3.0857e16}  # fmt: skip


@dataclass
class OmeZarrImage:
    """An OME-Zarr image's highest resolution, lazily, in the layout the TIFF reader gives.

    Attributes
    ----------
    data : dask.array.Array
        Frames first (``t``, then ``z``), ``(H, W)`` next, channels last when
        there are several (``(..., H, W, C)``, as :func:`channel_axis` finds
        them); axes of length 1 are dropped, as tifffile drops them.
    axes : str
        ``data``'s axes, e.g. ``"tyx"`` or ``"yxc"``.
    store_axes : str
        The axes as stored, e.g. ``"tczyx"``.
    scale : dict of str to float
        Each stored axis' scale at the highest resolution (1 when not given).
    units : dict of str to str
        Each stored axis' unit, where the metadata names one.
    pixel_size_um : float or None
        Micrometres per pixel (the mean of ``y`` and ``x``), ``None`` when
        the spatial axes have no unit.
    version : str
        The NGFF version (``"0.4"``, ``"0.5"``).
    path : Path
        The store's folder.
    pyramid : list of dask.array.Array
        Every resolution, highest first (``data`` is the first), laid out as
        ``data``.
    """

    data: Any
    axes: str
    store_axes: str
    scale: dict[str, float]
    units: dict[str, str]
    pixel_size_um: float | None
    version: str
    path: Path
    pyramid: list = field(default_factory=list)


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a Zarr group (v2 or v3): an OME-Zarr image or labels store."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zattrs"))


def is_ome_zarr_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Zarr group whose metadata has ``multiscales``: an image to read (cheap)."""
    if not is_ome_zarr(path):
        return False
    try:
        return isinstance(ome_zarr_attributes(path)[0].get("multiscales"), list)
    except ImageReadError:
        return True  # its reader says what is wrong with it


def ome_zarr_attributes(path: str | os.PathLike) -> tuple[dict, str]:
    """The NGFF attributes of the Zarr group at ``path`` (``ome`` unwrapped) and its NGFF version.

    Raises
    ------
    ImageReadError
        Not a Zarr group, or unreadable metadata.
    """
    import zarr

    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        attributes = dict(group.attrs)
    except Exception as error:  # zarr raises many types for broken metadata
        raise ImageReadError(
            f"{path.name}: not a readable Zarr group ({type(error).__name__}: {error})"
        ) from None
    if "ome" in attributes and isinstance(attributes["ome"], dict):  # NGFF 0.5 keeps its metadata there
        attributes = dict(attributes["ome"])
        return attributes, str(attributes.get("version", "0.5"))
    multiscales = attributes.get("multiscales")
    version = "0.4"
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict):
        version = str(multiscales[0].get("version", "0.4"))
    return attributes, version


def open_ome_zarr(path: str | os.PathLike) -> OmeZarrImage:
    """Open a local OME-Zarr image (NGFF 0.4 or 0.5) lazily: its highest resolution and metadata.

    Parameters
    ----------
    path : path
        The image's folder (``image.ome.zarr``), or a labels group inside one.

    Returns
    -------
    OmeZarrImage

    Raises
    ------
    ImageReadError
        One line for each way the metadata can fail to describe an image:
        no ``multiscales``, an axis other than t, c, z, y, x, spatial axes
        that are not the last two, a unit that is not a length, a zero or
        negative scale, or a dataset array that is missing.
    """
    path = Path(path)
    name = path.name
    attributes, version = ome_zarr_attributes(path)
    multiscales = attributes.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        raise ImageReadError(f"{name}: no OME-Zarr multiscales metadata (not an NGFF image)")
    entry = multiscales[0]
    datasets = entry.get("datasets")
    if not isinstance(datasets, list) or not datasets or not isinstance(datasets[0], dict):
        raise ImageReadError(f"{name}: the multiscales metadata lists no datasets")
    axes, units = _ngff_axes(entry.get("axes"), name)
    scale = _ngff_scale(datasets[0], entry, axes, name)
    levels = [
        _project_layout(_ngff_array(path, str(dataset.get("path", "")), len(axes), name), axes)
        for dataset in datasets
        if isinstance(dataset, dict)
    ]
    pixel_size = None
    if "y" in units and "x" in units:  # both lengths: checked with the axes
        y_um, x_um = (scale[axis] * (micrometres(units[axis]) or 0.0) for axis in "yx")
        pixel_size = (y_um + x_um) / 2
    (data, layout), pyramid = levels[0], [level for level, _ in levels]
    return OmeZarrImage(data, layout, "".join(axes), scale, units, pixel_size, version, path, pyramid)


def _ngff_axes(axes: Any, name: str) -> tuple[list[str], dict[str, str]]:
    if axes is None:
        raise ImageReadError(f"{name}: the multiscales metadata names no axes (NGFF 0.4 and later need them)")
    names: list[str] = []
    units: dict[str, str] = {}
    for axis in axes if isinstance(axes, list) else [axes]:
        axis_name = axis.get("name") if isinstance(axis, dict) else axis
        if axis_name not in NGFF_AXES:
            raise ImageReadError(f"{name}: unknown axis {axis_name!r} (this reader knows t, c, z, y, x)")
        if axis_name in names:
            raise ImageReadError(f"{name}: axis {axis_name!r} is named twice")
        names.append(axis_name)
        unit = axis.get("unit") if isinstance(axis, dict) else None
        if unit is not None and axis_name in "zyx" and micrometres(unit) is None:
            raise ImageReadError(f"{name}: axis {axis_name!r} has unit {unit!r}, not a length")
        if unit is not None:
            units[axis_name] = str(unit)
    if names[-2:] != ["y", "x"]:
        raise ImageReadError(f"{name}: the last two axes must be y, x (found {', '.join(names)})")
    return names, units


def _ngff_scale(dataset: dict, entry: dict, axes: list[str], name: str) -> dict[str, float]:
    scale = np.ones(len(axes))
    for transforms in (dataset.get("coordinateTransformations"), entry.get("coordinateTransformations")):
        for transform in transforms or []:
            if isinstance(transform, dict) and transform.get("type") == "scale":
                values = transform.get("scale")
                try:
                    values = np.asarray(values, dtype=float)
                except (TypeError, ValueError):
                    raise ImageReadError(f"{name}: scale {values!r} is not a list of numbers") from None
                if values.shape != (len(axes),):
                    raise ImageReadError(f"{name}: scale {values.tolist()} does not match axes {axes}")
                scale = scale * values
    for axis, value in zip(axes, scale):
        if axis in "zyx" and not (np.isfinite(value) and value > 0):
            raise ImageReadError(f"{name}: axis {axis!r} has scale {value:g}: pixel sizes must be positive")
    return {axis: float(value) for axis, value in zip(axes, scale)}


def _ngff_array(path: Path, array_path: str, ndim: int, name: str):
    import dask.array as da
    import zarr

    try:
        array = zarr.open_array(str(path / array_path), mode="r") if array_path else None
    except Exception:  # zarr raises FileNotFoundError or its own errors for a missing array
        array = None
    if not isinstance(array, zarr.Array):
        raise ImageReadError(f"{name}: dataset {array_path!r} named by the multiscales metadata is missing")
    if array.ndim != ndim:
        raise ImageReadError(f"{name}: dataset {array_path!r} has {array.ndim} axes, the metadata {ndim}")
    if min(array.shape[-2:]) == 0:
        raise ImageReadError(f"{name}: dataset {array_path!r} holds no 2-D image (shape {array.shape})")
    return da.from_zarr(array)


def micrometres(unit: str) -> float | None:
    """Micrometres per ``unit`` (an NGFF length unit), ``None`` for anything else."""
    if unit in _OTHER_LENGTHS:
        return _OTHER_LENGTHS[unit] * 1e6
    if isinstance(unit, str) and unit.endswith("meter") and unit[: -len("meter")] in _METRE_PREFIXES:
        return _METRE_PREFIXES[unit[: -len("meter")]] * 1e6
    return None


def _project_layout(data, axes: list[str]):
    """``data`` as the TIFF path gives it: ``t``, ``z`` first, then ``y``, ``x``, channels last; no 1s."""
    order = [axes.index(axis) for axis in ("t", "z", "y", "x", "c") if axis in axes]
    data = data.transpose(order)
    names = [axes[i] for i in order]
    keep = [i for i, axis in enumerate(names) if axis in "yx" or data.shape[i] > 1]
    if len(keep) < data.ndim:
        data = data[tuple(slice(None) if i in keep else 0 for i in range(data.ndim))]
    return data, "".join(names[i] for i in keep)
