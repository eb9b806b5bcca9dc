import numpy as np

from napari_livecell.core.segmentation import (
    Segmentation,
    labels_to_polygons,
    mask_to_polygons,
    polygons_to_mask,
)
from napari_livecell.core.training.synthetic import synthesize_image


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
