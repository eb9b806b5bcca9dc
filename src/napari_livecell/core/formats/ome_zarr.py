"""OME-Zarr labels: ``labels/cells`` written frame by frame (or tile by tile), and read back lazily.

The labels group follows NGFF (0.4 on Zarr v2, 0.5 on Zarr v3): a multiscale
pyramid whose levels halve ``y`` and ``x`` by nearest neighbour (each level
keeps every other pixel of the one above, so ids are never blended), the
image's axes and scale, and ``image-label`` metadata with its colours. The
arrays are written as labels arrive, one frame or one tile at a time, so
memory never scales with the stack or the frame; ome-zarr's own functions
write the metadata once the last frame is in (``write_multiscales_metadata``,
``write_label_metadata``).

A store of its own (``--out/<stem>.ome.zarr``, napari's Save Layers) is
built in a hidden folder beside its target and renamed into place when
closed; labels inside an existing image's store are built in a hidden group
beside ``labels/cells`` and renamed the same way. A failed run leaves what
was there before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.ngff import ImageReadError, OmeZarrImage, is_ome_zarr, open_ome_zarr

LABELS_NAME = "cells"
LABEL_DTYPE = np.uint32  # ids decided up front: a frame's ids are never known before it is done
PYRAMID_TOP = 256  # levels are added until the smallest one's longer side is at most this
CHUNK_SIDE = 1024  # chunks of (1, ..., 1024, 1024): 4 MiB of uint32 each, before compression
# background transparent; cells take the viewer's own colours (one entry per id would make the
# metadata grow with the cell count: 330,000 entries at 20000 x 20000)
LABEL_COLORS = [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
SPATIAL_UNIT = "micrometer"


class OmeZarrError(ValueError):
    """An OME-Zarr store that cannot be written or read as labels, with the reason."""


def pyramid_shapes(height: int, width: int, top: int = PYRAMID_TOP) -> list[tuple[int, int]]:
    """``(H, W)`` of each level: halved until the longer side is at most ``top``; 2 levels at least."""
    shapes = [(height, width)]
    while (max(shapes[-1]) > top or len(shapes) < 2) and min(shapes[-1]) > 1:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def require_ome_zarr() -> None:
    """Refuse in one line, before any work, to write labels on an install without the ``ome-zarr`` extra.

    Raises
    ------
    OmeZarrError
        ``ome-zarr`` (its writer makes the NGFF metadata) is not installed.
    """
    try:
        import ome_zarr  # noqa: F401
    except ImportError:
        raise OmeZarrError(
            "writing OME-Zarr labels needs the ome-zarr package: pip install 'napari-livecell[ome-zarr]' "
            "(reading OME-Zarr images needs nothing more)"
        ) from None


def _store_format(version: str):
    from ome_zarr.format import FormatV04, FormatV05

    return FormatV04() if version == "0.4" else FormatV05()


def _replace_folder(built: Path, target: Path) -> None:
    """Move the folder ``built`` to ``target``; an existing ``target`` is removed only once it is replaced."""
    if not target.exists():
        os.replace(built, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(built, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _merge(
    array: Any, index: tuple[int, ...], top: int, left: int, block: np.ndarray, covered: np.ndarray
) -> None:
    """Write ``block``'s ``covered`` pixels at ``(top, left)``, chunk by chunk: whole chunks as they are."""
    chunk_rows, chunk_cols = (int(n) for n in array.chunks[-2:])
    height, width = array.shape[-2:]
    for row in range(top // chunk_rows * chunk_rows, top + block.shape[0], chunk_rows):
        for col in range(left // chunk_cols * chunk_cols, left + block.shape[1], chunk_cols):
            r0, r1 = max(row, top), min(row + chunk_rows, top + block.shape[0], height)
            c0, c1 = max(col, left), min(col + chunk_cols, left + block.shape[1], width)
            inside = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
            mask = covered[inside]
            if not mask.any():
                continue
            window = (*index, slice(r0, r1), slice(c0, c1))
            if mask.all():
                array[window] = block[inside]
            else:  # a chunk part-covered: merged with what it holds
                merged = np.asarray(array[window])
                np.copyto(merged, block[inside], where=mask)
                array[window] = merged


class OmeZarrLabelSink:
    """Labels written into an NGFF ``labels/cells`` group as they come; see :func:`open_label_sink`.

    Follows the label-sink protocol of ``segment``'s streaming loop:
    :meth:`write_frame` for whole frames or :meth:`write_tile` for parts of
    one, :meth:`checkpoint` after each finished frame, then :meth:`close`
    (or :meth:`discard`). As a context manager it closes on success and
    discards on an error.

    The labels grow in a hidden folder with a fixed name (``.<store>.partial``
    beside a store of its own, ``labels/.cells.partial`` inside an image's
    store), so that a rerun given the last checkpoint (``resume``) goes on
    where the run stopped: a chunk is written whole or not at all, and a
    frame cut short is written again.
    """

    def __init__(
        self,
        target: Path,
        axes: str,
        shape: tuple[int, ...],
        scale: dict[str, float],
        units: dict[str, str],
        version: str,
        inside: bool,
        top: int = PYRAMID_TOP,
        dtype: Any = LABEL_DTYPE,
        resume: dict | None = None,
    ) -> None:
        import zarr

        self.target = target
        self.axes = axes
        self.shape = shape
        self.inside = inside
        self.version = version
        self.dtype = np.dtype(dtype)
        self._fmt = _store_format(version)
        self._scale = scale
        self._units = units
        self._closed = False
        self._done = 0  # frames finished, in C order: what a checkpoint records
        self._last: tuple[int, ...] | None = None
        # tiles gathered into whole chunk rows before they are written (see write_tile)
        self._band: np.ndarray | None = None
        self._covered: np.ndarray | None = None
        self._band_index: tuple[int, ...] = ()
        self._band_top = 0
        leading = shape[:-2]
        self.leading = leading
        self.level_shapes = [leading + level for level in pyramid_shapes(shape[-2], shape[-1], top=top)]
        zarr_format = self._fmt.zarr_format
        if inside:  # a hidden group beside labels/cells, renamed when done
            self._build_path = target / "labels" / f".{LABELS_NAME}.partial"
        else:
            self._build_path = target.with_name(f".{target.name}.partial")
        if resume and resume.get("frames", 0) > 0 and self._build_path.is_dir():
            self._reopen(int(resume["frames"]))
            return
        shutil.rmtree(self._build_path, ignore_errors=True)
        if inside:
            labels = zarr.open_group(str(target / "labels"), mode="a", zarr_format=zarr_format)
            self._root = None
            cells = labels.create_group(self._build_path.name)
        else:
            self._root = zarr.open_group(str(self._build_path), mode="w", zarr_format=zarr_format)
            cells = self._root.require_group("labels").create_group(LABELS_NAME)
        self._cells_group: Any = cells
        dimension_names = list(axes) if zarr_format == 3 else None  # Zarr v2 has none
        self._arrays: list[Any] = [
            cells.create_array(
                str(level),
                shape=level_shape,
                chunks=(1,) * len(leading) + tuple(min(n, CHUNK_SIDE) for n in level_shape[-2:]),
                dtype=self.dtype,
                fill_value=0,
                dimension_names=dimension_names,
            )
            for level, level_shape in enumerate(self.level_shapes)
        ]

    def _reopen(self, frames: int) -> None:
        """Go on with the partial labels of an interrupted run, after its ``frames`` finished frames."""
        import zarr

        if self.inside:
            self._root = None
            self._cells_group = zarr.open_group(str(self._build_path), mode="r+")
        else:
            self._root = zarr.open_group(str(self._build_path), mode="r+")
            self._cells_group = zarr.open_group(str(self._build_path / "labels" / LABELS_NAME), mode="r+")
        self._arrays = [self._cells_group[str(level)] for level in range(len(self.level_shapes))]
        shapes = [tuple(array.shape) for array in self._arrays]
        if shapes != self.level_shapes or self._arrays[0].dtype != self.dtype:
            raise OmeZarrError(
                f"{self._build_path} holds labels of shape {shapes[0]}, not {self.shape}: start over"
            )
        self._done = frames

    @property
    def frames_done(self) -> int:
        """Frames finished (whole, in C order), counting those of the run this one resumes."""
        return self._done

    @property
    def n_levels(self) -> int:
        """How many resolutions the pyramid holds."""
        return len(self._arrays)

    def _check_index(self, index: Sequence[int]) -> tuple[int, ...]:
        index = tuple(int(i) for i in index)
        if len(index) != len(self.leading) or any(not 0 <= i < n for i, n in zip(index, self.leading)):
            raise OmeZarrError(f"frame index {index} is outside the labels' frames {self.leading}")
        return index

    def write_frame(self, index: Sequence[int], labels: np.ndarray) -> None:
        """Write one whole frame's ``(H, W)`` labels at ``index`` (``()`` for a single image)."""
        self.write_tile(index, 0, 0, labels)

    def write_tile(self, index: Sequence[int], row0: int, col0: int, labels: np.ndarray) -> None:
        """Write a part of a frame: ``labels`` with its top-left pixel at ``(row0, col0)``.

        Each level gets the tile's pixels that fall on its grid (every
        ``2**level``-th row and column of the frame), so tiles give the same
        pyramid as whole frames. Tiles are gathered in a band of whole chunk
        rows (two at most for tiles up to a chunk high: 160 MiB at 20000 px
        wide) and written when a tile starts below it, so that each chunk is
        written once, whole, where tiles come in row-major order. Tiles in
        another order are right too, only slower: a chunk part-covered by a
        band is read and merged. Two processes must not write tiles of the
        same chunk at the same time.
        """
        index = self._check_index(index)
        if self._last is not None and index != self._last:
            self._done += 1  # frames come in C order: the one before is finished
        self._last = index
        labels = np.asarray(labels)
        height, width = self.shape[-2:]
        if (
            labels.ndim != 2
            or row0 < 0
            or col0 < 0
            or row0 + labels.shape[0] > height
            or (col0 + labels.shape[1] > width)
        ):
            raise OmeZarrError(
                f"labels of shape {labels.shape} at ({row0}, {col0}) do not fit frames of {height} x {width}"
            )
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) > np.iinfo(self.dtype).max):
            raise OmeZarrError(f"label ids must lie between 0 and {np.iinfo(self.dtype).max} ({self.dtype})")
        if labels.shape == (height, width):  # a whole frame: every chunk of every level written whole
            self._flush()
            self._write_levels(index, 0, 0, labels, None)
        else:
            self._gather(index, row0, col0, labels)

    def _gather(self, index: tuple[int, ...], row0: int, col0: int, labels: np.ndarray) -> None:
        """Put a tile into the band of chunk rows; write the rows above it first (they are complete)."""
        height, width = self.shape[-2:]
        rows = int(self._arrays[0].chunks[-2])
        if self._band is not None and (index != self._band_index or row0 < self._band_top):
            self._flush()  # another frame, or tiles out of order
        if self._band is None or self._covered is None:
            self._band_index, self._band_top = index, row0 // rows * rows
            self._band, self._covered = np.zeros((0, width), self.dtype), np.zeros((0, width), bool)
        if row0 // rows * rows > self._band_top:
            self._flush(row0 // rows * rows)
        band, covered = self._band, self._covered
        assert band is not None and covered is not None
        needed = row0 + labels.shape[0] - self._band_top
        if needed > band.shape[0]:
            grown = min(-(-needed // rows) * rows, height - self._band_top)
            larger, larger_covered = np.zeros((grown, width), self.dtype), np.zeros((grown, width), bool)
            larger[: band.shape[0]], larger_covered[: band.shape[0]] = band, covered
            band, covered = self._band, self._covered = larger, larger_covered
        top = row0 - self._band_top
        window = (slice(top, top + labels.shape[0]), slice(col0, col0 + labels.shape[1]))
        band[window] = labels
        covered[window] = True

    def _flush(self, until: int | None = None) -> None:
        """Write the band's rows above frame row ``until`` (all of it when ``None``)."""
        band, covered = self._band, self._covered
        if band is None or covered is None:
            return
        stop = band.shape[0] if until is None else until - self._band_top
        if stop > 0:
            self._write_levels(self._band_index, self._band_top, 0, band[:stop], covered[:stop])
        if until is None:
            self._band = self._covered = None
        else:
            self._band, self._covered = band[stop:].copy(), covered[stop:].copy()
            self._band_top = until

    def _write_levels(
        self, index: tuple[int, ...], row0: int, col0: int, labels: np.ndarray, covered: np.ndarray | None
    ) -> None:
        """Write ``labels`` at ``(row0, col0)`` of frame ``index`` into every level (``covered`` pixels)."""
        for level, array in enumerate(self._arrays):
            step = 2**level
            first_row, first_col = (-row0) % step, (-col0) % step
            part = labels[first_row::step, first_col::step]
            if part.size == 0:
                continue
            top, left = (row0 + first_row) // step, (col0 + first_col) // step
            if covered is None:
                window = (slice(top, top + part.shape[0]), slice(left, left + part.shape[1]))
                array[index + window] = part.astype(self.dtype, copy=False)
            else:
                _merge(array, index, top, left, part, covered[first_row::step, first_col::step])

    def close(self) -> Path:
        """Write the NGFF metadata (ome-zarr's writers) and move the labels into place.

        Returns
        -------
        Path
            The store's folder.
        """
        if self._closed:
            return self.target
        self._flush()
        import zarr
        from ome_zarr.writer import (
            add_metadata,
            get_metadata,
            write_label_metadata,
            write_multiscales_metadata,
        )

        scale = [self._scale.get(axis, 1.0) for axis in self.axes]
        datasets = []
        for level in range(self.n_levels):
            factor = [2.0**level if axis in "yx" else 1.0 for axis in self.axes]
            level_scale = [s * f for s, f in zip(scale, factor)]
            transforms = [{"type": "scale", "scale": level_scale}]
            datasets.append({"path": str(level), "coordinateTransformations": transforms})
        write_multiscales_metadata(
            self._cells_group,
            datasets,
            fmt=self._fmt,
            axes=list(self.axes),
            axes_units={axis: unit for axis, unit in self._units.items() if axis in self.axes},
            name=LABELS_NAME,
        )
        if self.inside:
            cells = self.target / "labels" / LABELS_NAME
            _replace_folder(self._build_path, cells)
            labels = zarr.open_group(str(self.target / "labels"), mode="a", zarr_format=self._fmt.zarr_format)
            names = [name for name in get_metadata(labels).get("labels", []) if name != LABELS_NAME]
            add_metadata(labels, {"labels": names}, fmt=self._fmt)
            write_label_metadata(
                labels, LABELS_NAME, colors=LABEL_COLORS, fmt=self._fmt, source={"image": "../../"}
            )
        else:
            assert self._root is not None
            write_label_metadata(self._root["labels"], LABELS_NAME, colors=LABEL_COLORS, fmt=self._fmt)
            _replace_folder(self._build_path, self.target)
        self._closed = True
        return self.target

    def checkpoint(self) -> dict:
        """The state to resume from: the frames finished so far (the frame last written counts).

        The band of gathered tiles is written first; every chunk is then in
        its own file.
        """
        self._flush()
        return {"frames": self._done + (self._last is not None), "format": "ome-zarr"}

    def discard(self) -> None:
        """Remove what was built; the target is left as it was."""
        self._closed = True
        self._band = self._covered = None
        shutil.rmtree(self._build_path, ignore_errors=True)

    abort = discard

    def __enter__(self) -> OmeZarrLabelSink:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def labels_axes(n_dims: int) -> str:
    """NGFF axes for labels of ``n_dims`` dimensions without metadata: frames are ``t``, then ``z``."""
    axes = {2: "yx", 3: "tyx", 4: "tzyx"}.get(n_dims)
    if axes is None:
        raise OmeZarrError(f"labels of {n_dims} dimensions have no OME-Zarr axes (2 to 4: [t, z,] y, x)")
    return axes


def open_label_sink(
    target: str | os.PathLike,
    shape: Sequence[int],
    axes: str | None = None,
    pixel_size_um: float | None = None,
    *,
    image: OmeZarrImage | None = None,
    version: str | None = None,
    top: int = PYRAMID_TOP,
    dtype: Any = LABEL_DTYPE,
    resume: dict | None = None,
) -> OmeZarrLabelSink:
    """A sink for labels of ``shape`` into ``target``'s ``labels/cells``.

    Parameters
    ----------
    target : path
        An existing OME-Zarr image store (the labels go inside it, next to
        any other labels), or the folder of a new store of its own
        (``<stem>.ome.zarr``; one that exists is replaced when the sink closes,
        a folder that is not a Zarr store is refused).
    shape : sequence of int
        ``(*frames, H, W)``: the image's layout without its channels.
    axes : str, optional
        The axes of ``shape`` (``"tyx"``...); from ``image`` or the number
        of dimensions (``t``, then ``z``) when omitted.
    pixel_size_um : float, optional
        Micrometres per pixel, for ``y`` and ``x`` (over ``image``'s own).
    image : OmeZarrImage, optional
        The image the labels belong to: its axes, scale and units, and the
        store's NGFF version.
    version : str, optional
        ``"0.4"`` (Zarr v2) or ``"0.5"`` (Zarr v3, the default).
    top : int
        Levels are added until the smallest one's longer side is at most this.
    dtype : numpy.dtype
        The ids' dtype, decided up front (uint32 unless told).
    resume : dict, optional
        An interrupted run's last :meth:`OmeZarrLabelSink.checkpoint`: its
        partial labels are kept and the run goes on after them.

    Raises
    ------
    OmeZarrError
        Axes that do not match the shape, or a target that is not a store.
    """
    require_ome_zarr()
    target = Path(target)
    shape = tuple(int(n) for n in shape)
    if image is not None:
        axes = axes or image.axes.replace("c", "")
        scale = {axis: image.scale.get(axis, 1.0) for axis in axes}
        units = {axis: unit for axis, unit in image.units.items() if axis in axes}
        version = version or image.version
    else:
        axes = axes or labels_axes(len(shape))
        scale = {axis: 1.0 for axis in axes}
        units = {}
    if pixel_size_um is not None:  # given, or read from the image: in micrometres either way
        scale.update(y=float(pixel_size_um), x=float(pixel_size_um))
        units.update(y=SPATIAL_UNIT, x=SPATIAL_UNIT)
    if len(axes) != len(shape) or axes[-2:] != "yx" or len(set(axes)) != len(axes):
        raise OmeZarrError(f"axes {axes!r} do not describe labels of shape {shape} (frames, then y, x)")
    if version not in (None, "0.4", "0.5"):
        raise OmeZarrError(f"OME-Zarr {version} cannot be written (0.4 or 0.5)")
    inside = False
    if target.exists():
        if not target.is_dir() or not is_ome_zarr(target):
            raise OmeZarrError(f"{target} exists and is not an OME-Zarr store: it is left as it is")
        try:
            stored = open_ome_zarr(target)
        except ImageReadError:
            stored = None  # an earlier labels store of our own: replaced
        if stored is not None:
            inside = True
            image_shape = tuple(n for axis, n in zip(stored.axes, stored.data.shape) if axis != "c")
            if image_shape != shape:
                raise OmeZarrError(
                    f"labels of shape {shape} do not fit the image in {target.name} (shape {image_shape})"
                )
            version = stored.version
    return OmeZarrLabelSink(target, axes, shape, scale, units, version or "0.5", inside, top, dtype, resume)


def ome_zarr_label_sink(
    target: str | os.PathLike,
    layout: Any,
    resume: dict | None = None,
    *,
    image: OmeZarrImage | None = None,
    pixel_size_um: float | None = None,
) -> OmeZarrLabelSink:
    """The OME-Zarr label sink for ``segment``'s streaming loop: ``layout`` gives shape and id dtype.

    ``layout`` is the loop's ``LabelLayout`` (``leading``, ``frame_shape``,
    ``dtype``); ``resume`` its last checkpoint. See :func:`open_label_sink`.
    """
    shape = (*tuple(layout.leading), *tuple(layout.frame_shape))
    return open_label_sink(target, shape, None, pixel_size_um, image=image, dtype=layout.dtype, resume=resume)


def labels_store_path(out: str | os.PathLike, stem: str) -> Path:
    """Where ``segment --out-format ome-zarr`` writes an input's labels: ``<out>/<stem>.ome.zarr``."""
    return Path(out) / f"{stem}.ome.zarr"


def cells_group(path: str | os.PathLike) -> Path:
    """The ``labels/cells`` group of a store (or ``path`` itself when it is a labels group)."""
    path = Path(path)
    for candidate in (path / "labels" / LABELS_NAME, path):
        if candidate.is_dir() and is_ome_zarr(candidate):
            try:
                from napari_livecell.core.ngff import ome_zarr_attributes

                if "image-label" in ome_zarr_attributes(candidate)[0]:
                    return candidate
            except ImageReadError:
                continue
    raise OmeZarrError(f"{path.name} holds no OME-Zarr labels (labels/{LABELS_NAME})")


def has_labels(path: str | os.PathLike) -> bool:
    """Whether ``path`` is, or holds, an OME-Zarr ``labels/cells`` group."""
    try:
        cells_group(path)
    except OmeZarrError:
        return False
    return True


def read_labels(path: str | os.PathLike) -> OmeZarrImage:
    """The ``labels/cells`` of a store, read lazily as :func:`~napari_livecell.core.ngff.open_ome_zarr` reads.

    Raises
    ------
    OmeZarrError
        No labels group; :class:`ImageReadError` for broken metadata.
    """
    labels = open_ome_zarr(cells_group(path))
    if labels.data.dtype.kind not in "iu":
        raise OmeZarrError(f"{Path(path).name}: labels of {labels.data.dtype} are not integer ids")
    return labels


def write_label_stack(
    target: str | os.PathLike,
    labels: Any,
    axes: str | None = None,
    pixel_size_um: float | None = None,
    *,
    units: dict[str, str] | None = None,
    scale: dict[str, float] | None = None,
) -> Path:
    """Write a label image or stack (numpy, or dask read frame by frame) as OME-Zarr labels.

    ``scale`` and ``units`` (per axis) override ``pixel_size_um``.
    """
    from napari_livecell.core.images import is_lazy, iter_lazy_frames

    shape = tuple(labels.shape)
    sink = open_label_sink(target, shape, axes, pixel_size_um)
    if scale is not None:
        sink._scale.update({axis: float(value) for axis, value in scale.items() if axis in sink.axes})
    if units is not None:
        sink._units = {axis: unit for axis, unit in units.items() if axis in sink.axes}
    leading = shape[:-2]
    with sink:
        if is_lazy(labels) and leading:
            for index, frame in iter_lazy_frames(labels, leading):
                sink.write_frame(index, frame)
        else:
            for index in np.ndindex(*leading) if leading else [()]:
                sink.write_frame(index, np.asarray(labels[index] if index else labels))
    return sink.target
