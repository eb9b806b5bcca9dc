"""Every text of every dock is readable on a laptop screen, with all seven docks open.

One shown viewer at 1280 x 800 and at 1366 x 768: each dock is raised in turn and
every visible label, button, combo box and line edit is measured (font metrics
against the rectangle the style draws the text in). A text that does not fit
fails unless it is elided on purpose ("…", with the full text as tooltip). The
tab titles must be whole and pairwise distinct, and the window must not need
more height than a laptop screen has.
"""

from __future__ import annotations

import pytest

PLUGIN_WIDGETS = (
    "Segment cells",
    "Proofread cells",
    "Compare to ground truth",
    "Train on corrections",
    "Review dataset",
    "Track cells",
    "Measure cells",
)
ELLIPSIS = "…"


def _text_width(widget, text: str) -> int:
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QTextDocument

    if Qt.mightBeRichText(text):
        document = QTextDocument()
        document.setDefaultFont(widget.font())
        document.setDocumentMargin(0)
        document.setHtml(text)
        return int(document.idealWidth() + 0.999)
    metrics = widget.fontMetrics()
    return max(metrics.horizontalAdvance(line) for line in text.replace("&", "").splitlines() or [""])


def _elided_on_purpose(widget, text: str) -> bool:
    tip = widget.toolTip()
    return bool(tip) and (ELLIPSIS in text or text in tip)


def _label_problem(label) -> str | None:
    text = label.text()
    if not text or _elided_on_purpose(label, text):
        return None
    rect = label.contentsRect()
    inner = rect.width() - 2 * label.margin() - max(label.indent(), 0)
    if label.wordWrap():
        room = label.parentWidget().contentsRect().width()
        if label.width() < min(_text_width(label, text), 0.6 * room):
            return f"label {text!r} wraps in {label.width()} px of {room} px"
        needed = label.heightForWidth(label.width())
        if needed > label.height() + 1:
            return f"label {text!r}: {needed} px of text in {label.height()} px"
        return None
    needed = _text_width(label, text)
    if needed > inner + 1:
        return f"label {text!r}: {needed} px of text in {inner} px"
    return None


def _button_problem(button) -> str | None:
    from qtpy.QtWidgets import QCheckBox, QPushButton, QRadioButton, QStyle, QStyleOptionButton

    text = button.text()
    if not text or _elided_on_purpose(button, text):
        return None
    element = {
        QPushButton: QStyle.SubElement.SE_PushButtonContents,
        QCheckBox: QStyle.SubElement.SE_CheckBoxContents,
        QRadioButton: QStyle.SubElement.SE_RadioButtonContents,
    }
    kind = next((kind for kind in element if isinstance(button, kind)), None)
    if kind is None:
        inner = button.contentsRect().width()
    else:
        option = QStyleOptionButton()
        button.initStyleOption(option)
        inner = button.style().subElementRect(element[kind], option, button).width()
    needed = _text_width(button, text)
    if needed > inner + 1:
        return f"button {text!r}: {needed} px of text in {inner} px"
    return None


def _combo_problem(combo) -> str | None:
    from qtpy.QtWidgets import QStyle, QStyleOptionComboBox

    text = combo.currentText()
    if not text or _elided_on_purpose(combo, text):
        return None
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    field = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    needed = _text_width(combo, text)
    if needed > field.width() + 1:
        return f"combo box {text!r}: {needed} px of text in {field.width()} px"
    return None


def _line_edit_problem(edit) -> str | None:
    text = edit.text() or edit.placeholderText()
    if not text or _elided_on_purpose(edit, text):
        return None
    margins = edit.textMargins()
    # QLineEdit keeps 2 px each side of its text (qlineedit_p.h: horizontalMargin)
    inner = edit.contentsRect().width() - margins.left() - margins.right() - 4
    needed = _text_width(edit, text)
    if needed > inner + 1:
        return f"edit box {text!r}: {needed} px of text in {inner} px"
    return None


def _shown_text(widget) -> str:
    for name in ("currentText", "text"):
        if hasattr(widget, name):
            return getattr(widget, name)()
    return ""


def cut_texts(root) -> list[str]:
    """Texts under ``root`` (shown widgets only) that do not fit their widget."""
    from qtpy.QtWidgets import QAbstractButton, QComboBox, QLabel, QLineEdit, QWidget

    checks = (
        (QLabel, _label_problem),
        (QAbstractButton, _button_problem),
        (QComboBox, _combo_problem),
        (QLineEdit, _line_edit_problem),
    )
    problems = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.width() <= 0:
            continue
        # inside the dock and inside the window: a dock can reach past the window's edge
        window = root.window()
        left = widget.mapTo(root, widget.rect().topLeft()).x()
        right_in_window = widget.mapTo(window, widget.rect().topRight()).x()
        if isinstance(widget, tuple(kind for kind, _ in checks)) and (
            left < 0 or left + widget.width() > root.width() + 1 or right_in_window > window.width()
        ):
            problems.append(f"{type(widget).__name__} {_shown_text(widget)!r} runs past the dock's edge")
            continue
        for kind, check in checks:
            if isinstance(widget, kind):
                problem = check(widget)
                if problem:
                    problems.append(problem)
                break
    return problems


