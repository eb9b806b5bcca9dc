"""Pixel size: frames are resampled to the pixel size the model was trained at.

A model learns cells at one size in pixels. A frame taken at another pixel
size (another objective, binning, camera) shows cells larger or smaller than
the model has ever seen, and it misses or splits them. When both pixel sizes
are known and differ by more than :data:`TOLERANCE`, the frame is resampled
to the model's pixel size, segmented there, and the labels are mapped back to
the frame's own grid (nearest neighbour: ids kept, areas counted on the
original grid, outlines traced from the mapped labels). Without a pixel size
nothing is resampled and the reports say so. docs/pixel_size.md has the rules.

Examples
--------
>>> plan = Resampling(image_um=0.62, model_um=1.24, source="--pixel-size")
>>> plan.applied, plan.zoom, plan.describe()
(True, 0.5, 'resampled 0.62 -> 1.24 um/px')
>>> Resampling(None, 1.24).describe()
'pixel size unknown: not resampled'
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.models.model import LoadedModel
from napari_livecell.core.segmentation import Segmentation

from .frame_input import InputError, Polarity
from .predict import PredictSettings, segment_frame_steps

# pixel sizes within 10 % of each other are taken as the same: the model's
# training already varies cell sizes more than that, and resampling costs time
TOLERANCE = 0.10
# a frame resampled beyond this many pixels would need more memory than it is worth
MAX_RESAMPLED_PIXELS = 200_000_000
# file metadata outside this range is not a microscope's pixel size (a 72 dpi default, 1 px = 1 m)
PLAUSIBLE_UM = (0.005, 100.0)
# a TIFF in inches at a print resolution (72, 96, 300, 1200 dpi...) is a document default
MAX_PRINT_DPI = 1200
_UNIT_IN_UM = {
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "\\u00b5m": 1.0,
    "nm": 1e-3,
    "a": 1e-4,
    "å": 1e-4,
}


@dataclass(frozen=True)
class Resampling:
    """What is done about a frame's pixel size against the model's.

    Attributes
    ----------
    image_um : float or None
        The frame's pixel size in micrometres (``None``: unknown).
    model_um : float or None
        The pixel size the model was trained at (``None``: the model does not say).
    source : str
        Where ``image_um`` came from (``--pixel-size``, ``layer scale``,
        ``file metadata``, ``query``...), for logs and json.
    tolerance : float
        Relative difference up to which the sizes count as the same.
    """

    image_um: float | None
    model_um: float | None
    source: str = ""
    tolerance: float = TOLERANCE

    @property
    def zoom(self) -> float:
        """Factor the frame is scaled by (2.0: twice as many pixels per side); 1.0 when not resampled."""
        if self.image_um is None or self.model_um is None:
            return 1.0
        return self.image_um / self.model_um

    @property
    def applied(self) -> bool:
        """Whether the frame is resampled: both sizes known and further apart than the tolerance."""
        if self.image_um is None or self.model_um is None:
            return False
        larger, smaller = max(self.image_um, self.model_um), min(self.image_um, self.model_um)
        return larger / smaller > 1.0 + self.tolerance

    def describe(self) -> str:
        """One phrase for status lines and logs, e.g. ``resampled 0.62 -> 1.24 um/px``."""
        if self.image_um is None:
            return "pixel size unknown: not resampled"
        if self.model_um is None:
            return f"pixel size {self.image_um:g} um/px, the model's is unknown: not resampled"
        if self.applied:
            return f"resampled {self.image_um:g} -> {self.model_um:g} um/px"
        return f"pixel size {self.image_um:g} um/px is the model's ({self.model_um:g}): not resampled"

    def as_dict(self) -> dict:
        """The decision as json-ready settings (service json, CLI ``predictions.json``)."""
        return {
            "pixel_size_um": self.image_um,
            "pixel_size_source": self.source or None,
            "model_pixel_size_um": self.model_um,
            "resampled": self.applied,
            "resample_factor": round(self.zoom, 6),
        }

    @classmethod
    def from_dict(cls, said: dict) -> Resampling | None:
        """Read :meth:`as_dict` back (``None`` when ``said`` holds no pixel-size decision)."""
        if "model_pixel_size_um" not in said or "pixel_size_um" not in said:
            return None
        return cls(
            _optional_float(said["pixel_size_um"]),
            _optional_float(said["model_pixel_size_um"]),
            str(said.get("pixel_size_source") or ""),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def describe_resamplings(resamplings: list[Resampling | None]) -> str:
    """What was done about pixel size over a run's frames (one phrase when all agree)."""
    phrases = list(dict.fromkeys(r.describe() for r in resamplings if r is not None))
    if not phrases:
        return "pixel size not reported"
    return "; ".join(phrases)


