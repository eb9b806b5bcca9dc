"""napari-livecell: segment and proofread cells in phase-contrast images with YOLO-seg.

The Python API is :mod:`napari_livecell.api` (``from napari_livecell import api``).
It is imported on first use, so that importing the plugin (what napari does at
start-up) loads neither torch, numba nor napari.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "api"]

if TYPE_CHECKING:
    from napari_livecell import api


def __getattr__(name: str) -> Any:
    if name == "api":
        import importlib

        return importlib.import_module("napari_livecell.api")
    raise AttributeError(f"module 'napari_livecell' has no attribute {name!r}")
