"""One generator over the three places a model can run: here, an HTTP service, a Dask cluster.

The Segment cells widget and the CLI both segment through :func:`iter_segment`;
which backend does the work is a setting (:class:`Backend`), not a code path
of each entry point.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_livecell.core.segmentation import Segmentation

from .frame_input import Polarity
from .predict import PredictSettings, iter_frames

if TYPE_CHECKING:
    from .pixel_size import Resampling


@dataclass
class FrameSummary:
    """A segmented frame's cells without its label image (kept once the labels are in a stack).

    Quacks like :class:`~napari_livecell.core.segmentation.Segmentation` for
    the per-cell tables and outlines: a 1,000-frame run keeps these, not
    1,000 full-frame label images.
    """

    scores: np.ndarray
    classes: np.ndarray
    class_names: dict[int, str]
    areas: np.ndarray
    polygons: list

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.scores)

    @classmethod
    def of(cls, segmentation: Segmentation, keep_outlines: bool = True) -> FrameSummary:
        """The cells of ``segmentation`` (outlines dropped unless ``keep_outlines``)."""
        return cls(
            scores=segmentation.scores,
            classes=segmentation.classes,
            class_names=segmentation.class_names,
            areas=segmentation.areas,
            polygons=segmentation.polygons if keep_outlines else [],
        )


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
    runtime : str, optional
        What runs a local model's forward pass (:mod:`napari_livecell.core.models.runtime`):
        ``torch``, ``onnxruntime``, ``openvino`` or ``auto`` (the fastest
        installed on a CPU; what the widget, CLI and service use); ``None``
        (default here): ``torch`` where installed, else ``auto``.
    threads : int, optional
        Threads torch may use per frame task on a Dask cluster (Dask starts
        its workers with one; give ``cores // worker processes``).
    """

    weights: str | None = None
    device: str | None = "auto"
    tile: bool | None = None
    scheduler: str | None = None
    runtime: str | None = None
    threads: int | None = None


def backend_runtime(backend: Backend | None) -> str:
    """What ran (or runs) a backend's forward pass, for a status line: ``runtime openvino``...

    A local model is looked up in :func:`.model.load_model`'s cache, so the
    answer is the runtime actually used (``auto`` made concrete, or its
    fallback to torch).
    """
    from napari_livecell.core.models.source import ModelSource

    if backend is None:
        return "runtime unknown"
    if backend.scheduler:
        return "runtime torch on the Dask workers"
    kind = ModelSource.parse(backend.weights).kind
    if kind == "service":
        return "runtime: the service's"
    if kind == "triton":
        return "network on Triton"
    from napari_livecell.core.models.model import load_model

    try:
        return f"runtime {load_model(backend.weights, backend.device, backend.runtime).runtime}"
    except (ValueError, OSError):
        return "runtime unknown"


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
    scratch: str | os.PathLike | None = None,
    start: int = 0,
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
        model's and its cells mapped back (:mod:`napari_livecell.core.inference.pixel_size`);
        unknown: nothing is resampled.
    pixel_size_source : str
        Where ``pixel_size`` came from (``--pixel-size``, ``layer scale``...), for the reports.
    scratch : path, optional
        On a Dask cluster: a folder that keeps each finished frame, so that a
        rerun after a crash computes only the frames missing there
        (:func:`.distributed.iter_segment_distributed`).
    start : int
        Begin with this frame (C order), the ones before it unread: a run
        resuming after its last finished frame. Frame numbers count from it
        (:attr:`FrameResult.number` 0 is frame ``start``); indices are the
        frames' own.

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
    from napari_livecell.core.images import check_pixel_size
    from napari_livecell.core.inference.remote import is_service_url

    settings = settings or PredictSettings()
    leading, frames = iter_frames(image, rgb, start)
    if backend.scheduler and is_service_url(backend.weights):
        raise ValueError("a service URL and a Dask scheduler cannot be used together")
    pixel = (check_pixel_size(pixel_size), pixel_size_source if pixel_size is not None else "")
    if backend.scheduler:
        results = _cluster_results(frames, backend, settings, pixel, scratch)
    else:
        results = _local_results(frames, backend, settings, pixel)
    # the model is loaded (or the cluster reached) before the run counts as started
    results.send(None)
    yield RunStarted(leading, math.prod(leading) if leading else 1)
    yield from results


# frames in flight at once on a GPU or a service: while one is in the forward pass (which holds
# the model's lock), the one before it is decoded, painted and traced; a third is being read and
# normalised. Runs on the CPU: see _local_results
PIPELINE_DEPTH = 2
PROGRESS_POLL_S = 0.05