def plan_resampling(image_um: float | None, model: LoadedModel, source: str = "") -> Resampling:
    """Decide what to do for frames of ``image_um`` micrometres per pixel with ``model``.

    Parameters
    ----------
    image_um : float or None
        The frames' pixel size; ``None`` when unknown.
    model : LoadedModel
        Its :attr:`~napari_livecell.core.models.model.LoadedModel.pixel_size_um` is the target.
    source : str
        Where ``image_um`` came from, for the reports.

    Raises
    ------
    ValueError
        A pixel size that is not a positive finite number.
    """
    from napari_livecell.core.images import check_pixel_size

    return Resampling(check_pixel_size(image_um), model.pixel_size_um, source if image_um is not None else "")


def resampled_shape(shape: tuple[int, int], zoom: float) -> tuple[int, int]:
    """``(height, width)`` of a frame of ``shape`` scaled by ``zoom`` (at least 1 px per side)."""
    return max(1, round(shape[0] * zoom)), max(1, round(shape[1] * zoom))


def resample_frame(frame: np.ndarray, zoom: float) -> np.ndarray:
    """Scale a 2-D or ``(H, W, C)`` frame by ``zoom``, keeping its dtype.

    Shrinking averages the pixels each new pixel covers (OpenCV's
    ``INTER_AREA``, an anti-aliasing box filter, as a coarser camera pixel
    would integrate); enlarging interpolates bilinearly (no overshoot, so
    integer images stay in range). Both as separable sparse weights (scipy),
    equal to OpenCV's ``resize`` up to float rounding (one grey level at
    most; 8-bit enlarging bit for bit), without OpenCV in the base install.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` of any real dtype.
    zoom : float
        New size / old size per side.

    Returns
    -------
    numpy.ndarray
        The resampled frame, same dtype and channels.

    Raises
    ------
    InputError
        A result too small to segment or too large to hold.
    """
    frame = np.asarray(frame)
    height, width = resampled_shape(frame.shape[:2], zoom)
    if min(height, width) < 8:
        raise InputError(
            f"a frame of {frame.shape[1]} x {frame.shape[0]} px is {width} x {height} px at the model's "
            "pixel size: too small to segment"
        )
    if height * width > MAX_RESAMPLED_PIXELS:
        raise InputError(
            f"a frame of {frame.shape[1]} x {frame.shape[0]} px would be {width} x {height} px at the "
            f"model's pixel size (over {MAX_RESAMPLED_PIXELS:,} px): check the pixel size"
        )
    if zoom >= 1 and frame.dtype == np.uint8:
        from .network_input import resize_linear

        return resize_linear(frame, (width, height))
    weights = _area_weights if zoom < 1 else _linear_weights
    columns, rows = weights(frame.shape[1], width), weights(frame.shape[0], height)
    channels = frame.shape[2] if frame.ndim == 3 else 1
    # the columns first, band by band: float copies of a few rows, never of the whole frame
    narrow = np.empty((frame.shape[0], width * channels))
    for top in range(0, frame.shape[0], RESAMPLE_BAND_ROWS):
        band = frame[top : top + RESAMPLE_BAND_ROWS].astype(np.float64).reshape(-1, frame.shape[1], channels)
        done = columns @ band.transpose(1, 0, 2).reshape(frame.shape[1], -1)
        narrow[top : top + len(band)] = (
            done.reshape(width, len(band), channels).transpose(1, 0, 2).reshape(len(band), -1)
        )
    resized = (rows @ narrow).reshape(height, width, *frame.shape[2:])
    if frame.dtype == np.bool_:
        return resized >= 0.5
    if np.issubdtype(frame.dtype, np.integer):
        limits = np.iinfo(frame.dtype)
        return np.clip(np.rint(resized), limits.min, limits.max).astype(frame.dtype)
    return resized.astype(frame.dtype)


RESAMPLE_BAND_ROWS = 512


