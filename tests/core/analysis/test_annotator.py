"""The simulated annotator on hand-made cases, and with the model's help on a real frame."""

import numpy as np
import pytest

from napari_livecell.core.analysis.annotator import annotate, interior_point, mask_ap50


def disc(shape, center, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


@pytest.fixture
def truth():
    """Three round cells; 1 and 2 touch along column 30."""
    labels = np.zeros((64, 96), np.int32)
    labels[disc(labels.shape, (30, 20), 11)] = 1
    labels[disc(labels.shape, (30, 41), 11) & (labels == 0)] = 2
    labels[disc(labels.shape, (30, 75), 10)] = 3
    return labels


def cost_of(prediction, truth):
    cost = annotate(prediction, truth)
    assert cost.ap50 == pytest.approx(1.0)
    assert (cost.final > 0).sum() == (truth > 0).sum()
    return cost


def test_perfect_prediction_costs_nothing(truth):
    cost = cost_of(truth + (truth > 0) * 10, truth)  # other ids, same cells
    assert (cost.actions, cost.hand_drawn, cost.hand_perimeter) == (0, 0, 0.0)
    assert set(cost.by_kind.values()) == {0}


def test_a_missed_cell_is_drawn_by_hand(truth):
    prediction = np.where(truth == 3, 0, truth)
    assert mask_ap50(prediction, truth) < 0.7
    cost = cost_of(prediction, truth)
    assert (cost.actions, cost.hand_drawn) == (0, 1)
    assert 55 < cost.hand_perimeter < 70  # a disc of radius 10


def test_a_false_cell_is_one_delete(truth):
    prediction = truth.copy()
    prediction[2:8, 2:8] = 9
    cost = cost_of(prediction, truth)
    assert (cost.actions, cost.by_kind["delete"], cost.hand_drawn) == (1, 1, 0)


def test_two_cells_found_as_one_are_one_split(truth):
    prediction = np.where(truth == 2, 1, truth)
    cost = cost_of(prediction, truth)
    assert (cost.actions, cost.by_kind["split"], cost.hand_drawn) == (1, 1, 0)


def test_three_cells_found_as_one_are_two_splits():
    truth = np.zeros((40, 120), np.int32)
    truth[5:35, 5:40], truth[5:35, 40:75], truth[5:35, 75:110] = 1, 2, 3
    cost = cost_of((truth > 0).astype(np.int32), truth)
    assert (cost.actions, cost.by_kind["split"], cost.hand_drawn) == (2, 2, 0)


def test_a_cell_found_in_two_halves_is_one_merge(truth):
    prediction = truth.copy()
    prediction[(truth == 3) & (np.arange(96) >= 75)] = 7
    prediction[(truth == 3) & (np.arange(96)[None, :] == 75)] = 0  # the seam between the halves
    cost = cost_of(prediction, truth)
    assert (cost.actions, cost.by_kind["merge"], cost.hand_drawn) == (1, 1, 0)


def test_a_wrong_outline_is_redrawn(truth):
    prediction = truth.copy()
    prediction[disc(truth.shape, (30, 75), 6)] = 3  # far too small: IoU 0.4
    prediction[(truth == 3) & ~disc(truth.shape, (30, 75), 6)] = 0
    cost = cost_of(prediction, truth)
    assert (cost.actions, cost.hand_drawn) == (0, 1)


def test_interior_point_is_inside_and_away_from_the_edge(truth):
    row, col = interior_point(truth == 3)
    assert (row, col) == (30, 75)
    edge = np.zeros((10, 10), bool)
    edge[:, :4] = True
    assert interior_point(edge)[1] in (1, 2)


def test_bad_input_is_refused(truth):
    with pytest.raises(ValueError, match="one shape"):
        annotate(truth[:10], truth)


@pytest.fixture(scope="module")
def missed_at_high_confidence(default_model):
    """A tiny fresh frame, segmented by the shipped model at confidence 0.7: cells missed."""
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.training.synthetic import synthesize_image

    frame = synthesize_image(seed=3201, n_cells=24, shape=(160, 224))
    recipe = FrameRecipe.plan(default_model, PredictSettings(conf=0.7))
    return frame, recipe, recipe.segment(frame.image).segmentation


def test_the_model_brings_back_missed_cells(missed_at_high_confidence):
    from napari_livecell.core.analysis.annotator import missed_cells, pointing_recovery
    from napari_livecell.core.analysis.assist import CellAssistant

    frame, recipe, segmentation = missed_at_high_confidence
    truth, prediction = frame.labels, segmentation.labels
    assert len(missed_cells(prediction, truth)) >= 3
    assistant = CellAssistant(frame.image, recipe, segmentation.areas)
    recovered, empty, missed = pointing_recovery(prediction, truth, assistant)
    assert recovered >= 0.8 * empty >= 0.5 * missed

    brush = annotate(prediction, truth)
    assisted = annotate(prediction, truth, assistant)
    assert brush.hand_drawn >= missed
    assert assisted.by_kind["add"] >= recovered
    assert assisted.hand_drawn * 5 <= brush.hand_drawn
    assert assisted.ap50 == brush.ap50 == pytest.approx(1.0)
    assert len(np.unique(assisted.final[assisted.final > 0])) == truth.max()  # one cell per true cell
