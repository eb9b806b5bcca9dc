"""Where a run's labels go as they are made: the protocol every label writer follows.

``segment`` hands each finished frame's labels (or, for a frame too large to
hold, each finished band of it) to a *label sink* and forgets them, so that
its memory stays flat in frames and in pixels. A sink is told up front the
shape of the whole result and the id dtype; it writes frames in C order of
the stack's leading axes.

Resuming: after each finished frame the run calls :meth:`LabelSink.checkpoint`
and keeps the state it returns in its progress record; a rerun opens the sink
again with that state (``resume=``) and goes on with the next frame. What a
sink wrote after its last checkpoint (a frame cut short) is dropped then.

Implementations: :class:`napari_livecell.core.formats.tiff_sink.TiffLabelSink`
(a TIFF written page by page); the OME-Zarr labels group writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# a run's ids run on across frames; uint16 holds them when every frame's cells could fit
UINT16_IDS = 65535


@dataclass(frozen=True)
class LabelLayout:
    """What a sink will receive: the result's shape and the dtype of its ids.

    Attributes
    ----------
    leading : tuple of int
        The stack's leading axes (``()`` for one frame).
    frame_shape : tuple of int
        ``(height, width)`` of each frame.
    dtype : numpy.dtype
        The ids' dtype, decided before the first frame (:func:`id_dtype`).
    """

    leading: tuple[int, ...]
    frame_shape: tuple[int, int]
    dtype: np.dtype

    @property
    def n_frames(self) -> int:
        """Frames in the result (1 for a single frame)."""
        return int(np.prod(self.leading)) if self.leading else 1

    @property
    def shape(self) -> tuple[int, ...]:
        """The whole result's shape, ``(*leading, height, width)``."""
        return (*self.leading, *self.frame_shape)


def id_dtype(n_frames: int, cells_per_frame: int) -> np.dtype:
    """The smallest unsigned dtype (uint16 or uint32) that holds every id a run can give.

    Decided before the first frame from the most cells a frame can hold (the
    model's maximum detections, times the tiles of a tiled frame): a stream
    cannot go back and widen the pages it has written.
    """
    return np.dtype(np.uint16 if n_frames * cells_per_frame <= UINT16_IDS else np.uint32)


@runtime_checkable
class LabelSink(Protocol):
    """Receives a run's labels frame by frame (or band by band) and writes them out.

    Frames come in C order of the leading axes, each either whole
    (:meth:`write_frame`) or in pieces (:meth:`write_tile`) that cover it
    once, without overlap, in row-major order. Ids are final (they run on
    across frames) and fit the layout's dtype.
    """

    target: Path  # the finished output (a file or a folder), there once :meth:`close` returns

    def write_frame(self, index: tuple[int, ...], labels: np.ndarray) -> None:
        """Write frame ``index`` (its leading index, ``()`` for one frame): ``labels`` is ``(H, W)``."""

    def write_tile(self, index: tuple[int, ...], row0: int, col0: int, labels: np.ndarray) -> None:
        """Write a piece of frame ``index`` whose top-left pixel is ``(row0, col0)``."""

    def checkpoint(self) -> dict:
        """Make everything written so far durable; return the JSON-able state to resume from."""

    def close(self) -> None:
        """Finish the output and move it into place (atomically, where the format allows)."""

    def discard(self) -> None:
        """Drop the partial output (a run given up for good); the target is left untouched."""
