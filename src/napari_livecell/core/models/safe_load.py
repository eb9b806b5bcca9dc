"""Reading ``.pt`` checkpoints without letting them run code.

A ``.pt`` file is a pickle, and unpickling with ``torch.load(weights_only=False)``
(what Ultralytics does by default) calls whatever functions the file names:
a crafted model file runs its payload the moment it is opened. Here every
checkpoint is read with ``torch.load(weights_only=True)``: torch's restricted
unpickler builds only tensors, plain containers and the globals on an
allow-list, and refuses everything else before calling it.

The allow-list holds what real Ultralytics checkpoints contain (measured on
the shipped model, yolov8n/yolo11n/yolo26n seg and detect models built from
their yaml and saved by Ultralytics, and a fine-tuned ``best.pt`` /
``last.pt`` with optimizer state):

- network layers: ``torch.nn.Module`` subclasses defined in
  ``torch.nn.modules.*``, ``ultralytics.nn.modules.*`` or
  ``ultralytics.nn.tasks``. Unpickling a module creates it without running
  its constructor and restores its attributes with ``Module.__setstate__``;
- data: ``ultralytics.utils.IterableSimpleNamespace`` (training arguments),
  numpy scalars and dtypes, ``pathlib`` paths;
- ``builtins.getattr``, restricted to attributes of layer classes (official
  checkpoints store e.g. ``Detect.forward`` that way).

:func:`use_in_ultralytics` routes Ultralytics' own checkpoint loading through
:func:`load_checkpoint`, so that ``YOLO("x.pt")``, training, resuming and
exporting read checkpoints the same way.
"""

from __future__ import annotations

import enum
import importlib
import os
import pickle
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from napari_livecell.core.errors import ModelError

# modules whose nn.Module subclasses are network layers (see the module docstring)
_LAYER_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.modules.")
_LAYER_MODULES = frozenset({"torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks"})

_lock = threading.Lock()
# names already registered with torch (add_safe_globals is process-wide; the
# safe_globals() context is not used: its exit would strip the entries from a
# concurrent load in another thread)
_registered: set[str] = set()


class _Blocked(pickle.UnpicklingError):
    """A pickled ``getattr`` that asked for something other than a layer attribute."""


class _Refused(Exception):
    """A global outside the allow-list (its pickled name in ``name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _restricted_getattr(obj: Any, name: str) -> Any:
    import torch

    if isinstance(obj, type) and not name.startswith("_") and issubclass(obj, (torch.nn.Module, enum.Enum)):
        return getattr(obj, name)
    if isinstance(obj, torch.nn.Module) and name in ("forward", "forward_fuse"):
        return getattr(type(obj), name).__get__(obj)
    raise _Blocked(f"getattr({type(obj).__name__ if not isinstance(obj, type) else obj.__name__}, {name!r})")


@lru_cache(maxsize=1)
def _data_globals() -> dict[str, Any]:
    """Pickled name -> object for the non-layer globals a checkpoint may hold."""
    import pathlib

    import numpy as np
    from ultralytics.utils import IterableSimpleNamespace

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar constructor (from dtype and bytes)
    allowed: dict[str, Any] = {
        "numpy.core.multiarray.scalar": scalar,
        "numpy._core.multiarray.scalar": scalar,
        "numpy.dtype": np.dtype,
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "builtins.getattr": _restricted_getattr,
    }
    for module in ("pathlib", "pathlib._local"):
        for name in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"):
            # a path pickled on the other OS reads as this OS's path
            native = name.replace("Windows", "Posix") if os.name != "nt" else name.replace("Posix", "Windows")
            allowed[f"{module}.{name}"] = getattr(pathlib, native)
    return allowed


def allowed_global(name: str) -> Any | None:
    """The object a checkpoint may name as ``name``, or ``None`` if it is not allowed.

    Parameters
    ----------
    name : str
        ``"module.Name"`` as pickled, e.g. ``"ultralytics.nn.modules.conv.Conv"``.

    Returns
    -------
    object or None
        The class or function to allow under that name.
    """
    import torch

    data = _data_globals()
    if name in data:
        return data[name]
    module, _, attribute = name.rpartition(".")
    if module in _LAYER_MODULES or module.startswith(_LAYER_PACKAGES):
        try:
            obj = getattr(importlib.import_module(module), attribute, None)
        except ImportError:
            return None
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
            return obj
    return None


def _register(names: list[str]) -> None:
    """Allow ``names`` for ``weights_only`` loading, or refuse the first that is not allowed."""
    import torch

    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()  # the allow-list names Ultralytics classes; import it offline
    with _lock:
        entries = []
        for name in names:
            if name in _registered:
                continue
            obj = allowed_global(name)
            if obj is None:
                raise _Refused(name)
            entries.append((obj, name))
        if entries:
            torch.serialization.add_safe_globals(list(entries))
            _registered.update(name for _, name in entries)


def _refusal(path: Path, name: str) -> ModelError:
    return ModelError(
        f"refused {path.name}: it needs {name}, which is not a type a model checkpoint holds "
        "(loading it could run code)"
    )


def _unsafe_globals(path: Path) -> list[str]:
    """Globals the file names beyond torch's own safe set (a static scan)."""
    import torch

    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except ValueError as error:
        if "torchscript" in str(error).lower():
            raise ModelError(
                f"{path.name} is a TorchScript archive, not a PyTorch checkpoint: name it .torchscript"
            ) from None
        return _legacy_globals(path)
    except Exception as error:  # a damaged zip raises RuntimeError, others vary
        raise _unreadable(path, _first_line(error)) from None


