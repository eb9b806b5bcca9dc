"""The inference stack (torch, Ultralytics: 5-15 s to import) loads in the first run's worker.

A dock that imported it in ``__init__`` froze napari for that long when it
opened. Here nothing is imported when a dock opens: the first run's worker
imports the stack, and pays napari's first-layer costs, before its first
frame (its dock says "loading the model..." meanwhile); later runs find
both done. (Warming up in a thread as the dock opened starved the GUI
thread of the GIL: opening Segment cells took 1.8 s instead of 0.2 s.)
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any

LOADING = "loading the model (first run)..."
_loaded = threading.Event()  # a run's worker imported the stack (or found no PyTorch to import)
_warmed_up = threading.Event()


def stack_loaded() -> bool:
    """Whether torch and Ultralytics are imported already (a run starts right away)."""
    return _loaded.is_set() or ("ultralytics" in sys.modules and "torch._dynamo" in sys.modules)


def starting_message(message: str) -> str:
    """A run's first status line: ``message``, or :data:`LOADING` while the stack still has to load."""
    return message if stack_loaded() else LOADING


def loading_first(
    generator_function: Callable[..., Generator], needs_ultralytics: Callable[[], bool] | None = None
) -> Callable[..., Generator]:
    """``generator_function`` that first imports the inference stack, in the thread that runs it.

    torch's first prediction imports ``torch._dynamo``; importing it here, at
    the start of the worker, keeps that out of the GUI thread (measured with
    torch 2.14 in a napari thread worker: imports and predicts).
    ``needs_ultralytics`` (asked in the worker: it may import torch to find a
    GPU) says whether the run's model needs PyTorch and Ultralytics at all; an
    ONNX model run by ONNX Runtime does not, and its first run skips them.
    """

    @functools.wraps(generator_function)
    def run(*args: Any, **kwargs: Any) -> Generator:
        from napari_livecell.core.inference.predict import import_inference_modules

        import_inference_modules(needs_ultralytics() if needs_ultralytics is not None else True)
        _loaded.set()
        if not _warmed_up.is_set():
            from napari_livecell._qt.layer_updates import warm_up_layer_code

            warm_up_layer_code()  # napari's first-layer costs, before this run's layers appear
            _warmed_up.set()
        return (yield from generator_function(*args, **kwargs))

    return run
