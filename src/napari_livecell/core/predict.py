"""Segmenting frames: image in, :class:`Segmentation` out.

Ultralytics does the letterboxing, the network forward pass and NMS. The masks
are made here, the cheap way: each cell's mask is computed only inside its box,
directly at image resolution, from the prototype masks. The row and column
resampling that Ultralytics' ``retina_masks`` applies to the whole prototype
stack is separable, so it is expressed as two small matrices and applied per
box; the result equals Ultralytics' masks while memory stays at one label
image instead of cells x height x width floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from napari_livecell.core.model import LoadedModel, load_model
from napari_livecell.core.segmentation import Segmentation

DEFAULT_CONF = 0.4
DEFAULT_IOU = 0.6
DEFAULT_IMGSZ = 704
MAX_DETECTIONS = 3000  # LIVECell images hold up to a few thousand cells
NORMALIZE_PERCENTILES = (0.1, 99.9)


class InputError(ValueError):
    """An image that cannot be segmented, with the reason in the message."""


class Cancelled(RuntimeError):
    """Raised when a cancel check asks to stop between frames."""


@dataclass(frozen=True)
class PredictSettings:
    """Thresholds and sizes of one segmentation run."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    imgsz: int = DEFAULT_IMGSZ
    max_det: int = MAX_DETECTIONS

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"conf must be in 0..1, got {self.conf}")
        if not 0.0 <= self.iou <= 1.0:
            raise ValueError(f"iou must be in 0..1, got {self.iou}")
        if self.imgsz < 32:
            raise ValueError(f"imgsz must be >= 32, got {self.imgsz}")


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Scale a 2-D or RGB frame to uint8, the same way for every dtype.

    uint8 frames are returned unchanged (models are trained on them). Other
    integer and float frames are stretched linearly so that the 0.1th and
    99.9th percentiles map to 0 and 255 (a constant frame maps to 0). Ultralytics
    would instead keep only the top byte of uint16 data (12-bit images become
    black) and read floats as 0..255.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array of any real dtype.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape.
    """
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == bool:
        return frame.astype(np.uint8) * 255
    if not (np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating)):
        raise InputError(f"cannot segment an image of dtype {frame.dtype}")
    values = frame.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, np.nan)
    low, high = np.nanpercentile(values, NORMALIZE_PERCENTILES)
    if not np.isfinite(low) or high <= low:
        return np.zeros(frame.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Make a 3-channel uint8 BGR frame (what Ultralytics expects) from gray/RGB(A)."""
    frame = to_uint8(frame)
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        return np.ascontiguousarray(frame[:, :, 2::-1])
    raise InputError(f"a frame must be (H, W) or (H, W, 3|4), got shape {frame.shape}")


def _resize_matrix(n_in: int, n_out: int, scale: float | None = None) -> np.ndarray:
    """``(n_out, n_in)`` matrix of PyTorch's 1-D bilinear resize (align_corners=False)."""
    ratio = 1.0 / scale if scale else n_in / n_out
    source = np.clip((np.arange(n_out) + 0.5) * ratio - 0.5, 0, None)
    lower = np.minimum(np.floor(source).astype(int), n_in - 1)
    upper = np.minimum(lower + 1, n_in - 1)
    weight = source - lower
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, lower), 1 - weight)
    np.add.at(matrix, (rows, upper), weight)
    return matrix


