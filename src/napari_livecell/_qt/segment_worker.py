"""The Segment cells widget's worker-thread side, without Qt.

Input checks, and the generator that the thread worker runs: it follows
:func:`napari_livecell.core.run.iter_segment` (a local model, a service or a
Dask cluster) and turns its events into progress, frames that fill the
result layer in, and the finished result layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_livecell.layers import offset_ids

MAX_SPATIAL_STACK_AXES = 4  # T, Z, Y, X (+ colour)
TILE_STEPS = 100  # progress units per frame, so that tiles of a large frame show


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
    """A finished frame of a stack, for the Labels layer that fills in during a run.

    ``labels`` already carries the ids the final layer gives this frame (they
    run on across frames), so the GUI only copies it into place.
    """

    index: tuple[int, ...]
    labels: np.ndarray


class RunFailure(str):
    """The message of a run that failed on bad input (returned, not raised)."""


def segment_generator(
    image: Any,
    rgb: bool,
    backend: Any,
    settings: Any,
    finish: Callable[[list, tuple[int, ...]], Any] | None = None,
) -> Iterator[tuple[int, int] | FrameReady]:
    """Segment frame by frame, yielding (done, total); return (results, leading shape).

    Runs in a worker thread. Outlines are traced there too, so the GUI thread
    only adds layers. For a stack, each finished frame is also yielded as a
    :class:`FrameReady`, in frame order. ``finish(results, leading)``, when
    given, also runs here and its value is returned instead. Bad input, an
    unusable model or an unreachable backend is returned as a
    :class:`RunFailure` (a user's mistake, not a bug: no traceback dialog).
    """
    from napari_livecell.core.run import FrameResult, TileProgress, iter_segment

    events = iter_segment(image, backend, settings, rgb)
    try:
        started = next(events)
    except (ValueError, OSError) as error:
        return RunFailure(str(error))
    leading, total = started.leading, started.n_frames
    yield 0, total * TILE_STEPS
    results = []
    first_id = 0
    while True:
        try:
            event = next(events)
        except StopIteration:
            break
        except (ValueError, OSError) as error:
            return RunFailure(f"frame {len(results) + 1}: {error}")
        if isinstance(event, TileProgress):  # progress (and Cancel) move per tile inside a frame
            yield event.frame * TILE_STEPS + (TILE_STEPS * event.done) // event.total - 1, total * TILE_STEPS
        elif isinstance(event, FrameResult):
            result = event.segmentation
            results.append(result)
            if leading:
                yield FrameReady(event.index, offset_ids(result.labels, first_id))
            first_id += result.n_cells
            yield (event.number + 1) * TILE_STEPS, total * TILE_STEPS
    return finish(results, leading) if finish is not None else (results, leading)


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


def prepare_result_layers(
    image_name: str, layer_kwargs: dict
) -> Callable[[list, tuple[int, ...]], PreparedLayers]:
    """A ``finish`` for :func:`segment_generator` that builds the result layers."""

    def finish(results: list, leading: tuple[int, ...]) -> PreparedLayers:
        from napari.layers import Shapes

        from napari_livecell.layers import result_layer_data

        layer_data = result_layer_data(results, image_name, leading, layer_kwargs)
        ready = [
            (Shapes(data, **kwargs) if kind == "shapes" else data, kwargs, kind)
            for data, kwargs, kind in layer_data
        ]
        return PreparedLayers(ready, sum(result.n_cells for result in results), len(results))

    return finish
