"""One-to-one matching of cells between two label images by mask IoU."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CellMatch:
    """Result of matching a reference label image to a predicted one.

    Attributes
    ----------
    reference_ids, predicted_ids : numpy.ndarray
        Matched label ids, pairwise.
    ious : numpy.ndarray
        Mask IoU of each matched pair.
    n_reference, n_predicted : int
        Number of cells in each image.
    """

    reference_ids: np.ndarray
    predicted_ids: np.ndarray
    ious: np.ndarray
    n_reference: int
    n_predicted: int

    @property
    def n_matched(self) -> int:
        """Number of matched pairs."""
        return len(self.ious)


def pairwise_iou(reference: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """IoU of every overlapping (reference, predicted) pair of cells.

    Returns
    -------
    reference_ids, predicted_ids, ious : numpy.ndarray
        One entry per pair that shares at least one pixel.
    """
    reference = np.asarray(reference).ravel().astype(np.int64)
    predicted = np.asarray(predicted).ravel().astype(np.int64)
    if reference.shape != predicted.shape:
        raise ValueError("label images must have the same shape")
    reference_areas = np.bincount(reference)
    predicted_areas = np.bincount(predicted)
    both = (reference > 0) & (predicted > 0)
    stride = int(predicted.max()) + 1
    pairs, overlap = np.unique(reference[both] * stride + predicted[both], return_counts=True)
    reference_ids, predicted_ids = pairs // stride, pairs % stride
    union = reference_areas[reference_ids] + predicted_areas[predicted_ids] - overlap
    return reference_ids, predicted_ids, overlap / union


def match_cells(reference: np.ndarray, predicted: np.ndarray, iou_threshold: float = 0.5) -> CellMatch:
    """Greedily match cells, best IoU first, keeping pairs above a threshold.

    With ``iou_threshold >= 0.5`` each cell can overlap at most one partner
    that much, so the greedy matching is the optimal one.
    """
    reference_ids, predicted_ids, ious = pairwise_iou(reference, predicted)
    order = np.argsort(-ious, kind="stable")
    used_reference: set[int] = set()
    used_predicted: set[int] = set()
    keep = []
    for index in order:
        if ious[index] < iou_threshold:
            break
        r, p = int(reference_ids[index]), int(predicted_ids[index])
        if r in used_reference or p in used_predicted:
            continue
        used_reference.add(r)
        used_predicted.add(p)
        keep.append(index)
    kept = np.asarray(keep, dtype=int)
    return CellMatch(
        reference_ids=reference_ids[kept],
        predicted_ids=predicted_ids[kept],
        ious=ious[kept],
        n_reference=len(np.unique(reference[reference > 0])),
        n_predicted=len(np.unique(predicted[predicted > 0])),
    )
