"""All of the plugin's docks open at once still leave the canvas half of a 1280 x 1024 window."""

PLUGIN_WIDGETS = (
    "Segment cells",
    "Proofread cells",
    "Compare to ground truth",
    "Train on corrections",
    "Review dataset",
    "Track cells",
    "Measure cells",
)


def test_every_dock_open_leaves_the_canvas_half_the_window(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication, QDockWidget

    from napari_livecell._qt.docking import is_our_dock

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 1024)
    viewer.open_sample("napari-livecell", "livecell_image")
    viewer.add_shapes(name="outlines")  # the widest napari layer controls
    widgets = [viewer.window.add_plugin_dock_widget("napari-livecell", name)[1] for name in PLUGIN_WIDGETS]
    qtbot.wait(300)
    QApplication.processEvents()
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    assert window.width() <= 1300 and window.height() <= 1100, "the window must not grow past the screen"
    assert canvas.width() >= 0.5 * window.width(), (canvas.width(), window.width())
    docks = [d for d in window.findChildren(QDockWidget) if is_our_dock(d)]
    assert len(docks) == len(PLUGIN_WIDGETS)
    assert len({tuple(window.tabifiedDockWidgets(d)) != () for d in docks}) == 1  # one tab stack
    for widget in widgets:
        assert widget.native.width() <= 400
    status = widgets[0]._status
    status.value = "154 cells in 1 frame(s), fluorescence (auto): inverted for a phase model"
    qtbot.wait(100)
    label = status.native
    assert label.height() >= label.heightForWidth(label.width())  # the whole message shows