def _area_weights(source: int, size: int) -> Any:
    """``(size, source)`` sparse weights of OpenCV's ``INTER_AREA`` shrinking: each new pixel's mean.

    New pixel ``d`` covers ``[d, d + 1) * source / size`` of the old pixels;
    each old pixel weighs the part of it covered (the part inside the frame).
    """
    from scipy import sparse

    scale = source / size
    starts = np.arange(size) * scale
    ends = np.minimum(starts + scale, source)
    first = np.floor(starts).astype(np.int64)
    last = np.minimum(np.ceil(ends).astype(np.int64), source)
    counts = last - first
    new = np.repeat(np.arange(size), counts)
    old = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    covered = np.minimum(old + 1, ends[new]) - np.maximum(old, starts[new])
    keep = covered > 1e-9
    covered, new, old = covered[keep], new[keep], old[keep]
    return sparse.csr_matrix((covered / (ends - starts)[new], (new, old)), shape=(size, source))


def _linear_weights(source: int, size: int) -> Any:
    """``(size, source)`` sparse weights of OpenCV's ``INTER_LINEAR`` enlarging (float images).

    OpenCV's float32 positions; before the first and after the last pixel
    centre the border pixel is repeated.
    """
    from scipy import sparse

    position = ((np.arange(size) + 0.5) * (1.0 / (size / source)) - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = (position - first.astype(np.float32)).astype(np.float64)
    new = np.repeat(np.arange(size), 2)
    old = np.clip(np.stack([first, first + 1], axis=1), 0, source - 1).ravel()
    values = np.stack([1 - fraction, fraction], axis=1).ravel()
    # repeated entries (a border pixel twice) are summed by the conversion
    return sparse.csr_matrix(sparse.coo_matrix((values, (new, old)), shape=(size, source)))


def labels_to_grid(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Map a label image onto a grid of ``shape`` by nearest neighbour (ids kept).

    Every pixel of the new grid takes the label under its centre in the old
    one, the same pixel-centre convention :func:`resample_frame` scales with.
    """
    labels = np.asarray(labels)
    rows = ((np.arange(shape[0]) + 0.5) * (labels.shape[0] / shape[0])).astype(np.intp)
    cols = ((np.arange(shape[1]) + 0.5) * (labels.shape[1] / shape[1])).astype(np.intp)
    rows = np.minimum(rows, labels.shape[0] - 1)
    cols = np.minimum(cols, labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def segmentation_to_grid(result: Segmentation, shape: tuple[int, int]) -> Segmentation:
    """A result found on the resampled frame, on the frame's own ``(height, width)`` grid.

    The labels are mapped by :func:`labels_to_grid`; a cell too small to
    cover any pixel centre of the coarser grid is dropped with its score and
    class, and ids are made consecutive again. Areas, boxes and outlines are
    then those of the original grid (outlines are traced from these labels).
    """
    labels = labels_to_grid(result.labels, shape)
    return Segmentation.from_labels(labels, result.scores, result.classes, result.class_names)


def segment_frame_resampled_steps(
    frame: np.ndarray,
    model: LoadedModel,
    settings: PredictSettings,
    tile: bool | None,
    polarity: Polarity | None,
    resampling: Resampling,
) -> Generator[tuple[int, int], None, Segmentation]:
    """:func:`~napari_livecell.core.inference.predict.segment_frame_steps` at the model's pixel size.

    When ``resampling.applied``, the frame is scaled by ``resampling.zoom``,
    segmented (in tiles if it has grown beyond the network input), and the
    cells come back on the frame's grid; otherwise the frame is segmented as
    it is. Yields ``(tiles done, tiles)``; returns the :class:`Segmentation`.
    """
    if not resampling.applied:
        return (yield from segment_frame_steps(frame, model, settings, tile, polarity))
    frame = np.asarray(frame)
    resized = resample_frame(frame, resampling.zoom)
    result = yield from segment_frame_steps(resized, model, settings, tile, polarity)
    return segmentation_to_grid(result, frame.shape[:2])


# file metadata ---------------------------------------------------------------


def file_pixel_size(path: str | os.PathLike | None) -> float | None:
    """The pixel size a TIFF's or an OME-Zarr's metadata gives, in micrometres (``None`` when none is given).

    Reads only the header: OME-XML ``PhysicalSizeX``, then ImageJ's unit
    with the resolution tags, then ``XResolution`` in centimetres or inches
    (see :func:`tiff_pixel_size`). Unreadable files give ``None``: the
    reader that opens the pixels reports those.
    """
    if path is not None and Path(path).is_dir():
        from napari_livecell.core.ngff import ImageReadError, is_ome_zarr, open_ome_zarr

        try:  # an OME-Zarr image's scale, in its axes' length unit
            return open_ome_zarr(path).pixel_size_um if is_ome_zarr(path) else None
        except ImageReadError:
            return None
    if path is None or Path(path).suffix.lower() not in (".tif", ".tiff") or not Path(path).is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            return tiff_pixel_size(tiff)
    except Exception:  # tifffile raises many types for corrupt files
        return None


def image_pixel_size(path: str | os.PathLike | None, given: float | None = None) -> tuple[float | None, str]:
    """An image's micrometres per pixel and its source: ``given`` (``--pixel-size``), else its metadata.

    The one rule for every command that reads image files (``segment``,
    ``evaluate``, ``curate``): a pixel size the user gives wins over the file's.
    """
    if given is not None:
        return given, "--pixel-size"
    found = file_pixel_size(path)
    return (found, "file metadata") if found is not None else (None, "")


def bytes_pixel_size(payload: bytes) -> float | None:
    """:func:`file_pixel_size` for a TIFF held in memory (an upload); ``None`` for other formats."""
    if payload[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(payload)) as tiff:
            return tiff_pixel_size(tiff)
    except Exception:  # tifffile raises many types for corrupt data
        return None


def tiff_pixel_size(tiff: Any) -> float | None:
    """The square pixel size an open ``tifffile.TiffFile`` declares, in micrometres.

    In order: OME-XML ``PhysicalSizeX``/``Y`` with their units (micrometres
    by default); ImageJ's ``unit`` with ``XResolution`` (pixels per unit);
    ``XResolution`` with ``ResolutionUnit`` centimetre, or inch unless it is
    a print resolution (up to :data:`MAX_PRINT_DPI` dpi, what writers put by
    default). Pixels that are not square, sizes outside
    :data:`PLAUSIBLE_UM` and resolutions without a unit give ``None``.
    """
    size = _ome_pixel_size(tiff) if tiff.is_ome else None
    if size is None:
        size = _tag_pixel_size(tiff)
    if size is None or not PLAUSIBLE_UM[0] <= size <= PLAUSIBLE_UM[1]:
        return None
    return size


def _ome_pixel_size(tiff: Any) -> float | None:
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(tiff.ome_metadata)
    except (ElementTree.ParseError, TypeError, ValueError):
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Pixels":
            continue
        sizes: list[float | None] = []
        for axis in ("X", "Y"):
            value = element.get(f"PhysicalSize{axis}")
            unit = _UNIT_IN_UM.get(str(element.get(f"PhysicalSize{axis}Unit", "µm")).strip().lower())
            if value is None or unit is None:
                sizes.append(None)
                continue
            sizes.append(float(value) * unit)
        return _square(*sizes)
    return None


def _tag_pixel_size(tiff: Any) -> float | None:
    page = tiff.pages.first if hasattr(tiff.pages, "first") else tiff.pages[0]
    tags = page.tags
    x_tag, y_tag = tags.get("XResolution"), tags.get("YResolution")
    if x_tag is None:
        return None
    per_unit = [_rational(x_tag.value), _rational(y_tag.value) if y_tag is not None else None]
    if not per_unit[0]:
        return None
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF's default unit is the inch
    imagej = tiff.imagej_metadata if tiff.is_imagej else None
    if imagej and imagej.get("unit"):
        unit_um = _UNIT_IN_UM.get(str(imagej["unit"]).strip().lower())
    elif unit == 3:
        unit_um = 1e4
    elif unit == 2 and per_unit[0] > MAX_PRINT_DPI:
        unit_um = 25_400.0
    else:
        return None
    if unit_um is None:
        return None
    sizes = [unit_um / value if value else None for value in per_unit]
    return _square(*sizes)


def _rational(value: Any) -> float:
    if isinstance(value, tuple):
        numerator, denominator = value
        return numerator / denominator if denominator else 0.0
    return float(value)


def _square(x: float | None, y: float | None) -> float | None:
    """One pixel size for square pixels (a missing Y counts as X's); ``None`` otherwise."""
    if x is None or not math.isfinite(x) or x <= 0:
        return None
    if y is not None and not math.isclose(x, y, rel_tol=0.01):
        return None
    return float(x)
