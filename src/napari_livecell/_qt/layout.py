"""Texts that read whole in a narrow dock: combo boxes and edit boxes that shrink, short Browse buttons.

A dock is about 300 px wide. A combo box sizes itself to its longest entry
(a layer name of 40 characters) unless told otherwise, and a magicgui
FileEdit's "Choose directory" button takes half the row: here a combo box
shrinks and shows its whole text as tooltip (Qt elides what it paints), an
edit box shows its whole text as tooltip, and a path field has a short
"Browse…" button.
"""

from __future__ import annotations

from typing import Any

BROWSE = "Browse…"
MIN_COMBO_CHARACTERS = 6  # a combo box never asks for more width than its longest entry needs


def _with_tip(text: str, note: str) -> str:
    """The widget's whole text, then its own explanation (if any)."""
    return f"{text}\n\n{note}" if note and text else text or note


def tooltip_follows_text(widget: Any) -> None:
    """Show a QComboBox's current text or a QLineEdit's text (before its own tooltip) as its tooltip."""
    from qtpy.QtWidgets import QComboBox

    note = widget.toolTip()
    if isinstance(widget, QComboBox):
        signal, text = widget.currentTextChanged, widget.currentText
    else:
        signal, text = widget.textChanged, widget.text

    def update(_text: str = "") -> None:
        try:
            widget.setToolTip(_with_tip(text(), note))
        except RuntimeError:  # closed
            pass

    signal.connect(update)
    update()


def readable_texts(root: Any) -> None:
    """Make every combo box and edit box under the QWidget ``root`` fit a narrow dock.

    Combo boxes no longer widen the dock to their longest entry; both kinds
    carry their whole text as tooltip (a spin box's edit box is left alone: its
    number fits).
    """
    from qtpy.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit

    for combo in root.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(MIN_COMBO_CHARACTERS)
        tooltip_follows_text(combo)
    for edit in root.findChildren(QLineEdit):
        if isinstance(edit.parent(), (QAbstractSpinBox, QComboBox)):
            continue
        tooltip_follows_text(edit)


def short_browse(file_edit: Any) -> None:
    """A magicgui FileEdit's "Choose directory"/"Select file" button as a short "Browse…"."""
    file_edit.choose_btn.text = BROWSE
    file_edit.choose_btn.tooltip = "choose a folder" if file_edit.mode.value == "d" else "choose a file"


def add_browse_button(line_edit: Any, choices: list[tuple[str, str, str]]) -> Any:
    """Put a "Browse…" button beside a magicgui LineEdit (already in its container); return the QPushButton.

    Parameters
    ----------
    line_edit : magicgui.widgets.LineEdit
        The path field; the chosen path is written into it.
    choices : list of (str, str, str)
        ``(menu text, mode, name filter)``: ``mode`` ``"d"`` picks a folder,
        ``"r"`` an existing file. With several choices the button opens a
        menu of them.
    """
    from qtpy.QtWidgets import QFileDialog, QMenu, QPushButton

    native = line_edit.native
    button = QPushButton(BROWSE)

    def pick(mode: str, name_filter: str) -> None:
        start = str(line_edit.value or "")
        if mode == "d":
            path = QFileDialog.getExistingDirectory(native, "Choose a folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(native, "Choose a file", start, name_filter)
        if path:
            line_edit.value = path

    if len(choices) == 1:
        _, mode, name_filter = choices[0]
        button.clicked.connect(lambda: pick(mode, name_filter))
    else:
        menu = QMenu(button)
        for text, mode, name_filter in choices:
            menu.addAction(text, lambda mode=mode, name_filter=name_filter: pick(mode, name_filter))
        button.setMenu(menu)
    button.setToolTip(" or ".join(text.rstrip("…").lower() for text, _, _ in choices))
    row = native.parentWidget()
    layout = row.layout() if row is not None else None
    if layout is not None:
        layout.addWidget(button)
    return button
