"""The mask painter: higher scores on top, one piece per cell, ids and measurements consistent.

Against a plain reference written with numpy and ``scipy.ndimage.label``:
masks painted in ascending score order, then each id's 4-connected pieces,
all but the largest cleared (of equal sizes, the piece whose first pixel
comes first in raster order), ids renumbered ``1..K`` in order of painting.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from napari_livecell.core.inference.masks import MaskPainter


def _reference(
    masks: list[tuple[float, int, int, np.ndarray]], shape: tuple[int, int]
) -> tuple[np.ndarray, list[int]]:
    labels = np.zeros(shape, np.int32)
    scores = np.full(len(masks) + 1, -np.inf)
    for index, (score, row, col, mask) in enumerate(masks, start=1):
        scores[index] = score
        mask = mask[: max(0, shape[0] - row), : max(0, shape[1] - col)]
        region = labels[row : row + mask.shape[0], col : col + mask.shape[1]]
        wins = mask & (scores[region] <= score)
        region[wins] = index
    kept = []
    for index in range(1, len(masks) + 1):
        pieces, n_pieces = ndi.label(labels == index)  # 4-connected; numbered in raster order
        if n_pieces == 0:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        labels[(pieces > 0) & (pieces != np.argmax(sizes) + 1)] = 0
        kept.append(index - 1)
    renumbered = np.zeros(len(masks) + 1, np.int32)
    renumbered[np.array(kept, int) + 1] = np.arange(1, len(kept) + 1)
    return renumbered[labels], kept


@st.composite
def _instances(draw):
    height, width = draw(st.integers(4, 40)), draw(st.integers(4, 40))
    masks = []
    for _ in range(draw(st.integers(1, 12))):
        h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
        row, col = draw(st.integers(0, height + 2)), draw(st.integers(0, width + 2))
        seed = draw(st.integers(0, 2**31))
        mask = np.random.default_rng(seed).random((h, w)) < draw(st.floats(0.3, 1.0))
        score = draw(st.sampled_from([0.5, 0.6, 0.7, 0.9]))  # repeated scores: ties happen
        masks.append((score, row, col, mask))
    return (height, width), masks


@settings(max_examples=200, deadline=None)
@given(_instances())
def test_painter_keeps_the_largest_piece_of_each_cell(case):
    shape, masks = case
    painter = MaskPainter(shape)
    for score, row, col, mask in masks:
        painter.add(score, row, col, mask)
    labels, kept, scores, _ = painter.finish()
    expected, expected_kept = _reference(masks, shape)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(kept, expected_kept)
    np.testing.assert_array_equal(scores, [masks[index][0] for index in expected_kept])
    # the ids' boxes and areas measured on the way are the label image's own
    n_cells = len(expected_kept)
    np.testing.assert_array_equal(painter.areas[1:], np.bincount(labels.ravel(), minlength=n_cells + 1)[1:])
    for index, slices in enumerate(ndi.find_objects(labels), start=1):
        rows, cols = slices
        assert tuple(painter.boxes[index]) == (rows.start, rows.stop, cols.start, cols.stop)


def test_a_cell_cut_in_two_by_a_better_one_keeps_its_larger_half():
    painter = MaskPainter((10, 12))
    painter.add(0.5, 2, 0, np.ones((3, 12), bool))  # a long cell ...
    painter.add(0.9, 0, 4, np.ones((10, 2), bool))  # ... cut by a better one: 4 px left, 6 right
    labels, kept, _, _ = painter.finish()
    assert list(kept) == [0, 1]
    assert np.count_nonzero(labels == 1) == 18 and labels[2:5, 6:].min() == 1
    assert not np.any(labels[:, :4] == 1)
