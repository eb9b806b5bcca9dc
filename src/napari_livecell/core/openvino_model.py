"""The OpenVINO model: compiled per input shape, with one stream per core for frames side by side.

:class:`StaticShapes` replaces the compiled model Ultralytics makes for an
OpenVINO folder (:func:`.runtime.configure_predictor`). :func:`direct_instances`
runs it on a window without Ultralytics' predictor, where the predictor would
not change the window (a native-size window, :func:`.predict.segment_frame`):
the same numbers, without the predictor's lock, so that two frames of a stack
can be in the network at once, each on its own core.

Why streams: on this 2-core CPU one frame's forward pass on both cores takes
69 ms, two frames on one core each 117 ms, i.e. 59 ms a frame (float32,
704 x 544; benchmarks/README.md): two cores working on one small convolution
at a time wait for each other, and the post-processing, which cannot start
before its frame's forward pass ends, leaves the cores idle in between.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._threads import frames_in_flight

if TYPE_CHECKING:
    from .masks import RawInstances
    from .model import LoadedModel
    from .predict import PredictSettings


class StaticShapes:
    """An OpenVINO model compiled for each input shape it meets (the last few kept).

    Called as a compiled model is (``compiled(array).values()``), or through
    :meth:`infer` from any number of threads. The IR has a dynamic input
    shape, so that frames of any size run at their own size as with PyTorch;
    compiled for one fixed shape, its forward pass is ~15 % faster
    (benchmarks/README.md), and a stack's frames share one shape.

    Parameters
    ----------
    xml : Path
        The IR's ``.xml`` file (its ``.bin`` beside it).
    threads : int
        Cores the forward pass may use.
    """

    KEEP = 4  # shapes x stream counts: a stack's frames, tiles, and a few odd sizes

    def __init__(self, xml: Path, threads: int) -> None:
        import openvino

        self._core = openvino.Core()
        self._xml = xml
        self.threads = threads
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            # f32: on CPUs with AMX or AVX512-BF16 the default is bfloat16, whose masks differ
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": threads,
        }
        self._compiled: dict[tuple, Any] = {}
        self._idle_requests: dict[tuple, list] = {}
        self._lock = threading.Lock()

    def compiled(self, shape: tuple[int, ...], streams: int = 1) -> Any:
        """The model compiled for ``shape`` and ``streams`` frames at once (compiled now when new)."""
        key = (tuple(shape), streams)
        with self._lock:  # compiling twice at once would only waste the time; a thread waits instead
            if key in self._compiled:
                self._compiled[key] = self._compiled.pop(key)  # most recently used last
                return self._compiled[key]
            network = self._core.read_model(str(self._xml), str(self._xml.with_suffix(".bin")))
            network.reshape(list(shape))
            config = dict(self.config)
            if streams > 1:
                config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
            self._compiled[key] = self._core.compile_model(network, "CPU", config)
            self._idle_requests[key] = []
            while len(self._compiled) > self.KEEP:
                oldest = next(iter(self._compiled))
                self._compiled.pop(oldest)
                self._idle_requests.pop(oldest)
            return self._compiled[key]

    def infer(self, tensor: np.ndarray, streams: int = 1) -> list[np.ndarray]:
        """The forward pass on a float32 ``(1, 3, H, W)`` array: the outputs in port order (copies).

        Thread-safe: each call takes an idle infer request of its own. With
        ``streams > 1`` the model runs as that many streams on the cores
        (each call on one stream), for callers that segment frames side by side.
        """
        key = (tuple(tensor.shape), streams)
        compiled = self.compiled(key[0], streams)
        with self._lock:
            idle = self._idle_requests.get(key)
            request = idle.pop() if idle else None
        if request is None:
            request = compiled.create_infer_request()
        # the input is only read; outputs are copied, as the request serves the next call
        outputs = request.infer({0: np.ascontiguousarray(tensor)}, share_inputs=True, share_outputs=False)
        with self._lock:
            if key in self._idle_requests:  # not evicted meanwhile
                self._idle_requests[key].append(request)
        return list(outputs.values())

    def __call__(self, inputs: Any) -> dict[int, np.ndarray]:
        """Ultralytics' call: the forward pass on a float32 ``(N, 3, H, W)`` array; outputs by port."""
        return dict(enumerate(self.infer(inputs)))


def model_engine(model: LoadedModel) -> StaticShapes | None:
    """The :class:`StaticShapes` that runs ``model`` (``None``: another runtime, or not set up yet)."""
    predictor = getattr(model.yolo, "predictor", None)
    backend = getattr(getattr(predictor, "model", None), "backend", None)
    engine = getattr(backend, "ov_compiled_model", None)
    return engine if isinstance(engine, StaticShapes) else None


def direct_instances(bgr: np.ndarray, model: LoadedModel, settings: PredictSettings) -> RawInstances | None:
    """An OpenVINO model's instances in one window, without Ultralytics' predictor (``None``: use it).

    For a window whose sides are multiples of the stride and whose longer
    side is ``settings.imgsz`` (every window :func:`.predict.segment_frame`
    runs at its own size), Ultralytics' letterbox leaves the window as it is
    and its box scaling only clips: the result is the predictor's, number
    for number (``tests/core/test_openvino_model.py``). Otherwise, and for
    every other runtime, ``None``: the caller runs the predictor.

    Frames in :func:`._threads.frames_at_once` blocks run on one stream each.
    """
    from .masks import RawInstances, non_max_suppression
    from .predict import network_tensor

    engine = model_engine(model)
    if engine is None:
        return None
    backend = model.yolo.predictor.model
    stride = int(max(np.atleast_1d(backend.stride)))
    height, width = bgr.shape[:2]
    if height % stride or width % stride or max(height, width) != settings.imgsz or bgr.ndim != 3:
        return None
    streams = min(frames_in_flight(), engine.threads)
    outputs = engine.infer(network_tensor(bgr), streams)
    if len(outputs) != 2 or outputs[1].ndim != 4:
        return None  # not a YOLO-seg layout this path knows
    prediction, protos = outputs
    n_classes = len(backend.names)
    if prediction.shape[1] != 4 + n_classes + protos.shape[1]:
        return None  # an end-to-end (NMS-free) head, say
    rows = non_max_suppression(prediction[0], n_classes, settings.conf, settings.iou, settings.max_det)
    if rows is None:
        return None  # more candidates than Ultralytics sorts: its own NMS decides (rare)
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
