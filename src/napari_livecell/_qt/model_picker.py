"""The model picker the Segment cells and Train on corrections widgets share.

Its entries are the shipped default, then recently used model files (kept in
the plugin's settings folder); a newly trained model is offered to every open
Segment cells picker.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

DEFAULT_MODEL_CHOICE = "default (shipped, synthetic LIVECell)"
MAX_RECENT_MODELS = 8
_SEGMENT_MODEL_PICKERS: weakref.WeakSet = weakref.WeakSet()


def _recent_models_file() -> Path:
    from napari_livecell.core.models.offline import config_dir

    return config_dir().parent / "recent_models.txt"


def load_recent_models() -> list[str]:
    """Model files used before (most recent first), those that still exist."""
    try:
        lines = _recent_models_file().read_text().splitlines()
    except OSError:
        return []
    return [line for line in lines if line and Path(line).exists()][:MAX_RECENT_MODELS]


def remember_model(path: str) -> None:
    """Put a model file at the top of the recent list."""
    recent = [path] + [p for p in load_recent_models() if p != path]
    try:
        _recent_models_file().write_text("\n".join(recent[:MAX_RECENT_MODELS]) + "\n")
    except OSError:
        pass  # a read-only home only loses the convenience


def model_choices(_widget=None) -> list[str]:
    """Model picker entries: the shipped default, then recently used model files."""
    return [DEFAULT_MODEL_CHOICE, *load_recent_models()]


def device_choices(_widget=None) -> list[str]:
    """Device picker entries: ``auto`` and ``cpu``, and the GPUs once torch is imported.

    Asking torch for its GPUs imports it (seconds): a dock that opens does not,
    ``auto`` takes a GPU when there is one, and the list fills in after the first run.
    """
    import sys

    if "torch" not in sys.modules:
        return ["auto", "cpu"]
    from napari_livecell.core.models.model import available_devices

    return available_devices()


def chosen_weights(choice: str) -> str | None:
    """The weights path of a picker entry (``None``: the shipped default)."""
    return None if choice == DEFAULT_MODEL_CHOICE else choice


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
