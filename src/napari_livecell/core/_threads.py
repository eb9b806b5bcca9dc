"""A second thread for the compiled post-processing, which releases the GIL.

Post-processing runs after the network's forward pass, which uses every core:
once it is done, splitting the work of one frame (mask decoding, outline
tracing) in two halves uses the idle second core. The kernels are numba
``nogil`` functions or OpenCV calls, so the halves run at the same time.

When a run segments frames side by side (:func:`frames_at_once`: one
OpenVINO stream per core), every core already has a frame: the halves then
run one after the other in the frame's own thread.

Where to split: bands of rows of about equal pixels
(``_mask_kernels.plan_paint``), :func:`balanced_id` (cells of about equal work).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import TypeVar

import numpy as np

T = TypeVar("T")
U = TypeVar("U")

_FRAMES_AT_ONCE: ContextVar[int] = ContextVar("napari_livecell_frames_at_once", default=1)


@contextmanager
def frames_at_once(count: int) -> Iterator[None]:
    """Within this block (in this thread), ``count`` frames are being segmented side by side.

    The forward pass then runs on its share of the cores (an OpenVINO
    stream, :class:`.openvino_model.StaticShapes`) and the post-processing
    in this thread alone.
    """
    token = _FRAMES_AT_ONCE.set(max(1, int(count)))
    try:
        yield
    finally:
        _FRAMES_AT_ONCE.reset(token)


def frames_in_flight() -> int:
    """Frames segmented side by side, as set by :func:`frames_at_once` (1 outside it)."""
    return _FRAMES_AT_ONCE.get()


@lru_cache(maxsize=1)
def _helper():
    """One extra thread, shared by every caller (``None`` on a one-core machine)."""
    from concurrent.futures import ThreadPoolExecutor

    if (os.cpu_count() or 1) < 2:
        return None
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-livecell-half")


def in_two_threads(first: Callable[[], T], second: Callable[[], U], worth_it: bool = True) -> tuple[T, U]:
    """``(first(), second())``, with ``second`` on the helper thread while ``first`` runs here.

    Parameters
    ----------
    first, second : callable
        Independent halves of one job; ``second`` must not itself wait for the
        helper thread (it would wait for itself).
    worth_it : bool
        False runs both here, one after the other (small jobs: a hand-off costs ~0.1 ms);
        so does a frame segmented beside others (:func:`frames_at_once`).

    Returns
    -------
    tuple
        Both results, in order. An exception of either half is raised here.
    """
    helper = _helper() if worth_it and frames_in_flight() == 1 else None
    if helper is None:
        return first(), second()
    pending = helper.submit(second)
    try:
        result = first()
    finally:
        other = pending.result()  # always joined: the halves share the caller's buffers
    return result, other


# how much a run's threads yield to the GUI thread: Linux nice +5 gives a busy thread ~1/3 of the
# GUI thread's share of a contended core (the kernel's weights), no slower when a core is idle
WORKER_NICENESS = 5


def yield_to_interactive_threads() -> None:
    """Lower the calling thread's priority, so that a GUI thread wins the cores when both want them.

    For the threads of a run (:func:`.run.pipeline`): frames side by side keep
    every core busy, and a napari repaint then waited its turn (benchmarks/README.md).
    Threads this thread starts inherit it, as do OpenVINO's stream threads
    compiled from it. Linux only: elsewhere the call does nothing (on macOS
    ``setpriority`` takes process ids, not thread ids).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + WORKER_NICENESS))
    except OSError:  # a sandbox that forbids it: the run goes on at normal priority
        pass


def balanced_id(boxes: np.ndarray, first: int, stop: int, per_pixel: int = 1, per_edge: int = 8) -> int:
    """The id splitting ids ``first..stop - 1`` into two halves of about equal work.

    Per-cell work grows with the cell's box: ``per_pixel`` times its pixels
    plus ``per_edge`` times its height and width. The pieces pass reads every
    pixel of the box (the defaults); the outline tracer's steps follow the
    border (``per_pixel=0``: with the defaults its halves differed by ~10 %).
    ``boxes``: first row, row end, first column, column end of each id
    (first row -1: none). Splitting the ids in half left one thread waiting
    ~1 ms a frame for the other at ~500 cells.
    """
    part = boxes[first:stop]
    present = part[:, 0] >= 0
    height = (part[:, 1] - part[:, 0]) * present
    width = (part[:, 3] - part[:, 2]) * present
    work = np.cumsum(per_pixel * height * width + per_edge * (height + width))
    if not len(work) or not work[-1]:
        return (first + stop) // 2
    return first + int(np.searchsorted(work, work[-1] / 2))
