"""The "Measure cells" widget in a real viewer: the table, a row click going to its cell, CSV."""

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops_table

from napari_livecell._qt.measure_widget import MeasureCellsWidget
from napari_livecell.core.training.synthetic import synthesize_image, synthesize_timelapse

from .conftest import add_result


@pytest.fixture(scope="module")
def frame():
    return synthesize_image(seed=3, n_cells=30, shape=(128, 160))


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Measure cells")
    assert isinstance(widget, MeasureCellsWidget)
    return viewer, widget


def _camera(viewer):
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def test_measure_joins_the_cell_table_and_equals_regionprops(viewer_and_widget, frame):
    viewer, widget = viewer_and_widget
    # magicgui's Container keeps its "show labels" flag in _labels: the layer box must not take its name
    assert widget.labels is True
    layer = add_result(viewer, frame.labels, name="img", image=frame.image)
    layer.features.loc[layer.features["index"] == 4, "status"] = "accepted"
    widget._labels_box.value = layer
    assert widget._image.value is viewer.layers["img"]  # the image it was segmented from
    result = widget.measure()
    cells = result.cells
    expected = regionprops_table(frame.labels, frame.image, properties=("label", "area", "intensity_max"))
    assert cells["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(cells["area_px"], expected["area"])
    np.testing.assert_allclose(cells["max_intensity"], expected["intensity_max"])
    np.testing.assert_allclose(cells["score"], layer.features["score"])
    assert cells.set_index("label").loc[4, "status"] == "accepted"
    n_cells = len(np.unique(frame.labels)) - 1
    assert widget.model.rowCount() == n_cells and f"{n_cells} cells" in widget._summary.value


def test_the_layer_scale_gives_micrometres(viewer_and_widget, frame):
    viewer, widget = viewer_and_widget
    layer = viewer.add_labels(frame.labels, name="scaled", scale=(0.5, 0.5))
    widget._labels_box.value = layer
    widget._image.value = None
    cells = widget.measure().cells
    assert "area_um2" in cells and cells["mean_intensity"].isna().all()
    np.testing.assert_allclose(cells["area_um2"], np.bincount(frame.labels.ravel())[1:] * 0.25)
    widget._pixel_size.value = 2.0  # a typed pixel size wins over the scale
    np.testing.assert_allclose(widget.measure().cells["area_um2"], cells["area_um2"] * 16)


def test_clicking_a_sorted_row_goes_to_its_cell_in_its_frame(qtbot, viewer_and_widget):
    viewer, widget = viewer_and_widget
    lapse = synthesize_timelapse(seed=5, n_frames=3, n_cells=15, shape=(120, 150))
    layer = add_result(viewer, lapse.labels, name="movie", image=lapse.image)
    widget._labels_box.value = layer
    worker = widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert worker is not None and widget.measurements is not None
    assert widget.measurements.summary["frame"].tolist() == [0, 1, 2]

    from qtpy.QtCore import Qt

    column = list(widget.model.frame.columns).index("area_px")
    widget.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    areas = widget.model.frame["area_px"].to_numpy()
    assert (np.diff(areas) <= 0).all()
    row = int(np.flatnonzero(widget.model.frame["frame"] == 2)[0])
    record = widget.model.frame.iloc[row]
    widget.table.selectRow(row)

    cell = int(record["label"])
    assert layer.selected_label == cell
    assert viewer.dims.current_step[0] == 2
    frame_labels = np.asarray(layer.data[2])
    assert (frame_labels == cell).sum() == record["area_px"]
    rows, cols = np.nonzero(frame_labels == cell)
    np.testing.assert_allclose(_camera(viewer).center[-2:], (rows.mean(), cols.mean()), atol=1e-6)


def test_save_csv_writes_cells_and_summary(tmp_path, viewer_and_widget, frame):
    viewer, widget = viewer_and_widget
    widget._labels_box.value = add_result(viewer, frame.labels, name="img", image=frame.image)
    assert widget.save_csv(tmp_path / "none.csv") == []  # nothing measured yet
    widget.measure()
    cells_csv, summary_csv = widget.save_csv(tmp_path / "img.csv")
    cells = pd.read_csv(cells_csv)
    n_cells = len(np.unique(frame.labels)) - 1
    assert (cells["image"] == "img").all() and len(cells) == n_cells
    summary = pd.read_csv(summary_csv)
    assert summary_csv.name == "img_summary.csv"
    assert summary.loc[0, "cell_count"] == n_cells
    assert summary.loc[0, "confluence_percent"] == pytest.approx(100 * (frame.labels > 0).mean(), rel=1e-5)


def test_an_image_of_another_shape_is_one_message(viewer_and_widget, frame):
    viewer, widget = viewer_and_widget
    widget._labels_box.value = viewer.add_labels(frame.labels, name="cells")
    widget._image.value = viewer.add_image(np.zeros((10, 10)), name="other")
    assert widget.measure() is None
    assert "choose the image the labels annotate" in widget._status.value
