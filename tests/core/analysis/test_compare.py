"""Compare to ground truth: counts, AP and the coloured overlay."""

import numpy as np

from napari_livecell.core.analysis.compare import FALSE_POSITIVE, MISSED, TRUE_POSITIVE, compare_frame


def damaged_prediction(truth: np.ndarray) -> np.ndarray:
    predicted = truth.copy()
    predicted[np.isin(predicted, [1, 2, 3])] = 0  # three missed cells
    predicted[:6, :6] = truth.max() + 1  # one false positive in a corner
    return predicted


def test_counts_and_ap(small_frame):
    truth = small_frame.labels.copy()
    truth[:6, :6] = 0
    comparison = compare_frame(truth, damaged_prediction(truth))
    assert comparison.missed == 3 and comparison.false_positives == 1
    assert comparison.true_positives == len(np.unique(truth)) - 1 - 3
    assert 0.8 < comparison.ap50 < 1.0 and comparison.ap <= comparison.ap50
    assert (comparison.overlay[truth == 1] == MISSED).all()
    assert (comparison.overlay[:6, :6] == FALSE_POSITIVE).all()
    assert (comparison.overlay == TRUE_POSITIVE).sum() > 0
    perfect = compare_frame(truth, truth)
    assert perfect.ap == 1.0 and perfect.missed == perfect.false_positives == 0


def test_widget_adds_the_overlay_and_shows_ap(make_napari_viewer, small_frame):
    viewer = make_napari_viewer()
    truth = small_frame.labels.copy()
    truth[:6, :6] = 0
    viewer.add_labels(truth, name="truth")
    viewer.add_labels(damaged_prediction(truth), name="pred")
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Compare to ground truth")
    widget._truth.value = viewer.layers["truth"]
    widget._predicted.value = viewer.layers["pred"]
    comparison = widget.compare()
    assert "pred vs truth" in viewer.layers
    assert "3 missed" in widget._result.value and "AP50" in widget._result.value
    assert comparison.false_positives == 1
