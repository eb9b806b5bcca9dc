"""The compiled mask decoding and painting against its statement in numpy, instance by instance."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from napari_livecell.core.inference.masks import MaskPainter, RawInstances, _column_taps, _proto_maps
from napari_livecell.core.inference.predict import PredictSettings, _pad_with_background, predict_raw
from napari_livecell.core.training.synthetic import synthesize_image


def numpy_instance_masks(raw: RawInstances, image_shape: tuple[int, int]) -> Iterator[tuple]:
    """Each instance's mask inside its box, at image resolution: ``(index, row, col, mask)``.

    The prototypes' logits resampled to the image by the row and column maps
    and cut to the box (Ultralytics' ``crop_mask`` keeps pixel ``i`` when
    ``x1 <= i < x2``), one instance at a time in numpy.
    """
    height, width = image_shape
    n_channels, mh, mw = raw.protos.shape
    row_map, col_map, (row_first, row_last), (col_first, col_last) = _proto_maps(
        (int(mh), int(mw)), (int(height), int(width))
    )
    for index, (x1, y1, x2, y2) in enumerate(raw.boxes):
        r0, r1 = max(0, math.ceil(y1)), min(height, math.ceil(y2))
        c0, c1 = max(0, math.ceil(x1)), min(width, math.ceil(x2))
        if r1 <= r0 or c1 <= c0:
            continue
        p0, p1 = row_first[r0], row_last[r1 - 1]
        q0, q1 = col_first[c0], col_last[c1 - 1]
        window = raw.protos[:, p0:p1, q0:q1].reshape(n_channels, -1)
        logits = (raw.coefficients[index] @ window).reshape(p1 - p0, q1 - q0)
        mask = row_map[r0:r1, p0:p1] @ logits @ col_map[c0:c1, q0:q1].T > 0
        if mask.any():
            yield index, r0, c0, mask


def _painted_both_ways(raw: RawInstances, window: tuple[int, int]) -> tuple[tuple, tuple]:
    """``MaskPainter.finish()`` after the compiled painting, and after numpy's masks painted one by one."""
    compiled = MaskPainter(window)
    compiled.add_instances(raw, window)
    reference = MaskPainter(window)
    for index, row, col, mask in numpy_instance_masks(raw, window):
        reference.add(float(raw.scores[index]), row, col, mask)
    return compiled.finish(), reference.finish()


@pytest.mark.parametrize(
    ("imgsz", "taps"),
    [(704, 2), (352, 3)],  # the network's own size (YOLO-seg's 4x prototypes), and a frame scaled down
    ids=["native", "downscaled"],
)
def test_compiled_painting_equals_numpy(default_model, imgsz, taps):
    frame = synthesize_image(seed=9500, n_cells=500).image
    window = frame.shape[:2]
    if imgsz == 704:  # as segment_frame gives it: padded to the stride
        frame = _pad_with_background(frame, (544, 704))
        window = frame.shape[:2]
    raw = predict_raw(frame, default_model, PredictSettings(imgsz=imgsz))
    _, mh, mw = raw.protos.shape
    assert _column_taps((int(mh), int(mw)), window)[0].shape[1] == taps  # both of the kernel's paths
    (labels, kept, scores, _), (expected, expected_kept, expected_scores, _) = _painted_both_ways(raw, window)
    assert len(kept) == len(expected_kept) > 200
    np.testing.assert_array_equal(scores, expected_scores)
    # numpy sums the channels with BLAS, whose order differs from the kernel's: a pixel whose
    # logit is ~0 may fall either way (none did on this machine); a wrong tap or row moves many
    differing = np.count_nonzero(labels != expected)
    assert differing <= 1e-4 * np.count_nonzero(expected), f"{differing} pixels differ"


def test_of_equal_scores_the_later_instance_wins_whatever_order_the_kernel_paints_in(default_model):
    # the kernel paints the instances top to bottom (the order of their boxes), not in the order
    # given: every overlap of equal scores must still end with the later instance's id
    frame = _pad_with_background(synthesize_image(seed=9500, n_cells=500).image, (544, 704))
    window = frame.shape[:2]
    raw = predict_raw(frame, default_model, PredictSettings())
    raw.scores[:] = 0.5
    (labels, kept, _, _), (expected, expected_kept, _, _) = _painted_both_ways(raw, window)
    np.testing.assert_array_equal(kept, expected_kept)
    # pixels covered by two instances that the first instance keeps or loses
    contested = np.count_nonzero(labels != expected)
    assert contested <= 1e-4 * np.count_nonzero(expected), f"{contested} pixels differ"
