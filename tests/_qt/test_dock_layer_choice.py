"""Proofread, Measure and Track choose the obvious layer themselves and follow the layer list."""

import numpy as np
import pytest

from napari_livecell.core.training.synthetic import synthesize_timelapse

from .conftest import add_result


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=9, n_frames=3, n_cells=10, shape=(80, 96))


def press(viewer, key):
    handler = viewer.window._qt_viewer._key_map_handler
    handler.press_key(key)
    handler.release_key(key)


def point_at(viewer, cells, cell):
    rows, cols = np.nonzero(np.asarray(cells.data) == cell)
    viewer.cursor.position = (float(np.median(rows)), float(cols[np.argmin(np.abs(rows - np.median(rows)))]))
    assert int(cells.get_value(viewer.cursor.position, world=True)) == cell


def test_proofread_starts_on_the_result_and_its_keys_act(make_napari_viewer, small_frame):
    viewer = make_napari_viewer()
    viewer.add_labels(small_frame.labels.copy(), name="ground truth")  # no result: never chosen
    cells = add_result(viewer, small_frame.labels, image=small_frame.image)
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    assert proofread.layer is cells
    viewer.layers.selection.active = cells
    ids = [int(i) for i in np.unique(cells.data)[1:]]

    point_at(viewer, cells, ids[0])
    press(viewer, "Shift-A")
    assert cells.features.set_index("index").loc[ids[0], "status"] == "accepted"

    point_at(viewer, cells, ids[1])
    press(viewer, "Shift-D")
    assert not (np.asarray(cells.data) == ids[1]).any()

    a, b = ids[2], ids[3]
    point_at(viewer, cells, a)
    press(viewer, "Shift-M")
    point_at(viewer, cells, b)
    press(viewer, "Shift-M")
    assert not (np.asarray(cells.data) == b).any() and (np.asarray(cells.data) == a).any()

    press(viewer, "Shift-N")
    waiting = cells.features[cells.features["status"] != "accepted"]
    assert proofread._cell.value == int(waiting.sort_values("score").iloc[0]["index"])

    target = ids[5]
    rows, cols = np.nonzero(np.asarray(cells.data) == target)
    middle = float(np.median(rows))
    viewer.add_shapes([np.array([[middle, cols.min() - 3.0], [middle, cols.max() + 3.0]])], shape_type="line")
    viewer.layers.selection.active = cells
    before = int(np.asarray(cells.data).max())
    press(viewer, "Shift-S")
    assert int(np.asarray(cells.data).max()) == before + 1
    assert "0 accepted" not in proofread._summary.value and "1 deleted" in proofread._summary.value


def test_the_docks_follow_layers_added_removed_and_renamed(make_napari_viewer, small_frame, lapse):
    viewer = make_napari_viewer()
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    _, measure = viewer.window.add_plugin_dock_widget("napari-livecell", "Measure cells")
    _, track = viewer.window.add_plugin_dock_widget("napari-livecell", "Track cells")
    assert proofread.layer is None and track._layer.value is None

    truth = viewer.add_labels(small_frame.labels.copy(), name="img ground truth")
    assert proofread.layer is None and track._layer.value is None  # 2-D: never tracked unasked
    assert measure._labels_box.value is truth

    cells = add_result(viewer, small_frame.labels, image=small_frame.image)
    assert proofread.layer is cells and measure._labels_box.value is cells
    assert track._layer.value is None

    movie_truth = viewer.add_labels(lapse.labels.copy(), name="movie ground truth")
    assert track._layer.value is movie_truth  # a stack, though not a result
    movie = add_result(viewer, lapse.labels, name="movie", image=lapse.image)
    assert track._layer.value is movie and proofread.layer is movie and measure._labels_box.value is movie

    movie.name = "movie (day 2) cells"
    assert track._layer.native.currentText() == "movie (day 2) cells"
    assert proofread._layer.native.currentText() == "movie (day 2) cells"

    assert measure._labels_box.value is movie
    viewer.layers.remove(movie)
    assert track._layer.value is movie_truth
    assert proofread.layer is cells and measure._labels_box.value is cells
    viewer.layers.remove(cells)
    assert proofread.layer is None and measure._labels_box.value is not cells
