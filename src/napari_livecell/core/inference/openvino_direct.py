"""An OpenVINO model's forward pass without Ultralytics' predictor: the same numbers, frames side by side.

:func:`direct_instances` runs a model's :class:`.openvino_model.StaticShapes`
on a window the predictor would not change (a native-size window,
:func:`.predict.segment_frame`): the same numbers, without the predictor's
lock (one predictor per model, not thread-safe), so that two frames of a
stack can be in the network at once, each on its own OpenVINO stream
(:data:`STREAMS`; the run decides, :func:`.run.iter_segment`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from napari_livecell.core._threads import frames_in_flight
from napari_livecell.core.models.openvino_model import StaticShapes

from .masks import RawInstances, non_max_suppression
from .network_input import network_tensor

if TYPE_CHECKING:
    from napari_livecell.core.models.model import LoadedModel


class ForwardSettings(Protocol):
    """What the forward pass reads of a run's settings (:class:`~.predict.PredictSettings`)."""

    # read-only properties: the settings are a frozen dataclass
    @property
    def conf(self) -> float:
        """Confidence threshold."""

    @property
    def iou(self) -> float:
        """NMS IoU threshold."""

    @property
    def imgsz(self) -> int:
        """Network input side."""

    @property
    def max_det(self) -> int:
        """Most detections kept per window."""


def model_engine(model: LoadedModel) -> StaticShapes | None:
    """The :class:`StaticShapes` that runs ``model`` (``None``: another runtime, or not set up yet)."""
    predictor = getattr(model.yolo, "predictor", None)
    backend = getattr(getattr(predictor, "model", None), "backend", None)
    engine = getattr(backend, "ov_compiled_model", None)
    return engine if isinstance(engine, StaticShapes) else None


def direct_instances(bgr: np.ndarray, model: LoadedModel, settings: ForwardSettings) -> RawInstances | None:
    """An OpenVINO model's instances in one window (BGR or gray), without Ultralytics' predictor.

    For a window whose sides are multiples of the stride and whose longer
    side is ``settings.imgsz`` (every window :func:`.predict.segment_frame`
    runs at its own size), Ultralytics' letterbox leaves the window as it is
    and its box scaling only clips: the result is the predictor's, number
    for number (``tests/core/models/test_openvino_model.py``). Otherwise, and for
    every other runtime, ``None``: the caller runs the predictor.

    Frames in :func:`._threads.frames_at_once` blocks run on one stream each.
    """
    with direct_instances_held(bgr, model, settings) as instances:
        if instances is None:
            return None
        return replace(instances, protos=instances.protos.copy())


@contextmanager
def direct_instances_held(
    bgr: np.ndarray, model: LoadedModel, settings: ForwardSettings
) -> Iterator[RawInstances | None]:
    """:func:`direct_instances`, its prototypes the infer request's own memory, valid inside the block.

    For the caller that paints the masks inside the block: no copy of the
    prototypes (3 MB a 704 x 544 window), see
    :meth:`.openvino_model.StaticShapes.outputs_held`.
    """
    engine = model_engine(model)
    if engine is None:
        yield None
        return
    backend = model.yolo.predictor.model
    stride = int(max(np.atleast_1d(backend.stride)))
    height, width = bgr.shape[:2]
    if height % stride or width % stride or max(height, width) != settings.imgsz:
        yield None
        return
    streams = min(frames_in_flight(), engine.threads)
    with engine.outputs_held(network_tensor(bgr), streams) as outputs:
        yield _instances(outputs, len(backend.names), settings, (height, width))


def _instances(
    outputs: list[np.ndarray], n_classes: int, settings: ForwardSettings, shape: tuple[int, int]
) -> RawInstances | None:
    """The instances of a YOLO-seg forward pass's outputs (``None``: a layout this path does not know)."""
    if len(outputs) != 2 or outputs[1].ndim != 4:
        return None  # not a YOLO-seg layout this path knows
    prediction, protos = outputs
    if prediction.shape[1] != 4 + n_classes + protos.shape[1]:
        return None  # an end-to-end (NMS-free) head, say
    rows = non_max_suppression(prediction[0], n_classes, settings.conf, settings.iou, settings.max_det)
    if rows is None:
        return None  # more candidates than Ultralytics sorts: its own NMS decides (rare)
    height, width = shape
    boxes = rows[:, :4].copy()
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])  # Ultralytics' clip_boxes
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return RawInstances(
        boxes=boxes,
        scores=rows[:, 4].copy(),
        classes=rows[:, 5].astype(np.int32),
        coefficients=rows[:, 6:].copy(),
        protos=protos[0],
    )


STREAMS = 2  # frames side by side on a multi-core CPU (measured on 2 cores: benchmarks/README.md)


def frames_side_by_side(model: LoadedModel) -> int:
    """Frames of a stack that ``model`` segments at once: :data:`STREAMS` for OpenVINO on 2+ cores, else 1.

    The model must have run once (:func:`.predict.model_input_shape` does it).
    """
    engine = model_engine(model)
    return min(STREAMS, engine.threads) if engine is not None else 1
