"""A tiled frame segmented and written band by band: the cells of one whole label image, never held whole.

:func:`.predict.segment_frame_steps` paints every tile's owned instances into
one label image of the frame, then keeps each cell's largest piece and
numbers the cells. :class:`BandPainter` does the same in a buffer two tile
rows high that slides down the frame: once no later tile reaches a tile
row's window, that row's cells are final (their largest piece kept, their
ids given in the same order), and once every cell touching a band of rows
is final, the band is handed on and dropped. The same pixels decide the same
overlaps as in the whole image (same ownership rule, :mod:`.tiling`), so the
cells, their ids and their annotations are those of the whole-image path;
memory is the frame, two tile rows of labels and one tile's masks.

The tiles' network passes come from anywhere (:func:`tile_instances`): this
process, or Dask workers (:func:`iter_tile_instances`), as long as they are painted
in the grid's order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .masks import MaskPainter, RawInstances

BLANK_BAND_PIXELS = 1 << 24  # a blank frame's zero labels are handed on in bands of about this many


@dataclass
class TileInstances:
    """One tile's network output, ready to paint: what :meth:`MaskPainter.add_instances` takes."""

    raw: RawInstances
    window: tuple[int, int]
    origin: tuple[int, int]
    within: tuple[int, int]
    selected: np.ndarray