def proto_to_image_matrices(
    proto_shape: tuple[int, int], image_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column maps from prototype grid to image pixels.

    They reproduce Ultralytics' ``process_mask_native``: an integer upsampling
    that lets the letterbox padding be cropped on whole pixels, the crop, then
    a bilinear resize to the image size.

    Returns
    -------
    tuple of numpy.ndarray
        ``(H, mh)`` and ``(W, mw)`` float32 matrices.
    """
    mh, mw = proto_shape
    h, w = image_shape
    gain = min(4 * mh / h, 4 * mw / w)
    pad = (4 * mh - max(round(h * gain), 1)) | (4 * mw - max(round(w * gain), 1))
    factor = 4 // math.gcd(4, pad | pad // 2)
    up_h, up_w = mh * factor, mw * factor
    gain = min(up_h / h, up_w / w)
    pad_w = (up_w - max(round(w * gain), 1)) / 2
    pad_h = (up_h - max(round(h * gain), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = top + max(round(h * gain), 1), left + max(round(w * gain), 1)
    rows = _resize_matrix(bottom - top, h) @ _resize_matrix(mh, up_h, factor)[top:bottom]
    cols = _resize_matrix(right - left, w) @ _resize_matrix(mw, up_w, factor)[left:right]
    return rows, cols


def _support(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nonzero = matrix != 0
    first = nonzero.argmax(axis=1)
    last = matrix.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)
    return first, last + 1


def paint_instances(
    boxes: np.ndarray,
    coefficients: np.ndarray,
    protos: np.ndarray,
    image_shape: tuple[int, int],
    scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint every instance's mask into one label image, higher scores on top.

    Parameters
    ----------
    boxes : numpy.ndarray
        ``(N, 4)`` xyxy boxes in image pixels.
    coefficients : numpy.ndarray
        ``(N, C)`` mask coefficients.
    protos : numpy.ndarray
        ``(C, mh, mw)`` prototype masks of the letterboxed input.
    image_shape : tuple of int
        ``(H, W)`` of the original image.
    scores : numpy.ndarray
        ``(N,)`` confidences; they decide who owns overlapping pixels.

    Returns
    -------
    labels : numpy.ndarray
        ``(H, W)`` int32, instance ``i`` painted as ``i + 1`` where it won.
    kept : numpy.ndarray
        Indices of instances that own at least one pixel, in label order.
    """
    height, width = image_shape
    labels = np.zeros(image_shape, dtype=np.int32)
    if len(boxes) == 0:
        return labels, np.zeros(0, dtype=int)
    n_channels, mh, mw = protos.shape
    row_map, col_map = proto_to_image_matrices((mh, mw), image_shape)
    row_first, row_last = _support(row_map)
    col_first, col_last = _support(col_map)
    # ascending score: later (higher) cells overwrite earlier ones
    for index in np.argsort(scores, kind="stable"):
        x1, y1, x2, y2 = boxes[index]
        r0, r1 = max(0, math.ceil(y1)), min(height, math.ceil(y2))
        c0, c1 = max(0, math.ceil(x1)), min(width, math.ceil(x2))
        if r1 <= r0 or c1 <= c0:
            continue
        p0, p1 = row_first[r0], row_last[r1 - 1]
        q0, q1 = col_first[c0], col_last[c1 - 1]
        window = protos[:, p0:p1, q0:q1].reshape(n_channels, -1)
        logits = (coefficients[index] @ window).reshape(p1 - p0, q1 - q0)
        mask = row_map[r0:r1, p0:p1] @ logits @ col_map[c0:c1, q0:q1].T > 0
        labels[r0:r1, c0:c1][mask] = index + 1
    present = np.zeros(len(boxes) + 1, dtype=bool)
    present[np.unique(labels)] = True
    kept = np.flatnonzero(present[1:])
    lookup = np.zeros(len(boxes) + 1, dtype=np.int32)
    lookup[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return lookup[labels], kept


def _make_predictor_class():
    """An Ultralytics SegmentationPredictor that skips full-size mask decoding."""
    from ultralytics.engine.results import Results
    from ultralytics.models.yolo.segment import SegmentationPredictor
    from ultralytics.utils import ops

    class BoxAndProtoPredictor(SegmentationPredictor):
        def construct_result(self, pred, img, orig_img, img_path, proto):
            pred = pred.clone()
            pred[:, :4] = ops.scale_boxes(img.shape[2:], pred[:, :4], orig_img.shape)
            result = Results(orig_img, path=img_path, names=self.model.names, boxes=pred[:, :6])
            result.livecell_raw = (
                pred[:, :4].float().cpu().numpy(),
                pred[:, 4].float().cpu().numpy(),
                pred[:, 5].cpu().numpy().astype(np.int32),
                pred[:, 6:].float().cpu().numpy(),
                proto.float().cpu().numpy(),
            )
            return result

    return BoxAndProtoPredictor


_PREDICTOR_CLASS = None


def segment_frame(
    frame: np.ndarray,
    model: LoadedModel | str | None = None,
    settings: PredictSettings | None = None,
) -> Segmentation:
    """Segment one 2-D frame (gray, RGB or RGBA, any real dtype).

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3|4)`` image.
    model : LoadedModel or path, optional
        Model or weights; the shipped default when omitted.
    settings : PredictSettings, optional
        Confidence, NMS IoU and image size (0.4 / 0.6 / 704 by default).

    Returns
    -------
    Segmentation
    """
    global _PREDICTOR_CLASS
    model = load_model(model)
    settings = settings or PredictSettings()
    bgr = to_bgr(frame)
    if _PREDICTOR_CLASS is None:
        _PREDICTOR_CLASS = _make_predictor_class()
    with model.lock:  # one Ultralytics predictor per model is not thread-safe
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
    boxes, scores, classes, coefficients, protos = result.livecell_raw
    labels, kept = paint_instances(boxes, coefficients, protos, bgr.shape[:2], scores)
    return Segmentation.from_painted(labels, scores[kept], classes[kept], dict(model.class_names))


def iter_frames(image: np.ndarray, rgb: bool | None = None) -> tuple[tuple[int, ...], Iterator]:
    """Split an image of any leading axes into 2-D frames, lazily.

    Parameters
    ----------
    image : array-like
        numpy or dask array: ``(..., H, W)`` or, when ``rgb``, ``(..., H, W, 3|4)``.
    rgb : bool, optional
        Whether the last axis holds colour channels; guessed (last axis of
        length 3 or 4) when omitted.

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
        for index in np.ndindex(*leading):
            yield index, np.asarray(image[index] if index else image)

    return leading, frames()


def segment(
    image: np.ndarray,
    model: LoadedModel | str | None = None,
    settings: PredictSettings | None = None,
    rgb: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Segmentation | list[Segmentation]:
    """Segment a frame or every frame of a stack.

    Parameters
    ----------
    image : array-like
        ``(H, W)``, ``(H, W, 3|4)`` or a stack with any leading axes, numpy or
        dask; stacks are read one frame at a time.
    model, settings
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
        results.append(segment_frame(frame, model, settings))
        if progress is not None:
            progress(done, total)
    return results if leading else results[0]
