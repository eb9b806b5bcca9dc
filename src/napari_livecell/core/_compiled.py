"""The compiled kernels (numba), imported on first use; None where numba is missing.

numba's import (~0.3 s) stays out of ``import napari_livecell`` and napari's
start-up; every caller keeps a numpy path for ``None`` (docs/numba.md).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> module, or None when it cannot be imported (no numba)
_LOADED: dict[str, ModuleType | None] = {}


def kernels(name: str) -> ModuleType | None:
    """The kernel module ``napari_livecell.core.<name>`` (say ``tracking._linking_kernel``) or None."""
    if name not in _LOADED:
        try:
            _LOADED[name] = importlib.import_module(f"{__package__}.{name}")
        except ImportError:
            _LOADED[name] = None
    return _LOADED[name]
