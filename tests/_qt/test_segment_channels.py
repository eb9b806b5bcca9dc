"""Segment cells on one channel of a multi-channel image, and what the status says."""

import numpy as np
import pytest

from napari_livecell._qt.segment_widget import SegmentCellsWidget


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    assert isinstance(widget, SegmentCellsWidget)
    return viewer, widget


def run_and_wait(qtbot, widget, timeout=120_000):
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def test_channel_dropdown_segments_the_chosen_channel(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    two = np.stack([np.zeros_like(small_frame.image), small_frame.image])  # (C, H, W): channel 0 blank
    # a scale in um/px: the shipped model's own pixel size, so the frame is segmented as it is
    layer = viewer.add_image(two, name="two", scale=(1, 1.24, 1.24))
    widget._image.value = layer
    assert not widget._channel.native.isHidden()  # shown (the dock itself is not on screen)
    assert [c for c in widget._channel.choices] == [None, (0, 0), (0, 1)]
    widget._channel.value = (0, 1)
    run_and_wait(qtbot, widget)
    cells = viewer.layers["two cells"]
    assert cells.data.shape == small_frame.image.shape  # one frame, not channels as frames
    assert tuple(cells.scale) == (1.24, 1.24)
    assert cells.data.max() > 20
    assert "phase (auto): not inverted" in widget._status.value
    widget._channel.value = (0, 0)
    run_and_wait(qtbot, widget)
    assert viewer.layers["two cells"].data.max() == 0


def test_no_channel_dropdown_for_a_plain_image_and_fluorescence_status(qtbot, viewer_and_widget):
    from napari_livecell.core.training.synthetic import synthesize_image

    viewer, widget = viewer_and_widget
    nuclei = synthesize_image(21, n_cells=40, shape=(128, 160), look="fluorescence")
    widget._image.value = viewer.add_image(nuclei.image, name="nuclei")
    assert widget._channel.native.isHidden()
    run_and_wait(qtbot, widget)
    assert "fluorescence (auto): inverted for a phase model" in widget._status.value
    assert viewer.layers["nuclei cells"].data.max() > 0.5 * nuclei.labels.max()
