"""Limits every reader shares: how large a label array may be, how large an id, how far a coordinate.

Readers size their output from a file's content, and a tiny file can name a
huge one (a ROI at x = 60000, a track id of 4e9, a frame number of 2e9).
These checks run before anything is allocated and refuse with one line
(:class:`LimitError`); ids too large for a lookup table are relabelled
densely instead (:func:`dense_ids`), and the reader says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

MAX_LABEL_GIB_VARIABLE = "NAPARI_LIVECELL_MAX_LABEL_GIB"
DEFAULT_MAX_LABEL_GIB = 8.0
# napari's Labels layer, the writers and every label array here hold int32
MAX_LABEL_ID = 2**31 - 1
# napari's Tracks layer and the trackers' lookup tables cost ~8 bytes per id up to the largest:
# larger ids are relabelled 1..N first (2**24 ids: a 128 MiB table)
MAX_DENSE_ID = 2**24
# a pixel coordinate beyond this (a frame over a million pixels a side) is no microscope's
MAX_COORDINATE = 2**20


class LimitError(ValueError):
    """An input that would need more than a limit allows, with the limit in the message."""


def max_label_bytes() -> int:
    """Largest label array a reader allocates at once, in bytes.

    ``$NAPARI_LIVECELL_MAX_LABEL_GIB`` (default 8) sets it: a file that names
    a 100000 x 100000 image gets a clear refusal instead of a MemoryError.
    """
    try:
        gib = float(os.environ.get(MAX_LABEL_GIB_VARIABLE, DEFAULT_MAX_LABEL_GIB))
    except ValueError:
        gib = DEFAULT_MAX_LABEL_GIB
    return int(gib * 2**30)


def check_label_shape(shape: Sequence[int], source: str, itemsize: int = 4) -> None:
    """Refuse a label array of ``shape`` larger than :func:`max_label_bytes`.

    Raises
    ------
    LimitError
        With the shape, the bytes it would take and how to raise the limit.
    """
    needed = int(np.prod([int(n) for n in shape], dtype=object)) * itemsize
    limit = max_label_bytes()
    if needed > limit:
        size = " x ".join(str(int(n)) for n in shape)
        raise LimitError(
            f"{source}: labels of {size} would need {needed / 2**30:,.1f} GiB, above the "
            f"{limit / 2**30:g} GiB limit (set {MAX_LABEL_GIB_VARIABLE} to raise it)"
        )


def check_coordinate(value: float, source: str) -> None:
    """Refuse a pixel coordinate that is not finite, negative, or beyond :data:`MAX_COORDINATE`."""
    if not np.isfinite(value) or value < 0 or value > MAX_COORDINATE:
        raise LimitError(
            f"{source}: coordinate {value:g} lies outside any frame (0 to {MAX_COORDINATE:,} px)"
        )


def dense_ids(ids: np.ndarray) -> np.ndarray | None:
    """The sorted distinct ids to relabel ``1..N`` when the largest passes :data:`MAX_DENSE_ID`, else None.

    Relabelling keeps the ids' order, so ``np.searchsorted(result, id) + 1``
    is an id's new value.

    Raises
    ------
    LimitError
        For negative ids (labels are 0 for background and positive ids).
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        return None
    if ids.dtype.kind not in "iu":
        raise LimitError(f"ids must be integers, not {ids.dtype}")
    if ids.dtype.kind == "i" and int(ids.min()) < 0:
        raise LimitError(f"id {int(ids.min())} is negative: ids are 0 (background) or positive")
    if int(ids.max()) <= MAX_DENSE_ID:
        return None
    distinct = np.unique(ids)
    return distinct[distinct > 0]
