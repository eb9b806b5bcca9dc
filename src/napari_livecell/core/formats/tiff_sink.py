"""A label TIFF written page by page as frames come: one page per frame, the stack's shape in page 1.

Whole frames become zlib-compressed pages (tifffile's ``TiffWriter``, one
``write`` per frame), so a 1,000-frame stack holds one frame's labels at a
time. A frame written in pieces (a frame too large to hold, tiled) gets an
uncompressed page, allocated empty (sparse on disk) and filled band by band
at the page's file offset: compression needs the whole page, or a TIFF's
tiles in order, which the bands do not give. The file is written beside the
target under a partial name and moved into place by :meth:`TiffLabelSink.close`.

Resuming (:mod:`.label_sink`): a checkpoint records the partial file's size
after the last finished page; a rerun cuts the file back to that size and
appends the next pages (tifffile's ``append=True`` goes on from the last
page it finds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .label_sink import LabelLayout


def partial_path(target: str | os.PathLike) -> Path:
    """Where the label TIFF for ``target`` grows until it is finished (hidden, beside it)."""
    target = Path(target)
    return target.with_name(f".{target.name}.partial")


class TiffLabelSink:
    """Writes a run's labels into one TIFF, page by page (see the module docstring).

    Parameters
    ----------
    target : path
        The finished file's name (``<stem>_labels.tif``).
    layout : LabelLayout
        Shape and id dtype of the whole result.
    resume : dict, optional
        The state of an earlier run's last :meth:`checkpoint`: go on after it.
    partial : path, optional
        Where the file grows until :meth:`close` (:func:`partial_path` by default).
    """

    def __init__(
        self,
        target: str | os.PathLike,
        layout: LabelLayout,
        resume: dict | None = None,
        partial: str | os.PathLike | None = None,
    ) -> None:
        import tifffile

        self.target = Path(target)
        self.path = partial_path(self.target) if partial is None else Path(partial)
        self.layout = layout
        self.frames = 0
        self._page: tuple[tuple[int, ...], int] | None = None  # (frame index, data offset) being filled
        append = False
        if resume and resume.get("frames", 0) > 0 and self.path.exists():
            size = int(resume["size"])
            if self.path.stat().st_size < size:
                raise OSError(f"{self.path} is shorter than its progress record says: start over")
            with open(self.path, "r+b") as handle:
                handle.truncate(size)  # a page cut short by the interruption
            self.frames, append = int(resume["frames"]), True
        self._writer = tifffile.TiffWriter(self.path, bigtiff=True, append=append)

    def _page_options(self) -> dict:
        options: dict = {"photometric": "minisblack", "metadata": None}
        if self.frames == 0:  # tifffile reads the stack's shape from the first page
            options["description"] = json.dumps({"shape": list(self.layout.shape)})
        return options

    def write_frame(self, index: tuple[int, ...], labels: np.ndarray) -> None:
        """Append frame ``index`` as one compressed page."""
        self._check(labels.shape, self.layout.frame_shape)
        data = np.ascontiguousarray(labels, dtype=self.layout.dtype)
        self._writer.write(data, compression="zlib", **self._page_options())
        self.frames += 1

    def write_tile(self, index: tuple[int, ...], row0: int, col0: int, labels: np.ndarray) -> None:
        """Write a piece of frame ``index`` into its (uncompressed) page, at ``(row0, col0)``."""
        height, width = self.layout.frame_shape
        if row0 < 0 or col0 < 0 or row0 + labels.shape[0] > height or col0 + labels.shape[1] > width:
            raise ValueError(f"a tile at ({row0}, {col0}) of {labels.shape} leaves the frame {height, width}")
        if self._page is None or self._page[0] != tuple(index):
            offset, _ = self._writer.write(  # type: ignore[misc]
                shape=self.layout.frame_shape,
                dtype=self.layout.dtype,
                returnoffset=True,
                **self._page_options(),
            )
            self._writer.filehandle.flush()  # the page is written through another handle below
            self._page = (tuple(index), offset)
            self.frames += 1
        data = np.ascontiguousarray(labels, dtype=self.layout.dtype)
        itemsize = data.dtype.itemsize
        offset = self._page[1]
        descriptor = os.open(self.path, os.O_WRONLY)
        try:
            if col0 == 0 and data.shape[1] == width:  # whole rows: one write
                os.pwrite(descriptor, data.tobytes(), offset + row0 * width * itemsize)
            else:
                for row, line in enumerate(data):
                    os.pwrite(descriptor, line.tobytes(), offset + ((row0 + row) * width + col0) * itemsize)
        finally:
            os.close(descriptor)

    def checkpoint(self) -> dict:
        """Flush the pages written so far; the state a rerun resumes from."""
        self._writer.filehandle.flush()
        return {"frames": self.frames, "size": self.path.stat().st_size}

    def close(self) -> None:
        """Finish the TIFF and move it over the target (atomically)."""
        from napari_livecell.core.atomic import _mode_for

        if self.frames != self.layout.n_frames:
            raise ValueError(f"{self.target.name}: {self.frames} of {self.layout.n_frames} frames written")
        self._writer.close()
        os.chmod(self.path, _mode_for(self.target))
        os.replace(self.path, self.target)

    def discard(self) -> None:
        """Close and delete the partial file."""
        self._writer.close()
        self.path.unlink(missing_ok=True)

    @staticmethod
    def _check(shape: tuple[int, ...], expected: tuple[int, int]) -> None:
        if tuple(shape) != tuple(expected):
            raise ValueError(f"labels of shape {tuple(shape)} for frames of {tuple(expected)}")
