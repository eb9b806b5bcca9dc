"""The Segment cells widget's worker-thread side, without Qt.

Input checks, and the generator that the thread worker runs: it follows
:func:`napari_livecell.core.inference.run.iter_segment` (a local model, a service or a
Dask cluster) and turns its events into progress, frames that fill the
result layer in, and the finished result layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_livecell.core.segmentation import offset_ids

MAX_SPATIAL_STACK_AXES = 4  # T, Z, Y, X (+ colour)
TILE_STEPS = 100  # progress units per frame, so that tiles of a large frame show
# progress bar and status moves at most this often: each costs the GUI thread a repaint of the
# dock, which at 10+ frames a second took time (and the GIL) from the run
PROGRESS_INTERVAL_S = 0.1


def channel_choices(layer: Any) -> list[tuple[str, Any]]:
    """Channel dropdown entries for an image layer: empty when it has no channel axis to choose.

    Shown for channel-last data napari does not show as RGB (``(H, W, 2)``...)
    and for a short leading axis (``(C, H, W)``, up to 4: longer ones are
    more likely frames).
    """
    from napari_livecell.core.images import channel_axis

    if layer is None:
        return []
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    shape = tuple(data.shape)
    axis = channel_axis(shape)
    if axis is None or (axis == -1 and getattr(layer, "rgb", False)) or (axis == 0 and shape[0] > 4):
        return []
    return [("all (as frames)", None)] + [(f"channel {c}", (axis, c)) for c in range(shape[axis])]


def choose_channel(layer: Any, data: Any, choice: tuple[int, int] | None) -> tuple[Any, tuple]:
    """The layer's data reduced to one channel, and the layer's scale without that axis."""
    from napari_livecell.core.images import select_channel

    scale, translate = tuple(layer.scale), tuple(layer.translate)
    if choice is None:
        return data, (scale, translate)
    axis, channel = choice
    if axis == 0:
        return select_channel(data, channel, 0), (scale[1:], translate[1:])
    # a channel-last layer that napari does not show as RGB spreads its channels over a spatial axis
    keep = slice(None, -1)
    return select_channel(data, channel, -1), (scale[keep], translate[keep])


def check_image_layer(layer: Any) -> tuple[bool, tuple[int, ...]]:
    """Validate an image layer; return (rgb, leading shape) or raise ValueError."""
    if layer is None:
        raise ValueError("select an image layer first (File > Open, or File > Open Sample)")
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    rgb = bool(getattr(layer, "rgb", False))
    spatial_axes = data.ndim - (1 if rgb else 0)
    if spatial_axes > MAX_SPATIAL_STACK_AXES:
        kind = "RGB " if rgb else ""
        raise ValueError(
            f"{layer.name!r} is a {spatial_axes}-D {kind}stack; up to "
            f"{MAX_SPATIAL_STACK_AXES}-D (T, Z, Y, X) is supported"
        )
    if spatial_axes < 2:
        raise ValueError(f"{layer.name!r} is not a 2-D image (shape {data.shape})")
    return rgb, tuple(data.shape[: spatial_axes - 2])


@dataclass
class FrameReady:
    """A finished frame of a stack, already written into the run's label stack.

    The worker writes each frame (with the ids the final layer gives it: they
    run on across frames) into the stack the filling-in Labels layer shows,
    so the GUI only refreshes that layer.
    """

    index: tuple[int, ...]


class RunFailure(str):
    """The message of a run that failed on bad input (returned, not raised)."""


def layer_pixel_size(layer: Any, spatial_scale: tuple, typed: float = 0.0) -> tuple[float | None, str]:
    """An image layer's micrometres per pixel, and where it came from.

    In order: ``typed`` (the widget's field, when > 0); the layer's scale,
    when it is not napari's default 1 (napari does not know units: a scale
    someone set is taken as micrometres); the pixel size a reader recorded in
    the layer's metadata; the TIFF metadata of the file the layer was opened
    from. Otherwise unknown: ``(None, "")``. Pixels that are not square
    count as unknown.

    Parameters
    ----------
    layer : napari.layers.Image
        The image to segment.
    spatial_scale : tuple of float
        The layer's scale, at least its last two (Y, X) entries (a chosen
        channel's axis already left out).
    typed : float
        The pixel size typed in the widget; 0 = not typed.
    """
    from napari_livecell.layers import RESULT_KEY

    if typed and typed > 0:
        return float(typed), "typed"
    scale = np.abs(np.asarray(spatial_scale[-2:], dtype=float))
    if not np.allclose(scale, 1.0):
        if np.isclose(scale[0], scale[1], rtol=0.01):
            return float(scale[1]), "layer scale"
        return None, ""
    recorded = (getattr(layer, "metadata", None) or {}).get(RESULT_KEY, {}).get("pixel_size_um")
    if recorded:
        return float(recorded), "file metadata"
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path:
        return None, ""
    from napari_livecell.core.inference.pixel_size import file_pixel_size

    found = file_pixel_size(path)
    return (found, "file metadata") if found is not None else (None, "")


def segment_generator(
    image: Any,
    rgb: bool,
    backend: Any,
    settings: Any,
    finish: Callable[[list, tuple[int, ...], Any], Any] | None = None,
    pixel_size: tuple[float | None, str] = (None, ""),
    labels_out: Any = None,
) -> Generator[tuple[int, int] | FrameReady, None, Any]:
    """Segment frame by frame, yielding (done, total); return (results, leading shape).

    Runs in a worker thread. Outlines are traced there too, so the GUI thread
    only adds layers. For a stack, each finished frame is written into
    ``labels_out`` (``(*leading, H, W)`` int32, from
    :func:`~napari_livecell.core.segmentation.new_label_stack`) and yielded as a
    :class:`FrameReady`, in frame order; the run then keeps only each
    frame's cells (:class:`~napari_livecell.core.inference.run.FrameSummary`), not its
    label image, so a long time-lapse costs its compact stack, not a full
    copy per frame. ``finish(results, leading, labels_out)``, when given,
    also runs here and its value is returned instead. Bad input, an
    unusable model or an unreachable backend is returned as a
    :class:`RunFailure` (a user's mistake, not a bug: no traceback dialog).
    ``pixel_size`` is the image's micrometres per pixel and its source
    (:func:`layer_pixel_size`): frames are resampled to the model's.
    """
    from napari_livecell.core.inference.frame_input import describe_polarities
    from napari_livecell.core.inference.pixel_size import describe_resamplings
    from napari_livecell.core.inference.run import (
        FrameResult,
        FrameSummary,
        RunStarted,
        TileProgress,
        iter_segment,
    )
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.layers import MAX_OUTLINES

    events = iter_segment(image, backend, settings, rgb, *pixel_size)
    try:
        started = next(events)
    except (ValueError, OSError) as error:
        return RunFailure(str(error))
    assert isinstance(started, RunStarted)  # iter_segment's first event
    leading, total = started.leading, started.n_frames
    yield 0, total * TILE_STEPS
    report_due = every(PROGRESS_INTERVAL_S)
    results: list[Segmentation | FrameSummary] = []
    polarities, resamplings = [], []
    first_id = 0
    if leading and labels_out is None:
        from napari_livecell.core.segmentation import new_label_stack

        labels_out = new_label_stack((*leading, *image.shape[len(leading) : len(leading) + 2]))
    while True:
        try:
            event = next(events)
        except StopIteration:
            break
        except (ValueError, OSError) as error:
            return RunFailure(f"frame {len(results) + 1}: {error}")
        if isinstance(event, TileProgress):  # progress (and Cancel) move per tile inside a frame
            if event.total > 1 or report_due():  # tiles of a large frame each take a while: all shown
                done = event.frame * TILE_STEPS + (TILE_STEPS * event.done) // event.total - 1
                yield done, total * TILE_STEPS
        elif isinstance(event, FrameResult):
            result: Segmentation | FrameSummary = event.segmentation
            polarities.append(event.polarity)
            resamplings.append(event.resampling)
            if leading:
                labels_out[event.index] = offset_ids(event.segmentation.labels, first_id)
                # beyond MAX_OUTLINES cells no outlines layer is made: their rings need not be kept
                keep_outlines = first_id + result.n_cells <= MAX_OUTLINES
                if not keep_outlines and first_id <= MAX_OUTLINES:
                    for earlier in results:
                        if isinstance(earlier, FrameSummary):  # every earlier frame of a stack
                            earlier.polygons = []
                result = FrameSummary.of(event.segmentation, keep_outlines)
            results.append(result)
            first_id += result.n_cells
            if leading:
                yield FrameReady(event.index)
            if report_due() or event.number + 1 == total:
                yield (event.number + 1) * TILE_STEPS, total * TILE_STEPS
    if finish is None:
        return results, leading
    prepared = finish(results, leading, labels_out if leading else None)
    if isinstance(prepared, PreparedLayers):
        prepared.modality = describe_polarities(polarities)
        prepared.pixel_size = describe_resamplings(resamplings)
    return prepared


def every(seconds: float):
    """A callable that is True at its first call and then once ``seconds`` have passed since it was."""
    import time

    last = [-math.inf]

    def due() -> bool:
        now = time.monotonic()
        if now - last[0] < seconds:
            return False
        last[0] = now
        return True

    return due


@dataclass
class PreparedLayers:
    """A finished run's result layers, made in the worker thread.

    ``layer_data`` holds ``(data, kwargs, layer_type)`` tuples; the outlines
    entry's data is a ready napari Shapes layer: building its 1000s of
    polygons would otherwise stall the GUI thread.
    """

    layer_data: list[tuple]
    n_cells: int
    n_frames: int
    modality: str = ""  # what the frames were taken to be, for the status line
    pixel_size: str = ""  # what was done about the pixel size, for the status line


def prepare_result_layers(
    image_name: str, layer_kwargs: dict
) -> Callable[[list, tuple[int, ...]], PreparedLayers]:
    """A ``finish`` for :func:`segment_generator` that builds the result layers."""

    def finish(results: list, leading: tuple[int, ...], labels: Any = None) -> PreparedLayers:
        from napari.layers import Shapes

        from napari_livecell.layers import result_layer_data

        layer_data = result_layer_data(results, image_name, leading, layer_kwargs, labels)
        ready = [
            (Shapes(data, **kwargs) if kind == "shapes" else data, kwargs, kind)
            for data, kwargs, kind in layer_data
        ]
        return PreparedLayers(ready, sum(result.n_cells for result in results), len(results))

    return finish
