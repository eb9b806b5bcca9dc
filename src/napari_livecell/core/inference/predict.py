"""Segmenting frames: image in, :class:`Segmentation` out.

An ONNX Runtime or OpenVINO model runs through :mod:`.openvino_direct`
(this package's letterbox, tensor and NMS, no PyTorch); a PyTorch model
through Ultralytics' predictor, with the same tensor and NMS kernels. The
masks are made box by box in :mod:`napari_livecell.core.inference.masks`.
Frames larger than the model input are cut into overlapping tiles (:mod:`.tiling`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from napari_livecell.core.errors import Cancelled
from napari_livecell.core.models.model import LoadedModel, load_model
from napari_livecell.core.segmentation import Segmentation

from .frame_input import (
    InputError,
    Polarity,
    Uint8Scale,
    check_frame_shape,
    frame_polarity,
    invert,
    uint8_scale,
)
from .masks import MaskPainter, RawInstances
from .network_input import gray_to_bgr, image_histograms, network_tensor, pad_constant

DEFAULT_CONF = 0.4
DEFAULT_IOU = 0.6
DEFAULT_IMGSZ = 704
MAX_DETECTIONS = 3000  # LIVECell images hold up to a few thousand cells
MODALITIES = ("auto", "phase", "fluorescence")
# smallest network input side: at 32 px the deepest feature map is one pixel and a
# blank frame read as a 947-px "cell" (score 0.71); from 64 px on, blank frames give none
MIN_NETWORK_SIDE = 128
STRIDE = 32


@dataclass(frozen=True)
class PredictSettings:
    """Thresholds and sizes of one segmentation run."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    imgsz: int = DEFAULT_IMGSZ
    max_det: int = MAX_DETECTIONS
    # what the images are: decided per frame from the pixels (auto), or said by the user
    modality: str = "auto"

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"conf must be in 0..1, got {self.conf}")
        if not 0.0 <= self.iou <= 1.0:
            raise ValueError(f"iou must be in 0..1, got {self.iou}")
        if self.imgsz < 32:
            raise ValueError(f"imgsz must be >= 32, got {self.imgsz}")


def _make_predictor_class():
    """An Ultralytics SegmentationPredictor that skips full-size mask decoding.

    On the CPU it also replaces Ultralytics' tensor shuffling before the
    network and its NMS after it (together ~2x a 500-cell frame's forward pass
    with OpenVINO) by compiled equivalents that give the same numbers.
    """
    import torch
    from ultralytics.engine.results import Results
    from ultralytics.models.yolo.segment import SegmentationPredictor
    from ultralytics.utils import ops

    from .masks import non_max_suppression

    class BoxAndProtoPredictor(SegmentationPredictor):
        def preprocess(self, im):
            fast = (
                isinstance(im, list)
                and len(im) == 1
                and self.device.type == "cpu"
                and not self.model.fp16
                and im[0].ndim == 3
                and im[0].shape[2] == 3
            )
            if not fast:
                return super().preprocess(im)
            (letterboxed,) = self.pre_transform(im)
            return torch.from_numpy(network_tensor(letterboxed))

        def postprocess(self, preds, img, orig_imgs):
            # Ultralytics' own layout: (prediction, protos), or ((prediction, protos), extras) from PyTorch
            if isinstance(preds[0], tuple):
                prediction, protos = preds[0]
            else:
                prediction, protos = preds[0], preds[1]
            rows = None
            plain = (
                prediction.shape[0] == 1
                and prediction.shape[-1] != 6
                and not getattr(self.model, "end2end", False)
                and self.args.classes is None
                and isinstance(orig_imgs, list)
            )
            if plain:
                rows = non_max_suppression(
                    prediction[0].detach().float().cpu().numpy(),
                    len(self.model.names),
                    self.args.conf,
                    self.args.iou,
                    self.args.max_det,
                    self.args.agnostic_nms,
                )
            if rows is None:
                return super().postprocess(preds, img, orig_imgs)
            path = self.batch[0][0]
            return [self.construct_result(torch.from_numpy(rows), img, orig_imgs[0], path, protos[0])]

        def construct_result(self, pred, img, orig_img, img_path, proto):
            pred = pred.clone()
            pred[:, :4] = ops.scale_boxes(img.shape[2:], pred[:, :4], orig_img.shape)
            result = Results(orig_img, path=img_path, names=self.model.names, boxes=pred[:, :6])
            result.livecell_raw = RawInstances(
                boxes=pred[:, :4].float().cpu().numpy(),
                scores=pred[:, 4].float().cpu().numpy(),
                classes=pred[:, 5].cpu().numpy().astype(np.int32),
                coefficients=pred[:, 6:].float().cpu().numpy(),
                protos=proto.float().cpu().numpy(),
            )
            return result

    return BoxAndProtoPredictor


