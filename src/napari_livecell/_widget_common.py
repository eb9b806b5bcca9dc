"""What the Segment cells and Train on corrections widgets share.

The model picker's entries (the shipped default, then recently used files),
offering a newly trained model to every open Segment cells picker, and
reporting a user's problem.
"""

from __future__ import annotations

import weakref
from typing import Any

from napari_livecell._segment_work import load_recent_models, remember_model

DEFAULT_MODEL_CHOICE = "default (shipped, synthetic LIVECell)"
_SEGMENT_MODEL_PICKERS: weakref.WeakSet = weakref.WeakSet()


def model_choices(_widget=None) -> list[str]:
    """Model picker entries: the shipped default, then recently used model files."""
    return [DEFAULT_MODEL_CHOICE, *load_recent_models()]


def register_segment_model_picker(picker: Any) -> None:
    """Let :func:`offer_model` choose new models in this (Segment cells) model ComboBox."""
    _SEGMENT_MODEL_PICKERS.add(picker)


def offer_model(path: str) -> None:
    """Add a model file to the recent list and choose it in every open Segment cells widget."""
    remember_model(path)
    for picker in list(_SEGMENT_MODEL_PICKERS):
        try:
            picker.reset_choices()
            picker.value = path
        except RuntimeError:  # its Qt widget was closed (deleted) with its viewer
            _SEGMENT_MODEL_PICKERS.discard(picker)


def notify_error(status: Any, message: str) -> None:
    """Show a user's problem in a widget's status line and as a napari notification."""
    from napari.utils.notifications import show_warning

    status.value = message
    show_warning(message)