def _legacy_globals(path: Path) -> list[str]:
    """Globals named by a legacy (non-zip) torch file or a bare pickle, found without running it.

    A legacy file is a few pickles in a row (magic number, version, system
    info, the object) followed by raw tensor bytes; the scan stops at the
    first thing that is not a pickle.
    """
    import pickletools

    names: set[str] = set()
    with open(path, "rb") as file:
        for _ in range(4):
            strings: list[str] = []
            try:
                for opcode, argument, _position in pickletools.genops(file):
                    if opcode.name == "GLOBAL":
                        names.add(str(argument).replace(" ", "."))
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        names.add(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(argument, str):
                        strings.append(argument)
            except Exception:  # tensor bytes after the last pickle, or not a pickle at all
                break
    return sorted(name for name in names if name not in _torch_safe_names())


def _torch_safe_names() -> set[str]:
    """Names torch's restricted unpickler allows by default or already registered."""
    from torch import _weights_only_unpickler as unpickler

    return set(unpickler._get_allowed_globals()) | set(unpickler._get_user_allowed_globals())


def _unpickler_reason(error: BaseException) -> str:
    """The restricted unpickler's own reason, without torch's paragraph around it."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", str(error), re.DOTALL)
    return found.group(1).strip().splitlines()[0] if found else _first_line(error)


def _unreadable(path: Path, reason: str) -> ModelError:
    return ModelError(f"cannot read {path.name} as a PyTorch checkpoint (corrupt or not a model): {reason}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def check_checkpoint(path: str | os.PathLike) -> None:
    """Refuse a checkpoint that needs a global outside the allow-list (the check loads it safely).

    The file's pickle instructions are scanned first (nothing runs), which
    names the offending global; a restricted load then catches what a scan
    cannot see (attributes fetched through ``getattr``).

    Parameters
    ----------
    path : path
        A ``.pt`` file (zip checkpoint, legacy torch file or bare pickle).

    Raises
    ------
    ModelError
        The file needs a global that is not allowed (named in the message), or
        it cannot be read.
    """
    load_checkpoint(path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a ``.pt`` checkpoint with ``torch.load(weights_only=True)`` and the allow-list.

    Parameters
    ----------
    path : path
        A checkpoint written by ``torch.save`` (Ultralytics, napari-livecell).
    map_location : str or torch.device
        Where tensors are loaded (CPU by default).

    Returns
    -------
    object
        The unpickled checkpoint (a dict for Ultralytics files).

    Raises
    ------
    ModelError
        The file needs a global that is not allowed (named in the message) or
        is not a readable checkpoint.
    FileNotFoundError
        The file does not exist.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    names = _unsafe_globals(path)
    try:
        if names:
            _register(sorted(names))
        # a legacy (non-zip) file cannot be scanned: allow its layer classes as the
        # restricted unpickler meets them (at most one retry per distinct global)
        for _ in range(1000):
            try:
                return torch.load(str(path), map_location=map_location, weights_only=True)
            except pickle.UnpicklingError as error:
                found = re.search(r"GLOBAL (\S+)", str(error))
                if isinstance(error, _Blocked) or not found or found.group(1) in _registered:
                    raise
                _register([found.group(1)])
        raise ModelError(f"cannot read {path.name}: too many distinct globals")
    except _Refused as refused:
        raise _refusal(path, refused.name) from None
    except _Blocked as blocked:
        raise _refusal(path, str(blocked)) from None
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(error)
        if "getattr(" in reason:
            raise _refusal(path, reason) from None
        raise _unreadable(path, reason) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise _unreadable(path, _first_line(error)) from None


def _ultralytics_torch_load(f, map_location: Any = "cpu", *args, weights_only: bool | None = None, **kwargs):
    """Drop-in for ``ultralytics.utils.patches.torch_load``: files go through :func:`load_checkpoint`."""
    import torch

    if isinstance(f, (str, os.PathLike)):
        return load_checkpoint(f, map_location=map_location)
    return torch.load(f, map_location, *args, weights_only=True, **kwargs)


def _ultralytics_torch_safe_load(weight, safe_only=None):
    """Drop-in for ``ultralytics.nn.tasks.torch_safe_load``: local files only, allow-list only."""
    checkpoint = load_checkpoint(weight)
    if not isinstance(checkpoint, dict):
        raise ModelError(f"{Path(weight).name} is not an Ultralytics checkpoint (no checkpoint dict)")
    return checkpoint, str(weight)


def use_in_ultralytics() -> None:
    """Make Ultralytics read every checkpoint with :func:`load_checkpoint` (idempotent).

    Ultralytics' loaders default to ``weights_only=False`` and look missing
    files up online. Its ``torch_safe_load`` (behind ``YOLO("x.pt")``,
    training, resuming, validation) and the ``torch_load`` it uses for
    ``last.pt`` / ``best.pt`` are replaced in the modules that call them.
    """
    import ultralytics.engine.trainer  # noqa: F401  (imports the modules patched below)
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.patches as patches
    import ultralytics.utils.torch_utils as torch_utils

    with _lock:
        if tasks.torch_safe_load is _ultralytics_torch_safe_load:
            return
        modules: tuple[Any, ...] = (tasks, patches, torch_utils)
        for module in modules:
            module.torch_load = _ultralytics_torch_load
        tasks.torch_safe_load = _ultralytics_torch_safe_load
