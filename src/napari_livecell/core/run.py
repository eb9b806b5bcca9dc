"""One generator over the three places a model can run: here, an HTTP service, a Dask cluster.

The Segment cells widget and the CLI both segment through :func:`iter_segment`;
which backend does the work is a setting (:class:`Backend`), not a code path
of each entry point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .predict import Polarity, PredictSettings, iter_frames
from .segmentation import Segmentation

if TYPE_CHECKING:
    from .pixel_size import Resampling
from .steps import relay


def offset_ids(labels: np.ndarray, first_id: int) -> np.ndarray:
    """A frame's labels with ids that follow the previous frames' (``first_id`` cells before it).

    The one rule for a stack's ids, shared by the napari result layer and the
    CLI's label TIFF: ids run on across frames, so that an id names one cell
    of the whole stack.
    """
    return np.where(labels > 0, labels + first_id, 0).astype(np.int32)


def stack_labels(frames: list[Segmentation], leading: tuple[int, ...]) -> np.ndarray:
    """One int32 label array ``(*leading, H, W)`` from per-frame results, ids run on (:func:`offset_ids`)."""
    labels = np.zeros((*leading, *frames[0].labels.shape), dtype=np.int32)
    first_id = 0
    for index, frame in zip(np.ndindex(*leading) if leading else [()], frames):
        labels[index] = offset_ids(frame.labels, first_id)
        first_id += frame.n_cells
    return labels


@dataclass(frozen=True)
class Backend:
    """Where segmentation runs.

    Attributes
    ----------
    weights : str, optional
        A model file (``None``: the shipped default), or the ``http(s)://``
        address of a ``napari-livecell serve`` service.
    device : str, optional
        ``auto``, ``cpu``, ``cuda:N`` or ``mps`` for a local model.
    tile : bool, optional
        Overlapping tiles for large frames: ``None`` when needed, or always/never.
    scheduler : str, optional
        A Dask scheduler address: frames run as tasks on that cluster (the
        weights must be a path its workers can read).
    """

    weights: str | None = None
    device: str | None = "auto"
    tile: bool | None = None
    scheduler: str | None = None


@dataclass
class RunStarted:
    """First event of a run: the stack's leading shape and its number of frames."""

    leading: tuple[int, ...]
    n_frames: int


@dataclass
class TileProgress:
    """Tiles done inside frame number ``frame`` (0-based) of a run."""

    frame: int
    done: int
    total: int


@dataclass
class FrameResult:
    """A finished frame: its position in the run, its leading index, its cells and its polarity.

    ``polarity`` says what the frame was taken to be (phase contrast or
    fluorescence) and whether it was inverted for the model; ``resampling``
    what was done about its pixel size (``None``: not reported, an older
    service). The cells are on the frame's own grid either way.
    """

    number: int
    index: tuple[int, ...]
    segmentation: Segmentation
    polarity: Polarity | None = None
    resampling: Resampling | None = None


RunEvent = RunStarted | TileProgress | FrameResult


def iter_segment(
    image: Any,
    backend: Backend,
    settings: PredictSettings | None = None,
    rgb: bool | None = None,
    pixel_size: float | None = None,
    pixel_size_source: str = "",
) -> Iterator[RunEvent]:
    """Segment an image or stack frame by frame, wherever the backend says.

    Parameters
    ----------
    image : array-like
        A frame or a stack with leading axes (numpy or dask; read lazily).
    backend : Backend
        A local model, a service or a Dask cluster.
    settings : PredictSettings, optional
        Thresholds and image size.
    rgb : bool, optional
        Whether the last axis holds colour (guessed when omitted).
    pixel_size : float, optional
        Micrometres per pixel of the frames. When the model states its own
        and they differ by more than 10 %, each frame is resampled to the
        model's and its cells mapped back (:mod:`napari_livecell.core.pixel_size`);
        unknown: nothing is resampled.
    pixel_size_source : str
        Where ``pixel_size`` came from (``--pixel-size``, ``layer scale``...), for the reports.

    Yields
    ------
    RunStarted, then TileProgress and FrameResult events
        A :class:`FrameResult` per frame, in C order of the leading axes;
        :class:`TileProgress` within large frames run here.

    Raises
    ------
    ValueError, OSError
        Bad input, a model that cannot be loaded, an unreachable service or
        scheduler: raised before the first event, or for the frame concerned.
    """
    from napari_livecell.core.measure import check_pixel_size
    from napari_livecell.core.remote import is_service_url

    settings = settings or PredictSettings()
    leading, frames = iter_frames(image, rgb)
    if backend.scheduler and is_service_url(backend.weights):
        raise ValueError("a service URL and a Dask scheduler cannot be used together")
    pixel = (check_pixel_size(pixel_size), pixel_size_source if pixel_size is not None else "")
    if backend.scheduler:
        results = _cluster_results(frames, backend, settings, pixel)
    else:
        results = _local_results(frames, backend, settings, pixel)
    # the model is loaded (or the cluster reached) before the run counts as started
    results.send(None)
    yield RunStarted(leading, math.prod(leading) if leading else 1)
    yield from results


def _local_results(
    frames: Iterator, backend: Backend, settings: PredictSettings, pixel: tuple[float | None, str]
) -> Any:
    from napari_livecell.core.model import load_model
    from napari_livecell.core.pixel_size import plan_resampling, segment_frame_resampled_steps
    from napari_livecell.core.predict import frame_polarity
    from napari_livecell.core.remote import is_service_url, segment_remote

    service = backend.weights if is_service_url(backend.weights) else None
    model = None if service else load_model(backend.weights, device=backend.device)
    resampling = None if service else plan_resampling(pixel[0], model, pixel[1])
    yield None  # primed: setup errors surface before the run starts
    for number, (index, frame) in enumerate(frames):
        if service:
            result, polarity, resampling = segment_remote(frame, service, settings, 300.0, *pixel)
        else:
            polarity = frame_polarity(frame, settings, model.modality)
            steps = segment_frame_resampled_steps(frame, model, settings, backend.tile, polarity, resampling)
            result = yield from relay(steps, lambda tiles, number=number: TileProgress(number, *tiles))
        result.polygons  # noqa: B018  (outlines traced here, in the worker, off any GUI thread)
        yield FrameResult(number, index, result, polarity, resampling)


def _cluster_results(
    frames: Iterator, backend: Backend, settings: PredictSettings, pixel: tuple[float | None, str]
) -> Any:
    from distributed import Client

    from napari_livecell.core.distributed import iter_segment_distributed

    try:
        client = Client(backend.scheduler, timeout=10)
    except (OSError, TimeoutError) as error:
        raise OSError(f"cannot reach the Dask scheduler at {backend.scheduler}: {error}") from None
    try:
        indices = []

        def frame_data():
            for index, frame in frames:
                indices.append(index)
                yield frame

        yield None
        results = iter_segment_distributed(
            frame_data(), client, backend.weights, settings, pixel_size=pixel[0], pixel_size_source=pixel[1]
        )
        for number, (result, polarity, resampling) in enumerate(results):
            yield FrameResult(number, indices[number], result, polarity, resampling)
    finally:
        client.close()
