"""The one way the package loads its compiled kernels (numba): by module name, on first use.

numba's import (~0.3 s) and the kernels' compilation (cached on disk) stay
out of ``import napari_livecell`` and napari's start-up: every kernel module
(``_trace_kernel``, ``inference._mask_kernels``, ``tracking._linking_kernel``...)
is imported here the first time a caller needs it. numba is a dependency:
there is no numpy fallback to choose (docs/numba.md).

Examples
--------
>>> kernels("_box_kernel").__name__
'napari_livecell.core._box_kernel'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

# module name -> module. Tests put None here to run tracking's numpy reference paths (tracking keeps
# them to prove its compiled loops give the same links); a real install never holds None
_LOADED: dict[str, Any] = {}


def kernels(name: str) -> ModuleType:
    """The kernel module ``napari_livecell.core.<name>`` (say ``tracking._linking_kernel``), imported once.

    Raises
    ------
    ImportError
        No such module, or numba is not installed (a broken install: numba is a dependency).
    """
    if name not in _LOADED:
        _LOADED[name] = importlib.import_module(f"{__package__}.{name}")
    return _LOADED[name]