_PREDICTOR_CLASS = None


def import_inference_modules(ultralytics: bool = True) -> None:
    """Import torch, Ultralytics and what their first prediction pulls in (and zarr, for long stacks).

    Call this on the main thread before running inference in worker threads:
    the first prediction imports ``torch._dynamo`` (and triton with it), and
    that import crashes the process when it happens in a non-main thread
    (segmentation fault measured with torch 2.14 under napari). Where
    PyTorch or Ultralytics is not installed, or ``ultralytics`` is false (a
    run whose model needs neither: :func:`.models.model.runs_through_ultralytics`),
    only zarr is imported.
    """
    global _PREDICTOR_CLASS
    import zarr  # noqa: F401  (a long stack's labels: imported now, not in the Run click)

    from napari_livecell.core.models.runtime import package_installed

    if not (ultralytics and package_installed("torch") and package_installed("ultralytics")):
        return
    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()
    import torch._dynamo  # noqa: F401

    if _PREDICTOR_CLASS is None:
        _PREDICTOR_CLASS = _make_predictor_class()


def predict_raw(bgr: np.ndarray, model: LoadedModel, settings: PredictSettings) -> RawInstances:
    """Run the network on one uint8 frame, BGR or gray (``(H, W)``); return boxes, scores and mask inputs.

    An ONNX Runtime or OpenVINO model runs without Ultralytics (and without
    its predictor's lock: :mod:`.openvino_direct`); a PyTorch or Triton model
    goes through Ultralytics' predictor.
    """
    with _raw_instances_held(bgr, model, settings) as raw:
        # the caller may keep the result: prototypes out of an infer request's memory are copied
        return replace(raw, protos=np.array(raw.protos))


@contextmanager
def _raw_instances_held(
    bgr: np.ndarray, model: LoadedModel, settings: PredictSettings
) -> Iterator[RawInstances]:
    """:func:`predict_raw`, whose prototypes may be valid inside the block only.

    An OpenVINO model's come straight from its infer request's memory (no copy
    of 3 MB a frame: :func:`.openvino_direct.direct_instances_held`); the
    masks are painted inside the block.
    """
    from .openvino_direct import direct_instances_held

    if model.engine is not None:
        with direct_instances_held(bgr, model, settings) as direct:
            if direct is not None:
                yield direct
                return
    yield predict_with_ultralytics(bgr, model, settings)


def predict_with_ultralytics(bgr: np.ndarray, model: LoadedModel, settings: PredictSettings) -> RawInstances:
    """:func:`predict_raw` through Ultralytics' predictor (a PyTorch, Triton or Ultralytics-loaded model)."""
    global _PREDICTOR_CLASS
    if model.yolo is None:
        raise ValueError(f"{model.name} runs with {model.runtime}, not through Ultralytics")
    if bgr.ndim == 2:
        bgr = gray_to_bgr(bgr)  # the predictor takes three channels
    if _PREDICTOR_CLASS is None:
        _PREDICTOR_CLASS = _make_predictor_class()
    with model.lock:  # an Ultralytics predictor is not thread-safe
        (result,) = model.yolo.predict(
            bgr,
            predictor=_PREDICTOR_CLASS,
            conf=settings.conf,
            iou=settings.iou,
            imgsz=settings.imgsz,
            max_det=settings.max_det,
            device=model.device,
            verbose=False,
            save=False,
        )
    return result.livecell_raw