def is_ours(dock) -> bool:
    """One of the plugin's docks (napari titles them "<name> (napari-livecell)"; ours shorten it)."""
    return bool(dock.property("livecell")) or "(napari-livecell)" in dock.windowTitle()


def our_tabs(window):
    """(tab bar, index, title) of every tab of the plugin's docks."""
    from qtpy.QtWidgets import QDockWidget, QTabBar

    titles = {dock.windowTitle() for dock in window.findChildren(QDockWidget) if is_ours(dock)}
    return [
        (bar, i, bar.tabText(i))
        for bar in window.findChildren(QTabBar)
        if bar.parent() is window and bar.isVisible()
        for i in range(bar.count())
        if bar.tabText(i) in titles
    ]


def _tab_problem(bar, index: int, title: str) -> str | None:
    from qtpy.QtWidgets import QStyle, QTabBar

    shape = bar.shape()
    vertical = shape in (
        QTabBar.Shape.RoundedWest,
        QTabBar.Shape.RoundedEast,
        QTabBar.Shape.TriangularWest,
        QTabBar.Shape.TriangularEast,
    )
    rect = bar.tabRect(index)
    if not bar.rect().contains(rect):
        return f"tab {title!r} is outside its tab bar (scrolled away)"
    # QTabBar.tabSizeHint is protected: the text and the style's padding around it
    need = _text_width(bar, title) + bar.style().pixelMetric(QStyle.PixelMetric.PM_TabBarTabHSpace, None, bar)
    have = rect.height() if vertical else rect.width()
    if need > have + 1:
        return f"tab {title!r}: {need} px wanted, {have} px given (elided)"
    return None


@pytest.mark.parametrize("size", [(1280, 800), (1366, 768)], ids=["1280x800", "1366x768"])
def test_every_dock_text_reads_whole_on_a_laptop_screen(make_napari_viewer, qtbot, size):
    from qtpy.QtWidgets import QApplication, QDockWidget

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*size)
    viewer.open_sample("napari-livecell", "livecell_image")
    widgets = {
        name: viewer.window.add_plugin_dock_widget("napari-livecell", name)[1] for name in PLUGIN_WIDGETS
    }
    widgets["Segment cells"]._advanced.value = True  # its rarely changed settings are read too
    for widget in widgets.values():
        if hasattr(widget, "_status"):  # a long status line reads whole too
            widget._status.value = "154 cells in 1 frame(s); model default (shipped), runtime openvino, cpu"
    qtbot.waitUntil(lambda: len(our_tabs(window)) == len(PLUGIN_WIDGETS), timeout=5000)
    docks = [dock for dock in window.findChildren(QDockWidget) if is_ours(dock)]
    assert len(docks) == len(PLUGIN_WIDGETS)
    window.resize(*size)
    QApplication.processEvents()

    problems = []
    for dock in docks:
        dock.raise_()
        qtbot.waitUntil(dock.widget().isVisible, timeout=2000)
        qtbot.wait(50)  # the raised dock's layout settles
        problems += [f"{dock.windowTitle()}: {problem}" for problem in cut_texts(dock)]
    tabs = our_tabs(window)
    problems += [problem for bar, i, title in tabs if (problem := _tab_problem(bar, i, title))]
    assert not problems, "\n".join(problems)

    titles = [title for _, _, title in tabs]
    assert len(set(titles)) == len(titles) == len(PLUGIN_WIDGETS), titles
    assert window.minimumSizeHint().height() <= 700, window.minimumSizeHint()
    assert window.minimumHeight() <= 700
    assert (window.width(), window.height()) == size
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= 0.5 * window.width(), (canvas.width(), window.width())


def test_every_path_field_has_a_browse_button(make_napari_viewer):
    from magicgui.widgets import FileEdit
    from qtpy.QtWidgets import QPushButton

    viewer = make_napari_viewer()
    open_dock = viewer.window.add_plugin_dock_widget
    segment = open_dock("napari-livecell", "Segment cells")[1]
    train = open_dock("napari-livecell", "Train on corrections")[1]
    review = open_dock("napari-livecell", "Review dataset")[1]
    for field in (segment._weights, train._folder, train._out, review._source):
        edit = field.line_edit.native if isinstance(field, FileEdit) else field.native
        buttons = [button.text() for button in edit.parentWidget().findChildren(QPushButton)]
        assert "Browse…" in buttons, (field.label, buttons)
