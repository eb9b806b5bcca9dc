"""The Segment cells widget's work, without Qt.

Input checks, the per-frame/per-tile generator that the thread worker runs,
and the list of recently used models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_SPATIAL_STACK_AXES = 4  # T, Z, Y, X (+ colour)
TILE_STEPS = 100  # progress units per frame, so that tiles of a large frame show


def _recent_models_file() -> Path:
    from napari_livecell.core.offline import config_dir

    return config_dir().parent / "recent_models.txt"


def load_recent_models() -> list[str]:
    """Model files used before (most recent first), those that still exist."""
    try:
        lines = _recent_models_file().read_text().splitlines()
    except OSError:
        return []
    return [line for line in lines if line and Path(line).exists()][:8]


def remember_model(path: str) -> None:
    """Put a model file at the top of the recent list."""
    recent = [path] + [p for p in load_recent_models() if p != path]
    try:
        _recent_models_file().write_text("\n".join(recent[:8]) + "\n")
    except OSError:
        pass  # a read-only home only loses the convenience


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


def segment_generator(
    image: Any,
    rgb: bool,
    weights: str | None,
    device: str,
    settings: Any,
    tile: bool | None,
    scheduler: str | None = None,
    finish: Callable[[list, tuple[int, ...]], Any] | None = None,
) -> Iterator[tuple[int, int] | FrameReady]:
    """Segment frame by frame, yielding (done, total); return (results, leading shape).

    Runs in a worker thread. Outlines are traced here too, so the GUI thread
    only adds layers. For a stack, each finished frame is also yielded as a
    :class:`FrameReady`, in frame order. With a Dask ``scheduler`` address
    the frames run on that cluster (weights must be a path its workers can
    read), a few at a time. ``finish(results, leading)``, when given, also
    runs here and its value is returned instead.
    """
    from napari_livecell.core.predict import iter_frames

    try:
        leading, frames = iter_frames(image, rgb)
        if scheduler:
            client, outcomes = _cluster_outcomes(frames, leading, weights, settings, scheduler)
        else:
            client, outcomes = None, _local_outcomes(frames, weights, device, settings, tile)
    except (ValueError, OSError) as error:
        # a user's mistake, not a bug: reported in the widget, no traceback dialog
        return RunFailure(str(error))
    total = math.prod(leading) if leading else 1
    yield 0, total * TILE_STEPS
    results = []
    first_id = 0
    try:
        for done in range(total):
            try:
                while not isinstance(outcome := next(outcomes), _Outcome):
                    tiles_done, tiles = outcome  # progress (and Cancel) move per tile inside a frame
                    yield done * TILE_STEPS + (TILE_STEPS * tiles_done) // tiles - 1, total * TILE_STEPS
            except (ValueError, OSError) as error:
                return RunFailure(f"frame {done + 1}: {error}")
            index, result = outcome.index, outcome.result
            results.append(result)
            if leading:
                yield FrameReady(index, _offset_ids(result.labels, first_id))
            first_id += result.n_cells
            yield (done + 1) * TILE_STEPS, total * TILE_STEPS
    finally:
        if client is not None:
            client.close()
    return finish(results, leading) if finish is not None else (results, leading)


@dataclass
class PreparedLayers:
    """A finished run's result layers, made in the worker thread.

    ``layer_data`` holds ``(data, kwargs, layer_type)`` tuples; the outlines
    entry's data is a ready napari Shapes layer: building its 1000s of
    polygons (0.1 s and more) would otherwise stall the GUI thread.
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

        from napari_livecell._layers import result_layer_data

        layer_data = result_layer_data(results, image_name, leading, layer_kwargs)
        ready = [
            (Shapes(data, **kwargs) if kind == "shapes" else data, kwargs, kind)
            for data, kwargs, kind in layer_data
        ]
        return PreparedLayers(ready, sum(result.n_cells for result in results), len(results))

    return finish


@dataclass
class _Outcome:
    index: tuple[int, ...]
    result: Any


def _local_outcomes(frames, weights, device, settings, tile) -> Iterator:
    """Load the model (or check the service URL) now; then per frame (tiles done, tiles)..., _Outcome."""
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import segment_frame_steps
    from napari_livecell.core.remote import is_service_url, segment_frame_remote

    model = weights if is_service_url(weights) else load_model(weights, device=device)

    def outcomes() -> Iterator:
        for index, frame in frames:
            if isinstance(model, str):  # a service does the whole frame
                result = segment_frame_remote(frame, model, settings)
            else:
                result = yield from segment_frame_steps(frame, model, settings, tile)
            result.polygons  # noqa: B018  (trace outlines off the GUI thread)
            yield _Outcome(index, result)

    return outcomes()


def _cluster_outcomes(frames, leading, weights, settings, scheduler: str):
    """Connect to a Dask scheduler; return the client and the in-order outcomes."""
    from distributed import Client

    from napari_livecell.core.distributed import iter_segment_distributed
    from napari_livecell.core.remote import is_service_url

    if is_service_url(weights):
        raise ValueError("a service URL and a Dask scheduler cannot be used together")
    try:
        client = Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as error:
        raise OSError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    indices = list(np.ndindex(*leading)) if leading else [()]
    results = iter_segment_distributed((frame for _, frame in frames), client, weights, settings)
    return client, (_Outcome(index, result) for index, result in zip(indices, results))


def _offset_ids(labels: np.ndarray, first_id: int) -> np.ndarray:
    """A frame's labels with ids that follow the previous frames' (as in the result layer)."""
    return np.where(labels > 0, labels + first_id, 0).astype(np.int32)


class RunFailure(str):
    """The message of a run that failed on bad input (returned, not raised)."""