def _local_results(
    frames: Iterator,
    backend: Backend,
    settings: PredictSettings,
    pixel: tuple[float | None, str],
) -> Any:
    from napari_livecell.core._threads import frames_at_once
    from napari_livecell.core.inference.openvino_direct import frames_side_by_side
    from napari_livecell.core.inference.predict import model_input_shape
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.inference.remote import is_service_url, segment_remote
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.steps import relay

    service = backend.weights if is_service_url(backend.weights) else None
    recipe = None
    if not service:
        model = load_model(backend.weights, device=backend.device, runtime=backend.runtime)
        model_input_shape(model)  # found once here, before worker threads share the model
        recipe = FrameRecipe.plan(model, settings, *pixel, tile=backend.tile)
    yield None  # primed: setup errors surface before the run starts

    def read() -> tuple | None:
        """The next frame, read (a dask frame is computed here) and its polarity decided."""
        item = next(frames, None)
        if item is None or recipe is None:
            return item
        index, frame = item
        frame = np.asarray(frame)
        return index, frame, recipe.polarity(frame)

    # on the CPU, torch and ONNX Runtime run frame by frame: their forward pass uses every core and
    # the post-processing, split in halves on two threads, the idle ones after it (a second frame
    # beside them only contends: 2 cores, 200 frames, torch 0.66 of 1 / forward frame by frame,
    # 0.59 pipelined). OpenVINO runs frames side by side, one stream per core, each frame in its own
    # thread from input to outlines (0.98 vs 0.86 frame by frame; benchmarks/README.md). A GPU or
    # a service leaves the host's cores free for the frame before.
    on_cpu = recipe is not None and recipe.model.device == "cpu"
    side_by_side = frames_side_by_side(recipe.model) if recipe is not None and on_cpu else 1

    def work(number: int, item: tuple, report: Any) -> FrameResult:
        # the first frame runs alone (see pipeline), on every core: its result shows soonest
        with frames_at_once(side_by_side if number else 1):
            if recipe is None:
                assert service is not None  # no recipe: a service runs the frames
                index, frame = item
                result, polarity, used = segment_remote(frame, service, settings, 300.0, *pixel)
                # outlines traced here, in a worker, off any GUI thread; in chunks of cells, so that
                # a closed run stops between them (a 400-Mpx frame's 330,000 outlines take 10-15 s)
                report(number, relay(result.trace_steps(), lambda _: (1, 1)))
                return FrameResult(number, index, result, polarity, used)
            index, frame, polarity = item
            done = report(number, recipe.steps(frame, polarity))
        return FrameResult(number, index, done.segmentation, done.polarity, done.resampling)

    yield from pipeline(read, work, side_by_side if on_cpu else PIPELINE_DEPTH)


def pipeline(read: Any, work: Any, depth: int = PIPELINE_DEPTH) -> Iterator[RunEvent]:
    """Run frames through ``work`` in ``depth`` threads, reading ahead in another; yield in order.

    Parameters
    ----------
    read : callable
        ``read() -> item or None``: the next frame (``None`` at the end); runs
        in a reader thread, one frame ahead of the workers.
    work : callable
        ``work(number, item, report) -> FrameResult``; ``report(number, steps)``
        wraps a ``(done, total)`` progress generator so that its tile progress
        reaches the caller (and a closed run stops it between tiles).
    depth : int
        Frames segmented at once (after the first, which runs alone): with
        a model whose forward passes take turns (its lock), one frame's
        post-processing overlaps the next one's forward pass; with OpenVINO
        streams, the frames run side by side, one per stream. ``1``: frame
        by frame.

    Yields
    ------
    TileProgress, FrameResult
        Results in frame order, whatever order the threads finish in; tile
        progress of the frame that is due next. An error is raised for the
        frame it concerns, after the frames before it.
    """
    import queue
    import threading
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor, wait

    from napari_livecell.core._threads import yield_to_interactive_threads
    from napari_livecell.core.errors import Cancelled

    progress: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def report(number: int, steps: Any) -> Any:
        while True:
            if stop.is_set():
                raise Cancelled("run closed")
            try:
                tiles = next(steps)
            except StopIteration as finished:
                return finished.value
            progress.put(TileProgress(number, *tiles))

    # the run's threads yield the cores to the caller's (a GUI's) when both want them
    reader = ThreadPoolExecutor(1, "livecell-read", initializer=yield_to_interactive_threads)
    workers = ThreadPoolExecutor(max(1, depth), "livecell-segment", initializer=yield_to_interactive_threads)
    try:
        upcoming = reader.submit(read)
        in_flight: deque = deque()
        number, exhausted, first_done = 0, False, False
        while True:
            # the first frame runs alone, so that its result shows as soon as one frame allows
            # (two frames sharing the cores from the start delayed it ~2x); then ``depth`` at once
            while not exhausted and len(in_flight) < (max(1, depth) if first_done else 1):
                wait([upcoming])
                if upcoming.exception() is not None:  # a frame that cannot be read fails in its turn
                    in_flight.append((number, upcoming))
                    exhausted = True
                    break
                item = upcoming.result()
                if item is None:
                    exhausted = True
                    break
                upcoming = reader.submit(read)
                in_flight.append((number, workers.submit(work, number, item, report)))
                number += 1
            if not in_flight:
                return
            head_number, head = in_flight[0]
            while not wait([head], timeout=PROGRESS_POLL_S).done:
                yield from _drain_progress(progress, head_number)
            yield from _drain_progress(progress, head_number)
            in_flight.popleft()
            first_done = True
            yield head.result()
    finally:
        stop.set()
        reader.shutdown(wait=False, cancel_futures=True)
        workers.shutdown(wait=False, cancel_futures=True)


def _drain_progress(progress: Any, frame: int) -> Iterator[TileProgress]:
    """Tile progress queued so far, for ``frame`` only (later frames report again in their turn)."""
    import queue

    while True:
        try:
            event = progress.get_nowait()
        except queue.Empty:
            return
        if event.frame == frame:
            yield event


def _cluster_results(
    frames: Iterator,
    backend: Backend,
    settings: PredictSettings,
    pixel: tuple[float | None, str],
    scratch: str | os.PathLike | None,
) -> Any:
    from napari_livecell.core.inference.distributed import connect, iter_segment_distributed

    client = connect(str(backend.scheduler))
    try:
        indices = []

        def frame_data():
            for index, frame in frames:
                indices.append(index)
                yield frame

        yield None
        results = iter_segment_distributed(
            frame_data(),
            client,
            backend.weights,
            settings,
            torch_threads=backend.threads,
            pixel_size=pixel[0],
            pixel_size_source=pixel[1],
            scratch=scratch,
        )
        for number, (result, polarity, resampling) in enumerate(results):
            yield FrameResult(number, indices[number], result, polarity, resampling)
    finally:
        client.close()