def model_input_shape(model: LoadedModel) -> tuple[int, int] | None:
    """The fixed ``(height, width)`` input of a static export, ``None`` if flexible.

    PyTorch models and dynamic exports take any stride-32 size; a static ONNX
    or TorchScript export takes only its own (Ultralytics would silently
    rescale every frame to it). An engine's is read when it loads; a
    PyTorch model's is learnt from one small prediction.
    """
    if not model.input_shape_found and model.engine is None:
        if model.yolo.predictor is None or type(model.yolo.predictor) is not _PREDICTOR_CLASS:
            predict_with_ultralytics(np.zeros((64, 64, 3), np.uint8), model, PredictSettings())
        backend = model.yolo.predictor.model
        imgsz = getattr(backend, "imgsz", None)
        model.input_shape = None
        if imgsz and not getattr(backend, "dynamic", False):
            model.input_shape = (int(imgsz[0]), int(imgsz[1]))
        model.input_shape_found = True
    return model.input_shape


def _collect(
    bgr: np.ndarray,
    model: LoadedModel,
    settings: PredictSettings,
    painter: MaskPainter,
    origin: tuple[int, int] = (0, 0),
    owner=None,
    within: tuple[int, int] | None = None,
) -> None:
    """Paint the instances of one window into ``painter`` (at ``origin``, frame coordinates).

    ``within``: the ``(height, width)`` of the window's own pixels when it was
    padded; masks are cut to it and cells only in the padding are dropped.
    ``owner``: whether a box centre (frame coordinates) belongs to this window.
    """
    with _raw_instances_held(bgr, model, settings) as raw:
        selected = None
        if owner is not None:
            selected = np.array(
                [owner(origin[0] + (y1 + y2) / 2, origin[1] + (x1 + x2) / 2) for x1, y1, x2, y2 in raw.boxes],
                dtype=bool,
            )
        painter.add_instances(raw, bgr.shape[:2], origin, within, selected)


def segment_frame(
    frame: np.ndarray,
    model: LoadedModel | str | None = None,
    settings: PredictSettings | None = None,
    tile: bool | None = None,
    polarity: Polarity | None = None,
) -> Segmentation:
    """Segment one 2-D frame (gray, RGB or RGBA, any real dtype).

    Cells keep their pixel size: frames up to ``imgsz`` run at their own
    resolution (Ultralytics alone would upscale a small frame to ``imgsz``),
    larger ones in overlapping tiles merged across the seams.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3|4)`` image.
    model : LoadedModel or path, optional
        Model or weights; the shipped default when omitted.
    settings : PredictSettings, optional
        Confidence, NMS IoU and image size (0.4 / 0.6 / 704 by default).
    tile : bool, optional
        ``None`` (default) tiles only frames larger than the model input;
        ``True`` always tiles; ``False`` runs the whole frame at once,
        downscaled to ``imgsz`` if larger.
    polarity : Polarity, optional
        A :func:`frame_polarity` decision made already; otherwise the
        frame's modality is decided from ``settings.modality`` (``auto``: from
        its pixels) and a frame whose polarity differs from the model's is
        inverted before inference.

    Returns
    -------
    Segmentation
    """
    from napari_livecell.core.steps import drain

    return drain(segment_frame_steps(frame, model, settings, tile, polarity))


