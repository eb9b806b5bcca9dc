"""Our docks share the window with the canvas: narrow, scrolling, one tab stack with short titles.

With Segment, Proofread and Train docked one under the other the window grew
past the screen and the canvas shrank to under a third of its width. Here every
dock is at most :data:`DOCK_WIDTH` wide, its contents scroll inside it (the
window keeps no minimum height of ours: it fits a 1280 x 800 or 1366 x 768
screen), and the docks are tabs of one stack whose tabs run down its side with
short titles ("Segment", "Proofread"...): seven of them do not fit across a
300-px dock, they do fit down an 800-px window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DOCK_WIDTH = 290  # px
DOCK_MARGIN = 24  # px of the dock's own frame around its contents
PLUGIN_TAG = "(napari-livecell)"
OUR_DOCK = "livecell"  # a dynamic property on our QDockWidgets (their titles are shortened)


def fit_dock(widget: Any, status_labels: Sequence[Any] = ()) -> None:
    """Keep ``widget`` narrow with its status lines wrapped, and tab it with our other docks once shown."""
    from magicgui.widgets import Label
    from qtpy.QtCore import QTimer

    from napari_livecell._qt.layout import readable_texts

    widget.max_width = DOCK_WIDTH
    for item in list(widget):
        if not isinstance(item, Label):
            continue
        if item in status_labels or not item.label:
            # the whole width of the dock (a form row's value column is a third of it), wrapped
            _full_width(widget, item)
        else:
            _wrap(item.native)
    for label in status_labels:
        if label not in widget and label.native.parent() is None:
            _full_width(widget, label)
    readable_texts(widget.native)
    QTimer.singleShot(0, lambda: tab_with_siblings(widget))


def _full_width(widget: Any, label: Any) -> None:
    """Take a magicgui Label out of its form row, in place: the dock's whole width, wrapped."""
    layout = widget.native.layout()
    index = -1
    if label in widget:
        row = label._labeled_widget()
        index = layout.indexOf(row.native if row is not None else label.native)
        widget.remove(label)
    _wrap(label.native)
    layout.insertWidget(index, label.native)
    label.changed.connect(lambda _value, label=label: _fit_height(label))


def _wrap(label: Any) -> None:
    """Word-wrap a QLabel that never widens the dock.

    A wrapped QLabel's minimum size hint is the width of a "pleasant" block of
    its text (270 px for Compare's legend): an explicit minimum width replaces it.
    """
    from qtpy.QtWidgets import QSizePolicy

    label.setWordWrap(True)
    label.setMinimumWidth(1)
    # magicgui's labels are Fixed: as wide as their text was when made (an empty status: 75 px)
    policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)


def _fit_height(label: Any) -> None:
    """Let a wrapped status line take the lines its text needs (a fixed height clips it)."""
    try:
        native = label.native
        needed = native.heightForWidth(max(native.width(), 1))
        if needed > 0:
            native.setMinimumHeight(needed)
    except RuntimeError:  # its widget was closed
        pass


def short_title(title: str) -> str:
    """A dock's tab title: the first word of napari's "Segment cells (napari-livecell)"."""
    return title.replace(PLUGIN_TAG, "").split()[0] if title.strip() else title


def is_our_dock(dock: Any) -> bool:
    """One of this plugin's QDockWidgets (its title shortened already, or not yet)."""
    return bool(dock.property(OUR_DOCK)) or PLUGIN_TAG in dock.windowTitle()


def _scroll_inside(dock: Any) -> None:
    """Put the dock's contents in a vertical QScrollArea: a tall dock scrolls, the window does not grow."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    content = dock.widget()
    if content is None or isinstance(content, QScrollArea):
        return
    scroll: Any = QScrollArea()  # Any: it carries napari's _magic_widget attribute below
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    magic = getattr(content, "_magic_widget", None)
    scroll.setWidget(content)
    if magic is not None:  # napari's QtViewerDockWidget.inner_widget() finds the magicgui widget here
        scroll._magic_widget = magic
    dock.setWidget(scroll)


def _widen_form_labels(root: Any) -> None:
    """Give magicgui's form labels the width their text needs in napari's font.

    magicgui makes every label of a form as wide as its widest text, measured
    before napari's stylesheet sets the font: a few pixels short ("confidenc").
    """
    from qtpy.QtWidgets import QLabel

    groups: dict[int, list[Any]] = {}
    for label in root.findChildren(QLabel):
        if label.text() and not label.wordWrap() and label.minimumWidth() > 0:
            groups.setdefault(label.minimumWidth(), []).append(label)
    for labels in groups.values():
        needed = 0
        for label in labels:
            label.ensurePolished()
            needed = max(needed, label.fontMetrics().horizontalAdvance(label.text()) + 6)  # and a gap
        for label in labels:
            label.setMinimumWidth(max(label.minimumWidth(), needed))


def tab_with_siblings(widget: Any) -> None:
    """Put this widget's dock in the same tab stack as the plugin's other open docks.

    The dock and the main window are found through Qt (napari's viewer proxy
    refuses private attributes to plugins); when napari's layout changes,
    the docks simply stay where napari put them.
    """
    try:
        from qtpy.QtWidgets import QDockWidget, QMainWindow, QTabWidget

        dock = widget.native.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        window = dock.parent() if dock is not None else None
        if dock is None or not isinstance(window, QMainWindow):
            return
        from qtpy.QtCore import Qt

        dock.setProperty(OUR_DOCK, True)
        title = short_title(dock.windowTitle())
        dock.setWindowTitle(title)
        bar_title = getattr(dock.titleBarWidget(), "title", None)  # napari's own title bar's label
        if bar_title is not None and hasattr(bar_title, "setText"):
            bar_title.setText(title)
        _widen_form_labels(dock)
        _scroll_inside(dock)
        # the dock, not only its contents: the dock area takes the widest dock's width
        dock.setMaximumWidth(DOCK_WIDTH + DOCK_MARGIN)
        window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
        area = window.dockWidgetArea(dock)
        # tabs down the side, where seven whole titles fit (across the dock, they were "Se...", "T...")
        position = QTabWidget.TabPosition.West
        if area == Qt.DockWidgetArea.LeftDockWidgetArea:
            position = QTabWidget.TabPosition.East
        window.setTabPosition(area, position)
        for other in window.findChildren(QDockWidget):
            if (
                other is not dock
                and is_our_dock(other)
                and other.isVisible()
                and window.dockWidgetArea(other) == area
            ):
                window.tabifyDockWidget(other, dock)
                dock.show()
                dock.raise_()
                return
    except RuntimeError:  # the window closed before the dock settled
        return
