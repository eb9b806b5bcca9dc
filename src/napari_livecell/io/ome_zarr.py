"""npe2 reader and writer for OME-Zarr: an image (and its ``labels/cells``) opened lazily; labels saved.

The reader claims a local folder that is an OME-Zarr image or holds
``labels/cells`` (what ``segment --out-format ome-zarr`` writes). Nothing is
read until napari draws it: the layers hold dask arrays, and a frame larger
than :data:`MULTISCALE_SIDE` a side comes as its pyramid, so that napari
draws a 20000 x 20000 image from its small levels. Smaller ones come at full
resolution only, as the Track and Measure docks need them.

The writer saves a Labels layer as ``labels/cells``: inside the image's
store when the path is an OME-Zarr image, else as a store of its own, built
beside the target and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_livecell.core.formats.ome_zarr import (
    SPATIAL_UNIT,
    has_labels,
    labels_axes,
    read_labels,
    write_label_stack,
)
from napari_livecell.core.ngff import OmeZarrImage, is_ome_zarr, is_ome_zarr_image, micrometres, open_ome_zarr

MULTISCALE_SIDE = 4096  # a frame longer than this on a side opens as a pyramid
OME_ZARR_KEY = "ome_zarr"  # layer metadata: the store's axes, units and path
# layers.cells_layer_name's suffix: the docks pair "<image> cells" with "<image>"; importing
# layers (scipy.ndimage through the core) would add seconds to a store's first open
CELLS_SUFFIX = " cells"


def get_ome_zarr_reader(path: str | list[str]):
    """Return a reader for an OME-Zarr image or labels store, else ``None``."""
    if isinstance(path, list) or not path:
        return None
    folder = Path(str(path).rstrip("/\\"))
    if not is_ome_zarr(folder):
        return None
    return read_ome_zarr_layers if is_ome_zarr_image(folder) or has_labels(folder) else None


def _stem(folder: Path) -> str:
    from napari_livecell.core.images import input_stem

    return input_stem(folder)


def _layer_scale(image: OmeZarrImage) -> tuple[float, ...]:
    """A layer's scale per axis (channels left out): lengths in micrometres, frames 1 apart.

    The docks take a layer's ``y``, ``x`` scale as its pixel size in
    micrometres; a length without a unit stays as stored.
    """
    scale = []
    for axis in image.axes.replace("c", ""):
        per_unit = micrometres(image.units[axis]) if axis in image.units else None
        value = 1.0 if axis == "t" else image.scale.get(axis, 1.0)
        scale.append(value * per_unit if per_unit and axis != "t" else value)
    return tuple(scale)


def _layer_data(image: OmeZarrImage) -> tuple[Any, bool]:
    height, width = (image.data.shape[image.axes.index(axis)] for axis in "yx")
    if max(height, width) > MULTISCALE_SIDE:
        return list(image.pyramid), len(image.pyramid) > 1
    return image.data, False


def _metadata(image: OmeZarrImage) -> dict:
    return {
        OME_ZARR_KEY: {
            "path": str(image.path),
            "axes": image.axes,
            "units": dict(image.units),
            "scale": dict(image.scale),
            "pixel_size_um": image.pixel_size_um,
            "version": image.version,
        }
    }


def read_ome_zarr_layers(path: str) -> list[tuple]:
    """An OME-Zarr store as napari layers: its image (with scale), then its ``labels/cells`` as Labels."""
    folder = Path(str(path).rstrip("/\\"))
    stem = _stem(folder)
    layers: list[tuple] = []
    if is_ome_zarr_image(folder):
        image = open_ome_zarr(folder)
        data, multiscale = _layer_data(image)
        kwargs: dict[str, Any] = {
            "name": stem,
            "scale": _layer_scale(image),
            "multiscale": multiscale,
            "metadata": _metadata(image),
        }
        if "c" in image.axes:
            kwargs["channel_axis"] = image.axes.index("c")
        layers.append((data, kwargs, "image"))
    if has_labels(folder):
        labels = read_labels(folder)
        data, multiscale = _layer_data(labels)
        kwargs = {
            "name": f"{stem}{CELLS_SUFFIX}",
            "scale": _layer_scale(labels),
            "multiscale": multiscale,
            "metadata": _metadata(labels),
        }
        layers.append((data, kwargs, "labels"))
    return layers


def write_labels_ome_zarr(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Labels layer as OME-Zarr ``labels/cells`` (a pyramid, with the layer's axes and scale).

    A layer read from an OME-Zarr store keeps the store's axes and units; any
    other layer's leading axes are ``t`` (then ``z``) and its scale has no
    unit. Into an existing OME-Zarr image, the labels go inside its store;
    otherwise ``path`` becomes a store of its own. Frames are written one by
    one, and nothing is in place until the last one is written.
    """
    labels = data[0] if isinstance(data, list) else data  # multiscale: the full resolution
    stored = (attributes.get("metadata") or {}).get(OME_ZARR_KEY) or {}
    axes = stored.get("axes", "").replace("c", "") or None
    if axes is not None and len(axes) != labels.ndim:
        axes = None
    scale = attributes.get("scale")
    names = axes or labels_axes(labels.ndim)
    per_axis = None
    if scale is not None and len(scale) == labels.ndim:
        per_axis = {axis: float(value) for axis, value in zip(names, scale) if axis != "t"}
    # the reader gave lengths in micrometres (:func:`_layer_scale`)
    units = {axis: SPATIAL_UNIT for axis, unit in (stored.get("units") or {}).items() if micrometres(unit)}
    target = Path(os.fspath(path))
    written = write_label_stack(target, labels, names, units=units, scale=per_axis)
    return [str(written)]
