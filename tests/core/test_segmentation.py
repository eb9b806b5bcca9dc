import numpy as np
import pytest

from napari_livecell.core.segmentation import (
    Segmentation,
    labels_to_polygons,
    mask_rings,
    mask_to_polygons,
    polygons_to_mask,
)
from napari_livecell.core.training.synthetic import synthesize_image

from .opencv_reference import opencv_rings


def test_polygons_round_trip_every_touching_cell_exactly():
    labels = synthesize_image(seed=12, n_cells=500).labels
    for number, rings in enumerate(labels_to_polygons(labels), start=1):
        assert np.array_equal(polygons_to_mask(rings, labels.shape), labels == number)


def test_holes_and_two_part_cells_round_trip():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 5:25] = True
    mask[10:15, 10:15] = False  # a hole
    mask[30:35, 30:38] = True  # a second part
    rings = mask_to_polygons(mask)
    assert len(rings) == 3
    assert np.array_equal(polygons_to_mask(rings, mask.shape), mask)


def test_polygons_use_coco_continuous_coordinates():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:4, 3:6] = True  # rows 2-3, cols 3-5
    (ring,) = mask_to_polygons(mask)
    assert ring[:, 0].min() >= 3 and ring[:, 0].max() <= 6
    assert ring[:, 1].min() >= 2 and ring[:, 1].max() <= 4


def test_from_labels_makes_ids_consecutive_and_measures_cells():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[1:4, 1:5] = 7
    labels[10:15, 10:12] = 3
    result = Segmentation.from_labels(labels)
    assert result.n_cells == 2
    assert sorted(result.areas.tolist()) == [10, 12]
    assert set(np.unique(result.labels)) == {0, 1, 2}
    x, y, w, h = result.bboxes[result.labels[1, 1] - 1]
    assert (x, y, w, h) == (1, 1, 4, 3)


def test_mask_rings_equal_opencvs_for_parts_holes_and_islands():
    pytest.importorskip("cv2")
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    masks = [np.zeros((4, 4), bool), np.ones((1, 1), bool), np.eye(5, dtype=bool)]
    for trial in range(200):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        noise = rng.random(shape) < rng.uniform(0.2, 0.7)
        masks.append(ndi.binary_opening(noise) if trial % 3 == 0 else noise)
    frame = np.zeros((30, 30), bool)
    frame[2:28, 2:28], frame[6:24, 6:24], frame[10:20, 10:20] = True, False, True  # an island in a hole
    frame[12:14, 12:14] = False
    masks.append(frame)
    for mask in masks:
        offset = (int(rng.integers(0, 9)), int(rng.integers(0, 9)))
        rings, holes = mask_rings(mask, offset)
        expected, expected_holes = opencv_rings(mask, offset)
        assert holes == expected_holes
        assert len(rings) == len(expected)
        for ring, reference in zip(rings, expected):
            np.testing.assert_array_equal(ring, reference)


def test_cell_boxes_equal_find_objects():
    from scipy import ndimage as ndi

    from napari_livecell.core.segmentation import cell_boxes

    labels = synthesize_image(seed=5, n_cells=60).labels
    labels[labels == 7] = 0  # an absent id
    for image in (labels, labels.astype(np.uint16), labels[::2, 1::3], np.zeros((4, 4), np.int32)):
        assert cell_boxes(image) == ndi.find_objects(image)
