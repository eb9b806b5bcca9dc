"""Prediction vs ground truth for one frame: which cells are right, extra or missed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .matching import match_cells

TRUE_POSITIVE, FALSE_POSITIVE, MISSED = 1, 2, 3
COLORS = {TRUE_POSITIVE: "limegreen", FALSE_POSITIVE: "red", MISSED: "deepskyblue"}


@dataclass
class FrameComparison:
    """Counts, AP and an overlay (1 matched, 2 false positive, 3 missed)."""

    true_positives: int
    false_positives: int
    missed: int
    ap50: float
    ap: float
    overlay: np.ndarray

    def summary(self) -> str:
        """One line for a status bar."""
        return (
            f"{self.true_positives} matched, {self.false_positives} false positive, "
            f"{self.missed} missed; AP50 {self.ap50:.3f}, AP {self.ap:.3f}"
        )


def compare_frame(
    truth: np.ndarray, predicted: np.ndarray, scores: dict[int, float] | None = None
) -> FrameComparison:
    """Match predicted cells to ground truth (mask IoU >= 0.5) and compute AP.

    Parameters
    ----------
    truth, predicted : numpy.ndarray
        ``(H, W)`` label images.
    scores : dict, optional
        Predicted id -> confidence (1.0 for all when omitted).
    """
    from napari_livecell.core.analysis.evaluate import evaluate
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.segmentation import Segmentation

    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    match = match_cells(truth, predicted, 0.5)
    overlay = np.zeros(truth.shape, dtype=np.uint8)
    matched_predictions = np.isin(predicted, match.predicted_ids)
    overlay[(predicted > 0) & ~matched_predictions] = FALSE_POSITIVE
    overlay[matched_predictions] = TRUE_POSITIVE
    missed_cells = (truth > 0) & ~np.isin(truth, match.reference_ids) & (overlay == 0)
    overlay[missed_cells] = MISSED
    n_truth = match.n_reference
    ap50 = ap = 0.0
    if n_truth:
        max_id = int(predicted.max())
        score_array = np.ones(max_id, np.float32)
        for cell, score in (scores or {}).items():
            if 0 < cell <= max_id:
                score_array[cell - 1] = score
        gt = build_coco([CocoImage(1, "frame", Segmentation.from_labels(truth))])
        pred = build_coco(
            [CocoImage(1, "frame", Segmentation.from_labels(predicted, scores=score_array))],
            with_scores=True,
        )
        report = evaluate(gt, pred)
        ap50, ap = report["segm"]["AP50"], report["segm"]["AP"]
    return FrameComparison(
        true_positives=match.n_matched,
        false_positives=match.n_predicted - match.n_matched,
        missed=n_truth - match.n_matched,
        ap50=ap50,
        ap=ap,
        overlay=overlay,
    )
