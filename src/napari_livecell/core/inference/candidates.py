"""The network's candidate cells in one window of a frame, each with its own mask.

A segmentation run keeps the instances above the confidence threshold and
paints them into one label image, each pixel to the best-scoring mask. The
model's help in proofreading needs what that run throws away: the instances
below the threshold, and every mask whole, overlaps included (a merged pair
and its two halves are all candidates for the same place). This module runs
the network on a window of a frame through the same steps as the frame
recipe (the frame's own 8-bit conversion and polarity, the model's pixel
size, padding with the window's background) and decodes each kept instance
to its own box-sized mask on the frame's grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from napari_livecell.core.models.model import LoadedModel

from .frame_input import Uint8Scale, invert
from .masks import RawInstances, proto_to_image_matrices
from .pixel_size import resample_frame
from .predict import (
    MIN_NETWORK_SIDE,
    STRIDE,
    PredictSettings,
    _pad_with_background,
    model_input_shape,
    predict_raw,
)

CANDIDATE_CONF = 0.01  # far below any threshold a run uses: what the network saw, however unsure
CANDIDATE_IOU = 0.7  # NMS keeps overlapping alternatives (a merged pair beside its halves)
CANDIDATE_MAX = 300


@dataclass(frozen=True)
class Candidate:
    """One instance the network proposed: its score and its mask, a box of the frame.

    Attributes
    ----------
    score : float
        The network's confidence.
    row, col : int
        The frame pixel of the mask's top-left corner.
    mask : numpy.ndarray
        Boolean box-sized mask (one connected piece).
    """

    score: float
    row: int
    col: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        """Pixels of the mask."""
        return int(np.count_nonzero(self.mask))

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(row0, col0, row1, col1)``, half-open, in frame pixels."""
        return self.row, self.col, self.row + self.mask.shape[0], self.col + self.mask.shape[1]

    def contains(self, row: int, col: int) -> bool:
        """Whether the frame pixel ``(row, col)`` belongs to the mask."""
        r, c = row - self.row, col - self.col
        return 0 <= r < self.mask.shape[0] and 0 <= c < self.mask.shape[1] and bool(self.mask[r, c])

    def on(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask as a full boolean image of ``shape``."""
        full = np.zeros(shape, bool)
        full[self.row : self.row + self.mask.shape[0], self.col : self.col + self.mask.shape[1]] = self.mask
        return full


def window_input(
    frame: np.ndarray, box: tuple[int, int, int, int], scale: Uint8Scale, inverted: bool, zoom: float
) -> np.ndarray:
    """A window of the frame as the network sees it: 8-bit by the frame's own scale, polarity, resampled.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3|4)`` frame of any real dtype.
    box : tuple of int
        ``(row0, col0, row1, col1)`` of the window, half-open.
    scale : Uint8Scale
        The whole frame's conversion to 8 bits (a window's own stretch would differ).
    inverted : bool
        Whether the frame is inverted for the model (:class:`.frame_input.Polarity`).
    zoom : float
        The window's scale factor (the model's pixel size, times any upscaling).
    """
    r0, c0, r1, c1 = box
    window = frame[r0:r1, c0:c1]
    image = np.ascontiguousarray(scale.apply(window)) if window.ndim == 2 else scale.bgr(window)
    if inverted:
        image = invert(image)
    if not math.isclose(zoom, 1.0):
        image = resample_frame(image, zoom)
    return np.ascontiguousarray(image)


def network_side(model: LoadedModel, settings: PredictSettings, wanted: int) -> int:
    """The side of a square network input near ``wanted`` px that ``model`` accepts.

    A static export takes only its own shape; others any multiple of the stride.
    """
    fixed = model_input_shape(model)
    if fixed:
        return min(fixed)
    return max(MIN_NETWORK_SIDE, STRIDE * math.ceil(min(wanted, settings.imgsz) / STRIDE))


def window_candidates(
    frame: np.ndarray,
    box: tuple[int, int, int, int],
    model: LoadedModel,
    settings: PredictSettings,
    scale: Uint8Scale,
    inverted: bool,
    zoom: float = 1.0,
    conf: float = CANDIDATE_CONF,
) -> list[Candidate]:
    """Every instance the network proposes in one window, above ``conf``, each with its own mask.

    Parameters
    ----------
    frame : numpy.ndarray
        The whole frame (any real dtype, gray or colour).
    box : tuple of int
        ``(row0, col0, row1, col1)`` window, half-open; at ``zoom`` it must fit the network input.
    model : LoadedModel
        Any local runtime (:func:`.predict.predict_raw`).
    settings : PredictSettings
        The run's settings; its confidence and NMS overlap are replaced by the candidates' own.
    scale, inverted
        The frame's 8-bit conversion and polarity (as the frame recipe decided them).
    zoom : float
        Scale of the window before the network (model pixel size, upscaling).
    conf : float
        Lowest score kept.

    Returns
    -------
    list of Candidate
        In descending score, masks on the frame's grid, cut to the window.
    """
    image = window_input(frame, box, scale, inverted, zoom)
    fixed = model_input_shape(model)
    if fixed:
        target = fixed
        run = replace(settings, conf=conf, iou=CANDIDATE_IOU, max_det=CANDIDATE_MAX)
    else:
        target = tuple(max(MIN_NETWORK_SIDE, STRIDE * math.ceil(side / STRIDE)) for side in image.shape[:2])
        run = replace(settings, conf=conf, iou=CANDIDATE_IOU, max_det=CANDIDATE_MAX, imgsz=max(target))
    if image.shape[0] > target[0] or image.shape[1] > target[1]:
        raise ValueError(f"a window of {image.shape[:2]} px does not fit the network input {target}")
    padded = _pad_with_background(image, target)
    raw = predict_raw(padded, model, run)
    return decode_candidates(raw, padded.shape[:2], image.shape[:2], box, zoom)


@lru_cache(maxsize=8)
def _maps(proto_shape: tuple[int, int], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return proto_to_image_matrices(proto_shape, shape)


def decode_candidates(
    raw: RawInstances,
    network_shape: tuple[int, int],
    within: tuple[int, int],
    box: tuple[int, int, int, int],
    zoom: float,
) -> list[Candidate]:
    """Each instance's own mask (Ultralytics' native masks, cut to its box), mapped onto the frame.

    Parameters
    ----------
    raw : RawInstances
        The network's instances, boxes in network-input pixels.
    network_shape : tuple of int
        ``(height, width)`` of the network input (the padded window).
    within : tuple of int
        ``(height, width)`` of the window's own pixels (the rest is padding).
    box : tuple of int
        The window on the frame, ``(row0, col0, row1, col1)``.
    zoom : float
        The window's scale factor: masks come back to the frame's grid by
        nearest neighbour (:func:`.pixel_size.labels_to_grid`'s pixel centres).
    """
    n_protos, mh, mw = raw.protos.shape
    row_map, col_map = _maps((int(mh), int(mw)), (int(network_shape[0]), int(network_shape[1])))
    protos = raw.protos.reshape(n_protos, -1).astype(np.float32)
    r0, c0, r1, c1 = box
    # the window's actual scale per axis (sizes are rounded to whole pixels)
    scale_r, scale_c = within[0] / (r1 - r0), within[1] / (c1 - c0)
    found = []
    for (x1, y1, x2, y2), score, coefficients in zip(raw.boxes, raw.scores, raw.coefficients):
        top, left = max(0, math.ceil(y1)), max(0, math.ceil(x1))
        bottom, right = min(within[0], math.ceil(y2)), min(within[1], math.ceil(x2))
        if bottom <= top or right <= left:
            continue
        logits = (coefficients.astype(np.float32) @ protos).reshape(mh, mw)
        mask = row_map[top:bottom] @ logits @ col_map[left:right].T > 0
        if not mask.any():
            continue
        if not math.isclose(zoom, 1.0):
            mask, top, left = _to_frame_grid(mask, top, left, scale_r, scale_c)
            if mask is None:
                continue
        mask, top, left = _largest_piece(mask, top, left)
        found.append(Candidate(float(score), r0 + top, c0 + left, mask))
    found.sort(key=lambda candidate: -candidate.score)
    return found


def _to_frame_grid(
    mask: np.ndarray, top: int, left: int, scale_r: float, scale_c: float
) -> tuple[np.ndarray | None, int, int]:
    """A mask of the resampled window on the window's own grid: each pixel the mask under its centre."""
    first_r, first_c = math.floor(top / scale_r), math.floor(left / scale_c)
    last_r, last_c = math.ceil((top + mask.shape[0]) / scale_r), math.ceil((left + mask.shape[1]) / scale_c)
    rows = np.floor((np.arange(first_r, last_r) + 0.5) * scale_r).astype(np.intp) - top
    cols = np.floor((np.arange(first_c, last_c) + 0.5) * scale_c).astype(np.intp) - left
    keep_r = (rows >= 0) & (rows < mask.shape[0])
    keep_c = (cols >= 0) & (cols < mask.shape[1])
    if not keep_r.any() or not keep_c.any():
        return None, 0, 0
    out = mask[rows[keep_r][:, None], cols[keep_c][None, :]]
    if not out.any():
        return None, 0, 0
    return out, first_r + int(np.argmax(keep_r)), first_c + int(np.argmax(keep_c))


def _largest_piece(mask: np.ndarray, top: int, left: int) -> tuple[np.ndarray, int, int]:
    """The mask's largest connected piece, cropped to its own box (as a run keeps one piece a cell)."""
    pieces, n = ndi.label(mask)
    if n > 1:
        mask = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.ascontiguousarray(mask), top + int(rows[0]), left + int(cols[0])
