"""``napari-livecell demo``: napari with the sample image (the only CLI module that imports napari)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    """Register the subcommand."""
    demo = commands.add_parser("demo", help="open napari with the sample image and its cells")
    demo.add_argument("--run", action="store_true", help="segment the sample right away")
    demo.add_argument("--screenshot", default=None, help="save a window screenshot and exit")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Open napari (or save a screenshot of it and exit)."""
    import napari

    viewer = napari.Viewer(title="napari-livecell demo")
    viewer.window.resize(1280, 800)  # a laptop screen: every dock fits it
    viewer.open_sample("napari-livecell", "livecell_image")
    # every dock of the plugin, tabbed into one stack; Segment cells last, so it is the tab on show
    for name in (
        "Proofread cells",
        "Compare to ground truth",
        "Review dataset",
        "Train on corrections",
        "Track cells",
        "Measure cells",
    ):
        viewer.window.add_plugin_dock_widget("napari-livecell", name)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()  # the docks are tabbed into one stack in the next event-loop turns
    viewer.window.resize(1280, 800)  # side by side for a moment, they had widened the window
    if args.run or args.screenshot:
        import time

        widget.run()
        while widget.busy:  # until the result layers are in place and shown, not only computed
            QApplication.processEvents()
            time.sleep(0.02)
        QApplication.processEvents()
    if args.screenshot:
        QApplication.processEvents()
        viewer.reset_view()  # the whole image in the resized canvas
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
        viewer.close()
        return 0
    napari.run()
    return 0
