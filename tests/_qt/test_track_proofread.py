"""Tracking a result layer is one edit proofreading understands: no correction counted, statuses kept."""

import json

import numpy as np
import pytest

from napari_livecell.core.training.synthetic import synthesize_timelapse
from napari_livecell.layers import RESULT_KEY

from .conftest import add_result


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=5, n_frames=4, n_cells=14, shape=(96, 120))


def coco_statuses(cells, path):
    from napari_livecell.io.write import write_labels_coco

    data, attributes, _ = cells.as_layer_data_tuple()
    write_labels_coco(str(path), data, attributes)
    coco = json.loads(path.read_text())
    return sorted((a["image_id"], tuple(a["bbox"]), a["status"]) for a in coco["annotations"])


def reopen(path):
    """The Labels layer napari makes from a saved COCO file (reader and layer as the plugin gives them)."""
    from napari.layers import Labels

    from napari_livecell.io.read import read_coco_layers

    data, kwargs, _ = next(layer for layer in read_coco_layers(str(path)) if layer[2] == "labels")
    return Labels(np.asarray(data), **kwargs)


def present_cells(data):
    return {(t, int(i)) for t in range(len(data)) for i in np.unique(data[t]) if i}


def table_cells(cells):
    return set(zip(cells.features["frame"].tolist(), cells.features["index"].tolist()))


def test_tracking_then_undo_counts_no_correction(qtbot, make_napari_viewer, lapse, tmp_path):
    viewer = make_napari_viewer()
    cells = add_result(viewer, lapse.labels, name="movie", image=lapse.image)
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    _, track = viewer.window.add_plugin_dock_widget("napari-livecell", "Track cells")
    assert proofread.layer is cells and track._layer.value is cells
    first = int(cells.features["index"].iloc[3])
    proofread.accept(first)
    before = coco_statuses(cells, tmp_path / "before.json")
    n_cells = len(present_cells(np.asarray(cells.data)))
    untouched = np.array(cells.data, copy=True)
    clean = f"0 added, 0 deleted, 0 edited, 0 merged, 1 accepted of {n_cells}"
    assert proofread._summary.value == clean

    worker = track.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not track.busy, timeout=20_000)
    tracked = np.asarray(cells.data)
    assert not np.array_equal(tracked, untouched)  # ids now run along tracks
    qtbot.waitUntil(lambda: table_cells(cells) == present_cells(tracked), timeout=10_000)
    assert len(cells.features) == n_cells
    assert proofread._summary.value == clean
    assert coco_statuses(cells, tmp_path / "tracked.json") == before
    baseline = cells.metadata[RESULT_KEY]["baseline"]
    assert np.array_equal(baseline, tracked)  # the prediction follows the new ids
    reread = reopen(tmp_path / "tracked.json")
    assert np.array_equal(reread.data, tracked)  # track ids come back (they repeat across frames)
    assert coco_statuses(reread, tmp_path / "again.json") == before
    assert np.array_equal(reread.metadata[RESULT_KEY]["baseline"], tracked)

    cells.undo()
    assert np.array_equal(np.asarray(cells.data), untouched)
    qtbot.waitUntil(lambda: table_cells(cells) == present_cells(untouched), timeout=10_000)
    assert len(cells.features) == n_cells
    assert proofread._summary.value == clean
    assert coco_statuses(cells, tmp_path / "undone.json") == before
    assert np.array_equal(cells.metadata[RESULT_KEY]["baseline"], untouched)


def test_segmented_time_lapse_tracked_then_undone_keeps_proofreading_clean(qtbot, make_napari_viewer, lapse):
    viewer = make_napari_viewer()
    viewer.add_image(lapse.image, name="movie")
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    segment.run()
    qtbot.waitUntil(lambda: not segment.busy and "movie cells" in viewer.layers, timeout=180_000)
    cells = viewer.layers["movie cells"]
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    _, track = viewer.window.add_plugin_dock_widget("napari-livecell", "Track cells")
    assert proofread.layer is cells and track._layer.value is cells
    untouched = np.array(cells.data, copy=True)
    n_cells = len(present_cells(untouched))
    assert n_cells > 10
    clean = f"0 added, 0 deleted, 0 edited, 0 merged, 0 accepted of {n_cells}"
    assert proofread._summary.value == clean

    assert track.run() is not None
    qtbot.waitUntil(lambda: not track.busy, timeout=60_000)
    tracked = np.asarray(cells.data)
    qtbot.waitUntil(lambda: table_cells(cells) == present_cells(tracked), timeout=10_000)
    assert proofread._summary.value == clean and set(cells.features["status"]) == {"predicted"}
    cells.undo()
    qtbot.waitUntil(lambda: table_cells(cells) == present_cells(untouched), timeout=10_000)
    assert proofread._summary.value == clean and set(cells.features["status"]) == {"predicted"}
