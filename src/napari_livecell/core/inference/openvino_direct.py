"""The forward pass of an ONNX Runtime or OpenVINO model, with no PyTorch and no Ultralytics.

:func:`direct_instances` letterboxes a window as Ultralytics' predictor
would (:func:`.network_input.letterbox`; a native-size window,
:func:`.predict.segment_frame`, is left as it is), runs the model's engine
(``LoadedModel.engine``: :mod:`napari_livecell.core.models.engines`), and
turns its outputs into instances with this package's NMS
(:func:`.masks.non_max_suppression`): the predictor's numbers, without its
lock (one predictor per model, not thread-safe), so that two frames of a
stack can be in the network at once, each on its own OpenVINO stream
(:data:`STREAMS`; the run decides, :func:`.run.iter_segment`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from napari_livecell.core._threads import frames_in_flight

from .masks import RawInstances, non_max_suppression
from .network_input import boxes_to_frame, letterbox, network_tensor

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


def model_engine(model: LoadedModel) -> Any:
    """The engine that runs ``model`` (``None``: Ultralytics' predictor runs it)."""
    return model.engine


def network_window(bgr: np.ndarray, model: LoadedModel, settings: ForwardSettings) -> tuple[np.ndarray, bool]:
    """The window as the network takes it, and whether it was left as it is (a native window)."""
    stride = model.stride
    fixed = model.input_shape if isinstance(model.input_shape, tuple) else None
    target = fixed or (settings.imgsz, settings.imgsz)
    height, width = bgr.shape[:2]
    native = (
        (height, width) == fixed
        if fixed
        else (not height % stride and not width % stride and max(height, width) == settings.imgsz)
    )
    if native:
        return bgr, True
    return letterbox(bgr, target, stride, auto=fixed is None), False


def direct_instances(bgr: np.ndarray, model: LoadedModel, settings: ForwardSettings) -> RawInstances | None:
    """A model's instances in one window (BGR or gray), boxes in the window's pixels.

    ``None`` for a model Ultralytics' predictor runs (PyTorch, Triton), or
    for an output layout this path does not know (the caller runs the predictor).
    """
    with direct_instances_held(bgr, model, settings) as instances:
        if instances is None:
            return None
        return replace(instances, protos=instances.protos.copy())


@contextmanager
def direct_instances_held(
    bgr: np.ndarray, model: LoadedModel, settings: ForwardSettings
) -> Iterator[RawInstances | None]:
    """:func:`direct_instances`, its prototypes the engine's own memory, valid inside the block.

    For the caller that paints the masks inside the block: no copy of the
    prototypes (3 MB a 704 x 544 window), see
    :meth:`.openvino_model.StaticShapes.outputs_held`.
    """
    engine = model.engine
    if engine is None:
        yield None
        return
    window, native = network_window(bgr, model, settings)
    streams = min(frames_in_flight(), engine.threads)
    with engine.outputs_held(network_tensor(window), streams) as outputs:
        instances = _instances(outputs, len(model.class_names), settings, window.shape[:2])
        if instances is not None and not native:
            boxes = boxes_to_frame(instances.boxes, window.shape[:2], bgr.shape[:2])
            instances = replace(instances, boxes=boxes)
        yield instances


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
        # more candidates than Ultralytics sorts: keep its cap (the highest scores) and run ours on them
        rows = _capped_nms(prediction[0], n_classes, settings)
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


MAX_CANDIDATES = 30000  # Ultralytics' max_nms: the candidates NMS looks at, highest scores first


def _capped_nms(prediction: np.ndarray, n_classes: int, settings: ForwardSettings) -> np.ndarray:
    """NMS on the :data:`MAX_CANDIDATES` best-scoring anchors only, as Ultralytics caps its NMS."""
    scores = prediction[4 : 4 + n_classes].max(axis=0)
    keep = np.sort(np.argsort(-scores, kind="stable")[:MAX_CANDIDATES])
    rows = non_max_suppression(
        np.ascontiguousarray(prediction[:, keep]), n_classes, settings.conf, settings.iou, settings.max_det
    )
    return rows if rows is not None else np.zeros((0, 6 + prediction.shape[0] - 4 - n_classes), np.float32)


STREAMS = 2  # frames side by side on a multi-core CPU (measured on 2 cores: benchmarks/README.md)


def frames_side_by_side(model: LoadedModel) -> int:
    """Frames of a stack that ``model`` segments at once: :data:`STREAMS` for OpenVINO on 2+ cores, else 1."""
    from napari_livecell.core.models.openvino_model import StaticShapes

    engine = model.engine
    return min(STREAMS, engine.threads) if isinstance(engine, StaticShapes) else 1
