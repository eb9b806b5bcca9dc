"""Outlines traced at the label image's resolution equal OpenCV's on each cell's doubled mask.

:func:`napari_livecell.core.segmentation.labels_to_polygons` (the compiled
tracer of ``_trace_kernel``) against OpenCV's ``findContours`` on the cell's
mask, doubled (:func:`.opencv_reference.opencv_rings`), cell by cell: the same rings,
points, start vertex and order of rings, on label images made to hold what
trips a border follower: holes (several per cell, touching the outside at a
corner), cells of several pieces, diagonal pinches, one-pixel cells and
lines, cells on the image's edges.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from napari_livecell.core.segmentation import labels_to_polygons, polygons_to_mask

from .opencv_reference import opencv_rings

pytest.importorskip("cv2")


def _assert_rings_equal_opencv(labels: np.ndarray) -> int:
    """Compare every cell's rings; return how many cells had holes or several pieces."""
    labels = labels.astype(np.int32)
    outlines = labels_to_polygons(labels)
    awkward = 0
    for index, (slices) in enumerate(ndi.find_objects(labels)):
        cell = index + 1
        if slices is None:
            assert outlines[index] == []
            continue
        expected = opencv_rings(labels[slices] == cell, (slices[0].start, slices[1].start))[0]
        got = outlines[index]
        assert len(got) == len(expected), f"cell {cell}: {len(got)} rings, OpenCV {len(expected)}"
        for ring, reference in zip(got, expected, strict=True):
            np.testing.assert_array_equal(ring, reference, err_msg=f"cell {cell}")
        awkward += len(expected) > 1
    return awkward


@settings(max_examples=150, deadline=None)
@given(
    arrays(np.int8, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.integers(0, 3)),
    st.booleans(),
)
def test_rings_equal_opencv_on_any_label_image(labels, smooth):
    if smooth:  # blobs with holes and pinches rather than noise
        labels = ndi.median_filter(labels, 3)
    _assert_rings_equal_opencv(labels)


def test_rings_equal_opencv_on_crafted_cells():
    labels = np.zeros((24, 30), np.int32)
    labels[1:12, 1:14] = 1  # three holes, one touching the outside at a corner
    labels[3, 3] = labels[3, 8] = labels[7, 5] = labels[7, 6] = 0
    labels[10, 12] = 0
    labels[11, 13] = 0
    labels[14, 2] = labels[15, 3] = labels[16, 4] = 2  # a diagonal line: three pieces
    labels[20:24, 0:3] = 3  # on the image's corner
    labels[21, 1] = 0
    labels[0, 29] = 4  # one pixel on the edge
    labels[14:20, 10:20] = 5  # a ring around a hole holding another cell
    labels[16:18, 13:16] = 6
    labels[19, 25:30] = 7  # a one-pixel line on the edge
    assert _assert_rings_equal_opencv(labels) >= 3


def test_rings_of_model_cells_fill_back_to_the_cells():
    rng = np.random.default_rng(3)
    labels = ndi.median_filter(rng.integers(0, 40, (120, 160)).astype(np.int32), 5)
    outlines = labels_to_polygons(labels)
    for index in np.unique(labels)[1:][:25] - 1:
        filled = polygons_to_mask(outlines[index], labels.shape)
        np.testing.assert_array_equal(filled, labels == index + 1)
