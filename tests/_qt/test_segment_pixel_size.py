"""Segment cells resamples by the image's pixel size and says so in its status line."""

import numpy as np
import pytest

from napari_livecell._qt.segment_widget import SegmentCellsWidget
from tests.core.inference.test_pixel_size import MODEL_UM, taken_at


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    assert isinstance(widget, SegmentCellsWidget)
    return viewer, widget


def run_and_wait(qtbot, widget):
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)


def test_the_layer_scale_is_the_pixel_size_and_cells_come_back_on_the_image_grid(
    qtbot, viewer_and_widget, small_frame
):
    viewer, widget = viewer_and_widget
    image, truth = taken_at(small_frame, MODEL_UM / 2)  # cells twice as large as the model's
    viewer.add_image(image, name="fine", scale=(MODEL_UM / 2, MODEL_UM / 2))
    run_and_wait(qtbot, widget)

    assert f"resampled {MODEL_UM / 2:g} -> {MODEL_UM:g} um/px" in widget._status.value
    cells = viewer.layers["fine cells"]
    assert cells.data.shape == image.shape
    assert tuple(cells.scale) == (MODEL_UM / 2, MODEL_UM / 2)
    n_truth = len(np.unique(truth)) - 1
    assert abs(len(cells.features) - n_truth) <= 0.1 * n_truth

    # a typed pixel size wins over the layer's scale
    widget._pixel_size.value = MODEL_UM
    run_and_wait(qtbot, widget)
    assert f"pixel size {MODEL_UM:g} um/px is the model's" in widget._status.value


def test_without_a_pixel_size_the_status_says_nothing_was_resampled(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="plain")
    run_and_wait(qtbot, widget)
    assert widget._status.value.endswith("; pixel size unknown: not resampled")


def test_where_the_pixel_size_comes_from(make_napari_viewer, tmp_path, small_frame):
    import tifffile
    from napari.layers import Image

    from napari_livecell._qt.segment_worker import layer_pixel_size
    from napari_livecell.layers import RESULT_KEY

    plain = Image(small_frame.image)
    assert layer_pixel_size(plain, plain.scale) == (None, "")
    assert layer_pixel_size(plain, plain.scale, typed=0.5) == (0.5, "typed")
    scaled = Image(small_frame.image, scale=(0.65, 0.65))
    assert layer_pixel_size(scaled, scaled.scale) == (0.65, "layer scale")
    stretched = Image(small_frame.image, scale=(2.0, 0.65))
    assert layer_pixel_size(stretched, stretched.scale) == (None, "")
    recorded = Image(small_frame.image, metadata={RESULT_KEY: {"pixel_size_um": 0.325}})
    assert layer_pixel_size(recorded, recorded.scale) == (0.325, "file metadata")

    path = tmp_path / "frame.tif"
    tifffile.imwrite(
        path, small_frame.image, imagej=True, resolution=(1 / 0.65, 1 / 0.65), metadata={"unit": "um"}
    )
    (opened,) = make_napari_viewer().open(str(path), plugin="napari")
    assert layer_pixel_size(opened, opened.scale) == (pytest.approx(0.65), "file metadata")
