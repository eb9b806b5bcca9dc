"""The loop the plugin exists for: segment, proofread, save, reopen, train, and the new model offered."""

import numpy as np
import tifffile

from napari_livecell.layers import RESULT_KEY


def test_segment_proofread_save_reopen_train_and_offer(make_napari_viewer, qtbot, tmp_path, small_frame):
    image_path = tmp_path / "well.tif"
    tifffile.imwrite(image_path, small_frame.image)
    viewer = make_napari_viewer()
    viewer.open(str(image_path))
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    segment.run()
    qtbot.waitUntil(lambda: not segment.busy, timeout=120_000)
    cells = viewer.layers["well cells"]
    proofread._layer.value = cells

    # proofread: paint a new cell, delete one, merge two neighbours
    new_id = int(cells.data.max()) + 1
    row, col = np.argwhere(cells.data == 0)[len(np.argwhere(cells.data == 0)) // 2]
    cells.data_setitem(
        (np.arange(row - 2, row + 3).repeat(5), np.tile(np.arange(col - 2, col + 3), 5)), new_id
    )
    proofread.follower.flush()
    proofread.delete(int(cells.features["index"].iloc[0]))
    labels = cells.data
    touching = (labels[:, :-1] != labels[:, 1:]) & (labels[:, :-1] > 0) & (labels[:, 1:] > 0)
    r, c = np.argwhere(touching)[0]
    proofread.merge(int(labels[r, c]), int(labels[r, c + 1]))
    summary = proofread.summary().as_dict()
    assert (summary["added"], summary["deleted"], summary["merged"]) == (1, 1, 1)

    # save as COCO through napari, close everything, open the json with File > Open
    saved = tmp_path / "corrections.json"
    cells.save(str(saved), plugin="napari-livecell")
    viewer.layers.clear()
    viewer.open(str(saved), plugin="napari-livecell")
    assert {"well", "corrections cells", "corrections outlines"} <= {layer.name for layer in viewer.layers}
    reopened = viewer.layers["corrections cells"]
    statuses = dict(zip(reopened.features["index"], reopened.features["status"]))
    assert statuses[new_id] == "added"
    assert RESULT_KEY in reopened.metadata and reopened.metadata[RESULT_KEY]["baseline"] is not None
    proofread._layer.reset_choices()
    proofread._layer.value = reopened
    assert proofread.summary().as_dict() == summary

    # train one epoch on the reopened layer; the new model is chosen in Segment cells
    _, train = viewer.window.add_plugin_dock_widget("napari-livecell", "Train on corrections")
    train._layers.reset_choices()
    train._layers.value = [reopened]
    train._epochs.value = 1
    train._crop.value = 0
    train._batch.value = 2
    train._out.value = tmp_path / "model"
    assert train.train() is not None, train._status.value
    qtbot.waitUntil(lambda: not train.busy, timeout=300_000)
    weights = tmp_path / "model" / "best.pt"
    assert weights.exists(), train._status.value
    assert segment._model.value == str(weights)