def tile_plan(shape: tuple[int, int], model, settings) -> list:
    """The tiles :func:`.predict.segment_frame_steps` cuts a frame of ``shape`` into (row-major)."""
    from .predict import model_input_shape
    from .tiling import DEFAULT_OVERLAP, tile_grid

    window = model_input_shape(model) or (settings.imgsz, settings.imgsz)
    overlap = min(DEFAULT_OVERLAP, min(window) // 4)
    return tile_grid(shape, window, overlap)


def needs_tiles(shape: tuple[int, int], model, settings, tile: bool | None) -> bool:
    """Whether :func:`.predict.segment_frame_steps` tiles a frame of ``shape`` (``tile``: the setting)."""
    from .predict import model_input_shape

    if tile is not None:
        return tile
    window = model_input_shape(model) or (settings.imgsz, settings.imgsz)
    return shape[0] > window[0] or shape[1] > window[1]


def tile_instances(piece: np.ndarray, part, model, settings) -> TileInstances:
    """Run the network on one tile (its 8-bit network input, unpadded) as the whole-frame path does."""
    from dataclasses import replace

    from .predict import MIN_NETWORK_SIDE, STRIDE, _pad_with_background, model_input_shape, predict_raw

    fixed = model_input_shape(model)
    if fixed:
        target, run = fixed, settings
    else:
        least = min(MIN_NETWORK_SIDE, STRIDE * math.ceil(settings.imgsz / STRIDE))
        target = tuple(max(least, STRIDE * math.ceil(side / STRIDE)) for side in piece.shape[:2])
        run = replace(settings, imgsz=max(target))
    padded = _pad_with_background(piece, target)
    raw = predict_raw(padded, model, run)
    origin = (part.row.start, part.col.start)
    selected = np.array(
        [part.owns(origin[0] + (y1 + y2) / 2, origin[1] + (x1 + x2) / 2) for x1, y1, x2, y2 in raw.boxes],
        dtype=bool,
    )
    return TileInstances(raw, padded.shape[:2], origin, piece.shape[:2], selected)


class BandPainter:
    """Paints a tiled frame's tiles in grid order and hands on finished bands of final labels.

    Parameters
    ----------
    shape : tuple of int
        The frame's ``(height, width)``.
    parts : list of Tile
        Its tiles, row-major (:func:`tile_plan`).
    on_band : callable
        ``on_band(row0, labels)``: rows ``row0..`` of the final label image
        (int32, ids ``1..K`` in the whole-image path's order), top to bottom,
        each row once.
    on_cells : callable
        ``on_cells(cells)``: the newly final cells, in id order, as
        ``(id, corner, mask in its box, area, score, class)``.
    """

    def __init__(self, shape: tuple[int, int], parts: list, on_band: Callable, on_cells: Callable) -> None:
        self.height, self.width = shape
        starts = sorted({part.row.start for part in parts})
        self.rows = [(start, max(p.row.stop for p in parts if p.row.start == start)) for start in starts]
        tallest = max(stop - start for start, stop in self.rows)
        self.painter = MaskPainter((min(self.height, 2 * tallest), self.width))
        self.painter.labels  # noqa: B018  (zeroed now: rows are cleared as the buffer slides)
        self.top = 0  # the frame row at buffer row 0
        self.emitted = 0  # rows handed on so far
        self.id_ranges: list[tuple[int, int]] = []  # painter ids of each painted tile row
        self.final_rows = 0  # tile rows whose cells are final
        self.lookup = np.zeros(1024, np.int32)  # painter id -> final id
        self.n_cells = 0
        self.on_band, self.on_cells = on_band, on_cells

    def paint(self, tile: TileInstances) -> None:
        """Paint one tile (tiles in grid order)."""
        bottom = tile.origin[0] + tile.window[0]
        if bottom - self.top > self.painter.labels.shape[0]:
            self._slide()
        origin = (tile.origin[0] - self.top, tile.origin[1])
        self.painter.add_instances(tile.raw, tile.window, origin, tile.within, tile.selected)

    def row_done(self) -> None:
        """The tiles of the next tile row are all painted: finish what no later tile can change."""
        first = self.id_ranges[-1][1] if self.id_ranges else 1
        self.id_ranges.append((first, self.painter._count + 1))
        painted = len(self.id_ranges)
        next_start = self.rows[painted][0] if painted < len(self.rows) else math.inf
        while self.final_rows < painted and self.rows[self.final_rows][1] <= next_start:
            self._finalize(*self.id_ranges[self.final_rows])
            self.final_rows += 1
        pending = self.rows[self.final_rows][0] if self.final_rows < len(self.rows) else math.inf
        self._emit(int(min(next_start, pending, self.height)))

    def _slide(self) -> None:
        """Drop the rows handed on from the buffer's top; shift the live cells' boxes with them."""
        shift = self.emitted - self.top
        if shift <= 0:
            raise RuntimeError("the band buffer is too small for the tile grid")
        labels = self.painter.labels
        labels[:-shift] = labels[shift:]
        labels[-shift:] = 0
        live = self.id_ranges[self.final_rows][0] if self.final_rows < len(self.id_ranges) else 1
        boxes = self.painter._painted[live : self.painter._count + 1]
        boxes[boxes[:, 0] >= 0, :2] -= shift
        self.top = self.emitted

    def _finalize(self, first: int, stop: int) -> None:
        """Keep the largest piece of cells ``first..stop - 1``; number and hand on those left."""
        from .masks import compiled

        if stop <= first:
            return
        present = np.zeros(stop, np.bool_)
        boxes = np.full((stop, 4), -1, np.int64)
        areas = np.zeros(stop, np.int64)
        labels = self.painter.labels
        compiled().keep_largest_pieces(labels, self.painter._painted, first, stop, present, boxes, areas)
        kept = first + np.flatnonzero(present[first:stop])
        if len(self.lookup) < stop:
            self.lookup = np.concatenate([self.lookup, np.zeros(2 * stop - len(self.lookup), np.int32)])
        self.lookup[kept] = np.arange(self.n_cells + 1, self.n_cells + len(kept) + 1, dtype=np.int32)
        cells = []
        for painter_id in kept.tolist():
            r0, r1, c0, c1 = boxes[painter_id].tolist()
            local = labels[r0:r1, c0:c1] == painter_id
            score = float(self.painter._scores[painter_id])
            cls = int(self.painter._classes[painter_id])
            cells.append(
                (int(self.lookup[painter_id]), (r0 + self.top, c0), local, int(areas[painter_id]), score, cls)
            )
        self.n_cells += len(kept)
        self.on_cells(cells)

    def _emit(self, upto: int) -> None:
        if upto <= self.emitted:
            return
        band = self.painter.labels[self.emitted - self.top : upto - self.top]
        self.on_band(self.emitted, self.lookup[band])
        self.emitted = upto


def segment_frame_bands(
    frame: np.ndarray,
    model,
    settings,
    polarity,
    on_band: Callable,
    on_cells: Callable,
    instances: Callable[[Iterable], Iterator[TileInstances]] | None = None,
) -> Generator[tuple[int, int], None, int]:
    """Segment a tiled frame band by band (see :class:`BandPainter`); yield ``(tiles done, tiles)``.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3|4)``, any real dtype.
    model : LoadedModel
        The model (read for its input shape and classes; the tiles may run elsewhere).
    settings : PredictSettings
        Thresholds and network input size.
    polarity : Polarity
        The frame's polarity, decided already (:meth:`.recipe.FrameRecipe.polarity`).
    on_band, on_cells : callable
        As for :class:`BandPainter`.
    instances : callable, optional
        ``instances(jobs)``: each ``(network input, tile)`` job's
        :class:`TileInstances`, in order (Dask tasks, for one); by default
        :func:`tile_instances` here.

    Returns
    -------
    int
        The frame's number of cells.
    """
    from .frame_input import invert, uint8_scale
    from .predict import _converts_to_one_value

    frame = np.asarray(frame)
    shape = frame.shape[:2]
    scale = uint8_scale(frame)
    parts = tile_plan(shape, model, settings)
    if _converts_to_one_value(frame, scale):  # a blank frame holds no cells (as the whole-frame path)
        yield 1, 1
        rows = max(1, BLANK_BAND_PIXELS // shape[1])
        for row0 in range(0, shape[0], rows):
            on_band(row0, np.zeros((min(rows, shape[0] - row0), shape[1]), np.int32))
        return 0

    def jobs() -> Iterator[tuple[np.ndarray, Any]]:
        for part in parts:
            window = frame[part.row, part.col]
            piece = np.ascontiguousarray(scale.apply(window)) if window.ndim == 2 else scale.bgr(window)
            yield (invert(piece) if polarity.inverted else piece), part

    if instances is None:

        def instances(items: Iterable) -> Iterator[TileInstances]:
            for piece, part in items:
                yield tile_instances(piece, part, model, settings)

    painter = BandPainter(shape, parts, on_band, on_cells)
    row_ends = {
        index
        for index, part in enumerate(parts)
        if index + 1 == len(parts) or parts[index + 1].row != part.row
    }
    for index, tile in enumerate(instances(jobs())):
        painter.paint(tile)
        if index in row_ends:
            painter.row_done()
        yield index + 1, len(parts)
    return painter.n_cells


# a huge frame's tiles as tasks ------------------------------------------------------------------


def tile_task(piece: np.ndarray, part, weights: str | None, settings, torch_threads: int | None = None):
    """Runs on a worker: one tile's network pass, its cached model (:func:`tile_instances`)."""
    from napari_livecell.core.models.model import load_model

    model = load_model(weights, device="cpu")
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    return tile_instances(piece, part, model, settings)


def iter_tile_instances(
    jobs: Iterable,
    client,
    weights: str | None,
    settings,
    torch_threads: int | None = None,
    in_flight: int | None = None,
) -> Iterator:
    """A tiled frame's tiles run as Dask tasks; their instances yielded in the grid's order.

    ``jobs``: ``(network input, tile)`` pairs (:func:`segment_frame_bands`),
    submitted as they are read, at most ``in_flight`` (two per worker by
    default) not yet yielded: the client paints each tile's owned cells into
    the frame's bands as they come back (the same ownership rule and the same
    cells as a local run), and never holds more than those tiles' outputs.
    """
    from collections import deque

    in_flight = in_flight or max(2, 2 * len(client.scheduler_info().get("workers", {})))
    pending: deque = deque()
    try:
        for piece, part in jobs:
            pending.append(
                client.submit(tile_task, piece, part, weights, settings, torch_threads, pure=False, retries=3)
            )
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pending:  # stopped early: do not leave the cluster working for nobody
            try:
                client.cancel(list(pending))
            except RuntimeError:
                pass


@contextlib.contextmanager
def band_segmenter(backend, settings, pixel_size: float | None, pixel_size_source: str, frame_shape: tuple):
    """Yield ``segment_bands(frame, on_band, on_cells)`` for a run's frames, or ``None`` where they need none.

    ``None``: the frames fit the network input (or ``--tile off``), are
    resampled to the model's pixel size (segmented whole, then mapped back),
    or run on a service. Otherwise each frame is segmented band by band
    (:func:`segment_frame_bands`), its tiles here or, with a Dask scheduler,
    as tasks on the cluster (:func:`.distributed.iter_tile_instances`); the
    generator returns ``(cells, polarity, resampling)``.
    """
    from napari_livecell.core.models.model import load_model

    from .recipe import FrameRecipe
    from .remote import is_service_url

    if is_service_url(backend.weights):
        yield None
        return
    if backend.scheduler:  # the model as the workers load it: the same input shape and classes
        model = load_model(backend.weights, device="cpu")
    else:
        model = load_model(backend.weights, device=backend.device, runtime=backend.runtime)
    recipe = FrameRecipe.plan(model, settings, pixel_size, pixel_size_source, tile=backend.tile)
    if recipe.resampling.applied or not needs_tiles(frame_shape, model, settings, backend.tile):
        yield None
        return
    client = None
    instances = None
    if backend.scheduler:
        from .distributed import connect

        # not the default: the frames are read here, not by the cluster
        client = connect(backend.scheduler, set_as_default=False)

        def instances(jobs: Iterable) -> Iterator[TileInstances]:
            return iter_tile_instances(jobs, client, backend.weights, settings, backend.threads)

    def segment_bands(frame: Any, on_band: Callable, on_cells: Callable) -> Generator[Any, Any, tuple]:
        frame = np.asarray(frame)
        polarity = recipe.polarity(frame)
        cells = yield from segment_frame_bands(frame, model, settings, polarity, on_band, on_cells, instances)
        return cells, polarity, recipe.resampling

    try:
        yield segment_bands
    finally:
        if client is not None:
            client.close()
