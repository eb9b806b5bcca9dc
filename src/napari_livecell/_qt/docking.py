"""Our docks share the window with the canvas: narrow, wrapped status lines, one tabbed stack.

With Segment, Proofread and Train docked one under the other the window grew
past the screen and the canvas shrank to under a third of its width; as tabs
of one dock, at most :data:`DOCK_WIDTH` wide, they leave the canvas at least
half of a 1280-px window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DOCK_WIDTH = 270  # px
DOCK_MARGIN = 24  # px of the dock's own frame around its contents
PLUGIN_TAG = "(napari-livecell)"


def fit_dock(widget: Any, status_labels: Sequence[Any] = ()) -> None:
    """Keep ``widget`` narrow with its status lines wrapped, and tab it with our other docks once shown."""
    from qtpy.QtCore import QTimer

    widget.max_width = DOCK_WIDTH
    for label in status_labels:
        # the whole width of the dock (a form row's value column is a third of it), wrapped
        if label in widget:
            widget.remove(label)
        label.native.setWordWrap(True)
        widget.native.layout().addWidget(label.native)
        label.changed.connect(lambda _value, label=label: _fit_height(label))
    QTimer.singleShot(0, lambda: tab_with_siblings(widget))


def _fit_height(label: Any) -> None:
    """Let a wrapped status line take the lines its text needs (a fixed height clips it)."""
    try:
        native = label.native
        needed = native.heightForWidth(max(native.width(), 1))
        if needed > 0:
            native.setMinimumHeight(needed)
    except RuntimeError:  # its widget was closed
        pass


def tab_with_siblings(widget: Any) -> None:
    """Put this widget's dock in the same tab stack as the plugin's other open docks.

    The dock and the main window are found through Qt (napari's viewer proxy
    refuses private attributes to plugins); when napari's layout changes,
    the docks simply stay where napari put them.
    """
    try:
        from qtpy.QtWidgets import QDockWidget, QMainWindow

        dock = widget.native.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        window = dock.parent() if dock is not None else None
        if dock is None or not isinstance(window, QMainWindow):
            return
        from qtpy.QtCore import Qt

        # the dock, not only its contents: the dock area takes the widest dock's width
        dock.setMaximumWidth(DOCK_WIDTH + DOCK_MARGIN)
        window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
        area = window.dockWidgetArea(dock)
        for other in window.findChildren(QDockWidget):
            if (
                other is not dock
                and PLUGIN_TAG in other.windowTitle()
                and other.isVisible()
                and window.dockWidgetArea(other) == area
            ):
                window.tabifyDockWidget(other, dock)
                dock.show()
                dock.raise_()
                return
    except RuntimeError:  # the window closed before the dock settled
        return
