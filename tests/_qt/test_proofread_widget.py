"""Proofreading in a real viewer: outlines follow edits, operations undo."""

import numpy as np
import pytest

from napari_livecell.core.segmentation import Segmentation
from napari_livecell.layers import result_layer_data


@pytest.fixture
def proofreading(make_napari_viewer, small_frame, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_frame.image, name="img")
    segmentation = Segmentation.from_labels(
        small_frame.labels, scores=np.linspace(0.41, 0.99, small_frame.labels.max())
    )
    metadata = {"napari_livecell": {"source": "img", "edited": False}}
    for data, kwargs, kind in result_layer_data(segmentation, "img", (), {"metadata": metadata}):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    widget._layer.value = viewer.layers["img cells"]
    return viewer, widget


def outline_labels(viewer):
    return set(viewer.layers["img outlines"].features["label"].astype(int))


def settle(qtbot, widget):
    qtbot.wait(400)  # the outline redraw waits for a pause in editing


def test_painting_a_new_cell_adds_one_outline(proofreading, qtbot):
    viewer, widget = proofreading
    cells = viewer.layers["img cells"]
    new_id = int(cells.data.max()) + 1
    empty = np.argwhere(cells.data == 0)
    spot = next(
        p for p in empty if (cells.data[max(0, p[0] - 4) : p[0] + 5, max(0, p[1] - 4) : p[1] + 5] == 0).all()
    )
    cells.brush_size = 5
    cells.paint(tuple(spot), new_id)
    settle(qtbot, widget)
    assert new_id in outline_labels(viewer)
    status = cells.features.loc[cells.features["index"] == new_id, "status"].item()
    assert status == "added"
    assert widget.summary().added == 1


def test_erasing_a_cell_removes_its_outline(proofreading, qtbot):
    viewer, widget = proofreading
    cells = viewer.layers["img cells"]
    rows, cols = np.nonzero(cells.data == 5)
    cells.data_setitem((rows, cols), 0)
    settle(qtbot, widget)
    assert 5 not in outline_labels(viewer)


def test_delete_merge_split_change_counts_and_undo_restores(proofreading, qtbot):
    viewer, widget = proofreading
    cells = viewer.layers["img cells"]
    n = len(np.unique(cells.data)) - 1
    widget.delete(3)
    assert len(np.unique(cells.data)) - 1 == n - 1
    assert 3 not in outline_labels(viewer)
    cells.undo()
    settle(qtbot, widget)
    assert len(np.unique(cells.data)) - 1 == n and 3 in outline_labels(viewer)

    a, b = _touching_pair(cells.data)
    widget.merge(a, b)
    assert len(np.unique(cells.data)) - 1 == n - 1
    statuses = dict(zip(cells.features["index"], cells.features["status"]))
    assert statuses[a] == "edited"
    cells.undo()
    settle(qtbot, widget)
    assert len(np.unique(cells.data)) - 1 == n

    big = int(np.bincount(cells.data.ravel())[1:].argmax()) + 1
    rows, cols = np.nonzero(cells.data == big)
    middle = int(np.median(rows))
    new_id = widget.split(np.array([[middle, cols.min() - 2], [middle, cols.max() + 2]], float))
    assert len(np.unique(cells.data)) - 1 == n + 1
    assert new_id in outline_labels(viewer) and big in outline_labels(viewer)
    cells.undo()
    settle(qtbot, widget)
    assert len(np.unique(cells.data)) - 1 == n
    assert new_id not in outline_labels(viewer)


def test_accept_and_review_the_least_certain_first(proofreading):
    viewer, widget = proofreading
    cells = viewer.layers["img cells"]
    first = widget.next_to_review()
    assert first == 1  # lowest score
    centre = np.argwhere(cells.data == 1).mean(axis=0)
    from napari_livecell._qt.proofread_widget import _camera

    assert np.allclose(_camera(viewer).center[-2:], centre, atol=1)
    widget.accept(first)
    assert widget.next_to_review() == 2
    assert widget.summary().accepted == 1
    assert "1 accepted" in widget._summary.value


def _touching_pair(labels):
    right = labels[:, :-1], labels[:, 1:]
    touching = (right[0] != right[1]) & (right[0] > 0) & (right[1] > 0)
    r, c = np.argwhere(touching)[0]
    return int(labels[r, c]), int(labels[r, c + 1])


def test_correction_summary_travels_into_the_coco_export(proofreading, tmp_path):
    import json

    from napari_livecell.io.write import write_labels_coco

    viewer, widget = proofreading
    cells = viewer.layers["img cells"]
    widget.delete(2)
    widget.accept(1)
    path = tmp_path / "corrected.json"
    write_labels_coco(
        str(path), cells.data, {"name": cells.name, "features": cells.features, "metadata": cells.metadata}
    )
    coco = json.loads(path.read_text())
    assert coco["info"]["corrections"]["deleted"] == 1 and coco["info"]["corrections"]["accepted"] == 1
    assert {a.get("status") for a in coco["annotations"]} == {"accepted", "predicted"}
