"""Segmenting frames on a Dask cluster: one task per frame, results in frame order.

Each worker process loads the model once (the core's loader is cached per
process) and segments its frames with the frame recipe every other path uses
(:class:`~napari_livecell.core.inference.recipe.FrameRecipe`). Tasks are
retried on other workers when a worker dies. With a scratch folder, every
frame is written there as it comes back (``frame_<i>_labels.tif`` and
``frame_<i>.json``, atomically), so a crash loses at most the frames in
flight and a second run reads the frames whose files exist instead of
computing them again. The CLI's ``--scheduler`` and the Segment cells widget
both come here through :func:`napari_livecell.core.inference.run.iter_segment`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def connect(scheduler: str, **options) -> Any:
    """A Dask ``Client`` of ``scheduler``; one ``OSError`` line when it cannot be reached.

    A ``tcp://`` address where nothing listens is refused at once: ``Client``
    itself retries a refused connection until its 10 s timeout.
    """
    import socket
    from urllib.parse import urlsplit

    from distributed import Client

    def unreachable(error: BaseException) -> OSError:
        return OSError(f"cannot reach the Dask scheduler at {scheduler}: {error}")

    address = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
    if address.scheme == "tcp" and address.hostname and address.port:
        try:
            socket.create_connection((address.hostname, address.port), timeout=5).close()
        except OSError as error:
            raise unreachable(error) from None
    try:
        return Client(scheduler, timeout=10, **options)
    except (OSError, TimeoutError) as error:
        raise unreachable(error) from None


def _frame_paths(out: Path, index: int) -> tuple[Path, Path]:
    return out / f"frame_{index:05d}_labels.tif", out / f"frame_{index:05d}.json"


def segment_frame_task(
    frame: np.ndarray,
    weights: str | None,
    settings,
    torch_threads: int | None = None,
    pixel_size: float | None = None,
    pixel_size_source: str = "",
):
    """Runs on a worker: segment one frame with the worker's cached model.

    Returns the :class:`~napari_livecell.core.segmentation.Segmentation`, with
    its outlines already traced (the worker's cores do it, not the client's),
    the frame's :class:`~napari_livecell.core.inference.frame_input.Polarity` against the
    worker's model (``settings.modality`` is honoured as locally), and the
    :class:`~napari_livecell.core.inference.pixel_size.Resampling` to the model's
    pixel size (``pixel_size``: the frame's micrometres per pixel, if known).
    """
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.models.model import load_model

    model = load_model(weights, device="cpu")
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    done = FrameRecipe.plan(model, settings, pixel_size, pixel_size_source).segment(frame)
    return done.segmentation, done.polarity, done.resampling


def iter_segment_distributed(
    frames: Iterable,
    client,
    weights: str | None = None,
    settings=None,
    torch_threads: int | None = None,
    in_flight: int | None = None,
    pixel_size: float | None = None,
    pixel_size_source: str = "",
    scratch: str | os.PathLike | None = None,
) -> Iterator:
    """Segment frames on a Dask cluster, yielding results in frame order.

    Frames are read from ``frames`` only as tasks are submitted, at most
    ``in_flight`` at a time (two per worker by default), so a lazily read
    stack never has to fit in memory and stopping the iteration leaves at
    most that many tasks running.

    Parameters
    ----------
    frames : iterable of array-like
        2-D (or RGB) frames, numpy or dask (computed only when submitted).
    client : distributed.Client
        A connected client.
    weights : str, optional
        Weights path visible to every worker; the shipped default when omitted.
    settings : PredictSettings, optional
        Thresholds, image size and modality.
    torch_threads : int, optional
        Threads torch may use per task. Dask starts workers with
        ``OMP_NUM_THREADS=1``; with several worker processes per machine,
        give ``cores // processes`` (measured: 2 workers on 2 cores at 2
        threads each ran at 0.59x of 1 worker).
    in_flight : int, optional
        Most frames submitted and not yet yielded.
    pixel_size, pixel_size_source
        The frames' micrometres per pixel and where it came from (see
        :func:`segment_frame_task`).
    scratch : path, optional
        A folder that keeps every finished frame: frames found there are
        read back instead of computed (a rerun after a crash), new ones are
        written as they come back.

    Yields
    ------
    (Segmentation, Polarity, Resampling)
        One per frame, in the order of ``frames`` (a frame read back from a
        scratch folder of an earlier version may give ``None`` for the last two).
    """
    from collections import deque

    from napari_livecell.core.inference.predict import PredictSettings

    settings = settings or PredictSettings()
    folder = None if scratch is None else Path(scratch)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    in_flight = in_flight or max(2, 2 * len(client.scheduler_info().get("workers", {})))
    pending: deque = deque()  # (frame index, future, or the result read back from the scratch folder)

    def finished(index: int, item) -> tuple:
        if not hasattr(item, "result"):
            return item
        result = item.result()
        if folder is not None:
            _write_frame(folder, index, *result)
        return result

    try:
        for index, frame in enumerate(frames):
            if folder is not None and all(path.exists() for path in _frame_paths(folder, index)):
                pending.append((index, _read_frame(folder, index)))
            else:
                future = client.submit(
                    segment_frame_task,
                    np.asarray(frame),
                    weights,
                    settings,
                    torch_threads,
                    pixel_size,
                    pixel_size_source,
                    pure=False,
                    retries=3,
                )
                pending.append((index, future))
            while pending and not hasattr(pending[0][1], "result"):  # read back: due now
                yield finished(*pending.popleft())
            if sum(hasattr(item, "result") for _, item in pending) >= in_flight:
                yield finished(*pending.popleft())
        while pending:
            yield finished(*pending.popleft())
    finally:
        futures = [item for _, item in pending if hasattr(item, "result")]
        if futures:  # stopped early: do not leave the cluster working for nobody
            try:
                client.cancel(futures)
            except RuntimeError:
                pass  # the client is closed already, and its tasks with it


def _write_frame(folder: Path, index: int, segmentation, polarity, resampling) -> None:
    """Keep a finished frame in the scratch folder: labels, then the json that marks it done."""
    import tifffile

    from napari_livecell.core.atomic import write_text_atomic, write_with
    from napari_livecell.core.formats.coco import segmentation_annotations

    labels_path, json_path = _frame_paths(folder, index)
    labels = segmentation.labels
    data = labels.astype(np.uint16 if labels.max() < 65536 else np.uint32)
    write_with(labels_path, lambda path: tifffile.imwrite(path, data, compression="zlib"))
    record = {
        "annotations": segmentation_annotations(segmentation, 0, 1, with_scores=True),
        **(polarity.as_dict() if polarity is not None else {}),
        **(resampling.as_dict() if resampling is not None else {}),
    }
    write_text_atomic(json_path, json.dumps(record))  # written last: marks the frame done


def _read_frame(folder: Path, index: int) -> tuple:
    """A frame of the scratch folder as ``(Segmentation, Polarity | None, Resampling | None)``.

    The same cells, scores and classes the run gave (``None``: not recorded,
    a scratch folder of an earlier version).
    """
    import tifffile

    from napari_livecell.core.inference.frame_input import Polarity
    from napari_livecell.core.inference.pixel_size import Resampling
    from napari_livecell.core.segmentation import Segmentation

    labels_path, json_path = _frame_paths(folder, index)
    record = json.loads(json_path.read_text())
    if isinstance(record, list):  # scratch folders of earlier versions hold the annotations alone
        record = {"annotations": record}
    annotations = record["annotations"]
    segmentation = Segmentation.from_labels(
        tifffile.imread(labels_path).astype(np.int32),
        scores=np.array([a.get("score", 1.0) for a in annotations], dtype=np.float32),
        classes=np.array([a["category_id"] - 1 for a in annotations], dtype=np.int32),
    )
    polarity = None
    if "model_modality" in record:
        polarity = Polarity(record["modality"], record["model_modality"], record["modality_decided"])
    return segmentation, polarity, Resampling.from_dict(record)