def segment_frame_steps(
    frame: np.ndarray,
    model: LoadedModel | str | None = None,
    settings: PredictSettings | None = None,
    tile: bool | None = None,
    polarity: Polarity | None = None,
) -> Generator[tuple[int, int], None, Segmentation]:
    """:func:`segment_frame` as a generator that yields ``(tiles done, tiles)``.

    For progress bars and cancel buttons that act within a large frame;
    the :class:`Segmentation` is the generator's return value. ``polarity``,
    when given, is the caller's :func:`frame_polarity` decision (so that it
    can report it); otherwise it is decided here from ``settings.modality``.
    """
    model = load_model(model)
    settings = settings or PredictSettings()
    frame = np.asarray(frame)
    # decided once for the frame; each window is converted (and inverted) only when it runs,
    # so that memory is the frame, its labels and one window's worth, whatever the frame's size
    scale = uint8_scale(frame)
    check_frame_shape(frame)
    height, width = shape = frame.shape[:2]
    if _converts_to_one_value(frame, scale):
        # a blank frame holds no cells at any size; no need to ask the network
        yield 1, 1
        empty = np.zeros(0)
        return Segmentation.from_painted(np.zeros(shape, np.int32), empty, empty, dict(model.class_names))
    if polarity is None:
        polarity = frame_polarity(frame, settings, model.modality, scale=scale)

    def network_input(window: np.ndarray) -> np.ndarray:
        # a gray frame stays one channel until the network's tensor (three equal planes): its
        # padding and tensor read a third of the bytes, and no BGR copy is made
        image = np.ascontiguousarray(scale.apply(window)) if window.ndim == 2 else scale.bgr(window)
        return invert(image) if polarity.inverted else image

    fixed = model_input_shape(model)
    window = fixed or (settings.imgsz, settings.imgsz)
    fits = height <= window[0] and width <= window[1]
    if tile is None:
        tile = not fits
    painter = MaskPainter(shape)
    if tile:
        from napari_livecell.core.inference.tiling import DEFAULT_OVERLAP, tile_grid

        overlap = min(DEFAULT_OVERLAP, min(window) // 4)
        parts = tile_grid(shape, window, overlap)
        for done, part in enumerate(parts, start=1):
            piece = network_input(frame[part.row, part.col])
            corner = (part.row.start, part.col.start)
            _collect_native(piece, model, settings, fixed, painter, corner, part.owns)
            yield done, len(parts)
    else:
        bgr = network_input(frame)
        if fits:
            _collect_native(bgr, model, settings, fixed, painter)
        else:
            _collect(bgr, model, settings, painter)  # downscaled to imgsz, as asked
        yield 1, 1
    labels, _, scores, classes = painter.finish()
    names = dict(model.class_names)
    return Segmentation.from_painted(labels, scores, classes, names, painter.boxes, painter.areas)


def _converts_to_one_value(frame: np.ndarray, scale: Uint8Scale) -> bool:
    """Whether the network would see one gray level everywhere (alpha aside)."""
    if scale.kind in ("uint8", "bool"):
        colours = frame if frame.ndim == 2 else frame[:, :, :3]
        return bool(colours.min() == colours.max())
    # a stretch maps its low and high percentiles, real pixels of the frame, to 0 and 255
    return scale.kind == "blank"


def _collect_native(
    bgr: np.ndarray,
    model: LoadedModel,
    settings: PredictSettings,
    fixed: tuple[int, int] | None,
    painter: MaskPainter,
    origin: tuple[int, int] = (0, 0),
    owner=None,
) -> None:
    """Paint the instances of a window no larger than the network input, at its own pixel size.

    The window is padded (bottom and right) with its own background up to the
    network's input: a static export's fixed shape, else the next multiple of
    the stride, and at least :data:`MIN_NETWORK_SIDE`. Ultralytics' letterbox
    then neither scales nor pads it; its constant gray border (114) around a
    dark or bright frame had an edge the model read as a cell's.
    """
    if fixed:
        target = fixed
        run = settings
    else:
        least = min(MIN_NETWORK_SIDE, STRIDE * math.ceil(settings.imgsz / STRIDE))
        target = tuple(max(least, STRIDE * math.ceil(side / STRIDE)) for side in bgr.shape[:2])
        run = replace(settings, imgsz=max(target))
    _collect(_pad_with_background(bgr, target), model, run, painter, origin, owner, bgr.shape[:2])


def _pad_with_background(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pad a BGR or gray frame at the bottom and right up to ``shape`` with its median colour.

    The median is the background in all but the most confluent frames, so the
    padding reads as more empty dish, with no edge at the frame's border.
    """
    height, width = image.shape[:2]
    if height >= shape[0] and width >= shape[1]:
        return image
    colour = tuple(int(value) for value in _median_colour(image))
    return pad_constant(image, 0, max(0, shape[0] - height), 0, max(0, shape[1] - width), colour)


def _median_colour(image: np.ndarray) -> np.ndarray:
    """``np.median(image.reshape(-1, channels), axis=0).astype(np.uint8)`` from histograms (~10x faster).

    Of an even number of pixels the median is the mean of the two middle
    values, truncated to an integer as numpy's ``astype`` does.
    """
    counts = image_histograms(np.ascontiguousarray(image)).cumsum(axis=1)
    n = counts[0, -1]
    lower = [int(np.searchsorted(c, (n - 1) // 2, side="right")) for c in counts]
    upper = [int(np.searchsorted(c, n // 2, side="right")) for c in counts]
    return np.array([(a + b) // 2 for a, b in zip(lower, upper)], np.uint8)


def iter_frames(
    image: np.ndarray, rgb: bool | None = None, start: int = 0
) -> tuple[tuple[int, ...], Iterator]:
    """Split an image of any leading axes into 2-D frames, lazily.

    Parameters
    ----------
    image : array-like
        numpy or dask array: ``(..., H, W)`` or, when ``rgb``, ``(..., H, W, 3|4)``.
    rgb : bool, optional
        Whether the last axis holds colour channels; guessed (last axis of
        length 3 or 4) when omitted.
    start : int
        Skip the frames before this one (C order of the leading axes), unread:
        a run that resumes after its last finished frame.

    Returns
    -------
    leading_shape : tuple of int
        Shape of the leading (non-spatial) axes, ``()`` for a single frame.
    frames : iterator of (index, numpy.ndarray)
        Each frame's leading index and its data, computed when reached.
    """
    shape = tuple(image.shape)
    if rgb is None:
        rgb = len(shape) >= 3 and shape[-1] in (3, 4)
    spatial = 3 if rgb else 2
    if len(shape) < spatial:
        raise InputError(f"an image needs at least 2 spatial axes, got shape {shape}")
    if rgb and shape[-1] not in (3, 4):
        raise InputError(f"an RGB image needs 3 or 4 channels last, got shape {shape}")
    if min(shape[-spatial:][:2]) < 8:
        raise InputError(f"frames of {shape[-spatial:][:2]} pixels are too small to segment")
    leading = shape[:-spatial]

    def frames():
        from itertools import islice

        from napari_livecell.core.images import is_lazy, iter_lazy_frames

        indices = islice(np.ndindex(*leading), start, None)
        if leading and is_lazy(image):
            source, source_leading = image, leading
            if start:  # one flat axis of frames, sliced: the frames before ``start`` are never read
                source = image.reshape(-1, *shape[len(leading) :])[start:]
                source_leading = source.shape[:1]
            for index, (_, frame) in zip(indices, iter_lazy_frames(source, source_leading)):
                yield index, frame
            return
        if not leading and is_lazy(image):  # here, not on a Dask client that may be the default
            yield (), np.asarray(image.compute(scheduler="threads"))
            return
        for index in indices:
            yield index, np.asarray(image[index] if index else image)

    return leading, frames()


def segment(
    image: np.ndarray,
    model: LoadedModel | str | None = None,
    settings: PredictSettings | None = None,
    rgb: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    tile: bool | None = None,
) -> Segmentation | list[Segmentation]:
    """Segment a frame or every frame of a stack.

    Parameters
    ----------
    image : array-like
        ``(H, W)``, ``(H, W, 3|4)`` or a stack with any leading axes, numpy or
        dask; stacks are read one frame at a time.
    model, settings, tile
        As for :func:`segment_frame`.
    rgb : bool, optional
        Whether the last axis is colour (guessed when omitted).
    progress : callable, optional
        ``progress(done, total)`` after each frame.
    should_stop : callable, optional
        Checked before each frame; returning True raises :class:`Cancelled`.

    Returns
    -------
    Segmentation or list of Segmentation
        One result for a single frame; a flat list in C order for a stack.
    """
    model = load_model(model)
    leading, frames = iter_frames(image, rgb)
    total = int(np.prod(leading)) if leading else 1
    results = []
    for done, (_, frame) in enumerate(frames, start=1):
        if should_stop is not None and should_stop():
            raise Cancelled(f"cancelled after {done - 1} of {total} frames")
        results.append(segment_frame(frame, model, settings, tile))
        if progress is not None:
            progress(done, total)
    return results if leading else results[0]
