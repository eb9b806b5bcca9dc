"""The Segment cells widget's runtime choice: the faster runtime gives the cells torch gives, and says so."""

import numpy as np
import pytest

from napari_livecell._qt.segment_widget import SegmentCellsWidget
from napari_livecell.core.analysis.matching import match_cells


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    assert isinstance(widget, SegmentCellsWidget)
    return viewer, widget


def run_and_wait(qtbot, widget):
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)


def test_runtime_choice_gives_torch_cells_and_names_the_runtime(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    # the runtime table's order: auto, then the installed runtimes (this environment has them all)
    assert widget._runtime.choices == ("auto", "onnxruntime", "openvino", "openvino-int8", "torch")
    assert widget._runtime.value == "auto"
    viewer.add_image(small_frame.image, name="cells")
    found = {}
    for runtime in ("torch", "openvino"):
        widget._runtime.value = runtime
        run_and_wait(qtbot, widget)
        assert f"runtime {runtime}" in widget._status.value
        found[runtime] = np.asarray(viewer.layers["cells cells"].data).copy()
    match = match_cells(found["torch"], found["openvino"])
    assert match.n_matched == found["torch"].max() == found["openvino"].max()
    assert np.min(match.ious) >= 0.95
