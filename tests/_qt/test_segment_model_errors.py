"""No silent fallback: a model that cannot be used is one readable error, and a run names what ran it."""

import subprocess
import sys

import numpy as np
import pytest

from napari_livecell._qt.segment_widget import SegmentCellsWidget


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    assert isinstance(widget, SegmentCellsWidget)
    return viewer, widget


def test_a_missing_weights_file_is_an_error_and_nothing_runs(
    qtbot, viewer_and_widget, small_frame, tmp_path, notifications
):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="img")
    widget._advanced.value = True
    widget._weights.value = tmp_path / "nope.pt"
    before = [(layer.name, layer.data.copy()) for layer in viewer.layers]

    assert widget.run() is None
    assert not widget.busy and widget.worker is None
    assert "nope.pt" in widget._status.value and "not found" in widget._status.value
    assert [m for m in notifications.messages if "nope.pt" in m] == [widget._status.value]
    assert [layer.name for layer in viewer.layers] == [name for name, _ in before]
    assert all(np.array_equal(layer.data, data) for layer, (_, data) in zip(viewer.layers, before))


def test_the_status_line_names_the_model_runtime_and_device_that_ran(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="img")
    widget._runtime.value = "torch"
    widget._device.value = "cpu"
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    status = widget._status.value
    assert "cells in 1 frame(s)" in status
    assert "model default (shipped)" in status and "runtime torch" in status and "cpu" in status


def test_opening_the_segment_dock_imports_neither_torch_nor_ultralytics():
    """In a fresh process: the dock opens without the inference stack (it loads in the first run's worker)."""
    script = (
        "import sys, napari\n"
        "viewer = napari.Viewer(show=False)\n"
        "viewer.window.add_plugin_dock_widget('napari-livecell', 'Segment cells')\n"
        "viewer.window.add_plugin_dock_widget('napari-livecell', 'Review dataset')\n"
        "print(sorted(m for m in ('torch', 'ultralytics') if m in sys.modules))\n"
        "viewer.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
