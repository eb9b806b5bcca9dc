"""A run's results streamed to disk as frames finish, with a progress record to resume from.

``segment`` keeps no frame once it is written: each finished frame's labels
go to a label sink (:mod:`napari_livecell.core.formats.label_sink`), its
outlined image to a PNG, its cells to a JSON-lines cells file
(:mod:`napari_livecell.core.formats.coco_stream`). After each frame the
progress record (``<out>/.segment-progress-<key>.json``, the key a hash of
the run's inputs and settings) says how far each input got and what the sink
needs to go on; a rerun with the same inputs and settings finds it and starts
each input after its last finished frame. Partial files carry the same key,
so that two runs with other inputs or settings into one folder never touch
each other's. The record and the cells files are removed once the run's COCO
json is written.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

RECORD_PREFIX = ".segment-progress-"


def input_fingerprint(path: str | os.PathLike) -> list:
    """What identifies an input file for a resume: its path, size and modification time."""
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def _fresh_state() -> dict:
    return {"frames": 0, "first_id": 0, "cells_bytes": 0, "sink": {}, "done": False, "polarities": {}}


class RunProgress:
    """The progress record of a run into one output folder.

    Parameters
    ----------
    out : path
        The output folder.
    fingerprint : dict
        What makes two runs the same run (inputs and every setting that
        changes the cells); JSON-able.
    """

    def __init__(self, out: str | os.PathLike, fingerprint: dict) -> None:
        import hashlib

        self.out = Path(out)
        text = json.dumps(fingerprint, sort_keys=True)
        self.fingerprint = json.loads(text)  # as it reads back
        self.key = hashlib.sha256(text.encode()).hexdigest()[:12]
        self.path = self.out / f"{RECORD_PREFIX}{self.key}.json"
        self.inputs: dict[str, dict] = {}
        record = None
        if self.path.exists():
            try:
                record = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None  # cut short: the partial files it described are started over
        if isinstance(record, dict) and record.get("fingerprint") == self.fingerprint:
            self.inputs = dict(record.get("inputs") or {})
        # an earlier run of the same inputs and settings left frames to go on from
        self.resumed = any(state.get("frames") for state in self.inputs.values())

    def partial(self, stem: str, suffix: str) -> Path:
        """A partial file of input ``stem`` of this run (hidden, in the output folder, with its key)."""
        return self.out / f".{stem}.{self.key}{suffix}"

    def cells(self, stem: str) -> Path:
        """Input ``stem``'s cells file."""
        return self.partial(stem, ".cells.jsonl")

    def state(self, stem: str) -> dict:
        """Input ``stem``'s progress (frames done, next id, the sink's checkpoint...), created fresh."""
        return self.inputs.setdefault(stem, _fresh_state())

    def restart(self, stem: str) -> dict:
        """Forget input ``stem``'s progress (its files are removed by the caller)."""
        self.inputs[stem] = _fresh_state()
        return self.inputs[stem]

    def save(self) -> None:
        """Write the record (atomically)."""
        from napari_livecell.core.atomic import write_text_atomic

        write_text_atomic(self.path, json.dumps({"fingerprint": self.fingerprint, "inputs": self.inputs}))

    def finish(self) -> None:
        """Remove the record and the cells files: the run's results are all written."""
        for stem in self.inputs:
            self.cells(stem).unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)


@dataclass
class InputSummary:
    """What a streamed input gave, for the run's report and the COCO json's settings."""

    n_frames: int
    n_cells: int
    polarities: str
    resamplings: str
    first_resampling: dict | None


def summary_of(state: dict) -> InputSummary:
    """The summary of an input from its progress state (finished now or by an earlier run)."""
    counts = state.get("polarities") or {}
    if not counts:
        polarities = "modality not reported"
    elif len(counts) == 1:
        polarities = next(iter(counts))
    else:
        polarities = "; ".join(f"{text} in {n} frame(s)" for text, n in counts.items())
    phrases = state.get("resamplings") or []
    return InputSummary(
        n_frames=int(state["frames"]),
        n_cells=int(state["first_id"]),
        polarities=polarities,
        resamplings="; ".join(phrases) if phrases else "pixel size not reported",
        first_resampling=state.get("first_resampling"),
    )


class OutlineWriter:
    """Outlined frames as PNGs: ``<stem>_outlines.png`` for one frame, a folder of frames for a stack."""

    def __init__(self, out: str | os.PathLike, stem: str, leading: tuple[int, ...]) -> None:
        from .render import outlines_folder

        self.out, self.stem, self.leading = Path(out), stem, leading
        self.folder = outlines_folder(out, stem) if leading else None
        if self.folder is not None:
            self.folder.mkdir(exist_ok=True)

    def write(self, number: int, frame: np.ndarray, labels: np.ndarray) -> None:
        """Write frame ``number``'s outlined image (atomically)."""
        from napari_livecell.core.atomic import write_with

        from .render import draw_outlines, frame_png_name, png_bytes

        payload = png_bytes(draw_outlines(frame, labels))
        target = (
            self.out / f"{self.stem}_outlines.png"
            if self.folder is None
            else self.folder / frame_png_name(number)
        )
        write_with(target, lambda path: path.write_bytes(payload))

    def finish(self, n_frames: int) -> None:
        """Remove frames of an earlier, longer stack of this name."""
        if self.folder is None:
            return
        for stale in self.folder.glob("frame_*.png"):
            if stale.stem[6:].isdigit() and int(stale.stem[6:]) >= n_frames:
                stale.unlink()


def offset_labels(labels: np.ndarray, first_id: int, dtype: np.dtype) -> np.ndarray:
    """A frame's labels ``1..K`` as ids ``first_id + 1..first_id + K`` in ``dtype`` (0 stays 0).

    Raises
    ------
    ValueError
        Ids past what ``dtype`` holds (never wrapped around).
    """
    top = first_id + (int(labels.max()) if labels.size else 0)
    if top > np.iinfo(dtype).max:
        raise ValueError(f"cell id {top} does not fit the labels' {np.dtype(dtype).name}")
    out = labels.astype(dtype)
    if first_id:
        np.add(out, first_id, out=out, where=labels > 0)
    return out


def stream_input(
    results: Iterable,
    image_frames: Iterator,
    sink: Any,
    outlines: OutlineWriter,
    file_name: str,
    dtype: np.dtype,
    state: dict,
    progress: RunProgress,
    cells_file: str | os.PathLike,
) -> None:
    """Write each finished frame of ``results`` as it comes, and record the progress after each.

    Parameters
    ----------
    results : iterable of FrameResult
        The frames from ``state["frames"]`` on, in order.
    image_frames : iterator of (index, frame)
        The input's frames from the same one on (:func:`.predict.iter_frames`), for the outlines.
    sink : LabelSink
        Where the labels go.
    outlines : OutlineWriter
        Where the outlined frames go.
    file_name : str
        The input's name, for the COCO image entries.
    dtype : numpy.dtype
        The labels' id dtype.
    state : dict
        The input's progress state (updated in place).
    progress : RunProgress
        Saved after each frame.
    cells_file : path
        The input's cells file (cut back to the state's length, then appended to).
    """
    from napari_livecell.core.formats.coco_stream import frame_line

    stacked = bool(outlines.leading)
    with open(cells_file, "ab") as cells:
        cells.truncate(state["cells_bytes"])  # a line cut short by an interruption
        cells.seek(state["cells_bytes"])
        for result in results:
            number = state["frames"]
            _, frame = next(image_frames)
            segmentation = result.segmentation
            sink.write_frame(result.index, offset_labels(segmentation.labels, state["first_id"], dtype))
            outlines.write(number, frame, segmentation.labels)
            cells.write(frame_line(segmentation, file_name, number if stacked else None))
            cells.flush()
            state["frames"] = number + 1
            state["first_id"] += segmentation.n_cells
            state["cells_bytes"] = cells.tell()
            _count_decisions(state, result.polarity, result.resampling)
            state["sink"] = sink.checkpoint()
            progress.save()


def _count_decisions(state: dict, polarity: Any, resampling: Any) -> None:
    if polarity is not None:
        counts = Counter(state.get("polarities") or {})
        counts[polarity.describe()] += 1
        state["polarities"] = dict(counts)
    if resampling is not None:
        phrases = state.setdefault("resamplings", [])
        if resampling.describe() not in phrases:
            phrases.append(resampling.describe())
        if "first_resampling" not in state:
            state["first_resampling"] = resampling.as_dict()


# frames larger than the network input: labels band by band, outlines on an overview ------------

OVERVIEW_SIDE = 4096  # px: a tiled frame's outlines are drawn on a view at most this large


class Overview:
    """A frame's labels kept at every ``factor``-th row and column, filled band by band."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.factor = max(1, math.ceil(max(shape) / OVERVIEW_SIDE))
        self.labels = np.zeros([math.ceil(side / self.factor) for side in shape], np.int32)

    def add(self, row0: int, band: np.ndarray) -> None:
        """Keep the rows of ``band`` (frame rows ``row0..``) that fall on the overview's grid."""
        skip = -row0 % self.factor
        rows = band[skip :: self.factor, :: self.factor]
        first = (row0 + skip) // self.factor
        self.labels[first : first + len(rows)] = rows


def stream_tiled_input(
    image_frames: Iterator,
    segment_bands: Any,
    sink: Any,
    outlines: OutlineWriter,
    file_name: str,
    dtype: np.dtype,
    state: dict,
    progress: RunProgress,
    cells_file: str | os.PathLike,
    on_tiles: Any = None,
) -> None:
    """:func:`stream_input` for frames segmented in tiles: labels and cells written band by band.

    Parameters
    ----------
    image_frames : iterator of (index, frame)
        The frames from ``state["frames"]`` on.
    segment_bands : callable
        ``segment_bands(frame, on_band, on_cells)``: a generator of ``(tiles
        done, tiles)`` returning ``(cells, polarity, resampling)``
        (:func:`.bands.segment_frame_bands` with a model and settings).
    on_tiles : callable, optional
        ``on_tiles(frame number, done, total)`` after each tile.

    Other parameters are those of :func:`stream_input`. A frame's outlines
    go to an overview of at most :data:`OVERVIEW_SIDE` pixels a side (the
    frame itself up to that size); its cells, as polygons, to the cells file.
    """
    stacked = bool(outlines.leading)
    with open(cells_file, "ab") as cells:
        cells.truncate(state["cells_bytes"])
        cells.seek(state["cells_bytes"])
        for index, frame in image_frames:
            number = state["frames"]
            report = None if on_tiles is None else partial(on_tiles, number)
            target = _TiledFrame(index, frame, sink, cells, dtype, state["first_id"])
            n_cells, polarity, resampling = target.run(
                segment_bands, file_name, number if stacked else None, report
            )
            outlines.write(number, target.overview_frame(), target.overview.labels)
            cells.flush()
            state["frames"] = number + 1
            state["first_id"] += n_cells
            state["cells_bytes"] = cells.tell()
            _count_decisions(state, polarity, resampling)
            state["sink"] = sink.checkpoint()
            progress.save()


class _TiledFrame:
    """One tiled frame on its way out: its bands to the sink and the overview, its cells to the file."""

    def __init__(
        self, index: tuple, frame: np.ndarray, sink: Any, cells: Any, dtype: np.dtype, first_id: int
    ):
        self.index, self.frame, self.sink, self.cells = index, frame, sink, cells
        self.dtype, self.first_id = dtype, first_id
        self.shape = tuple(frame.shape[:2])
        self.overview = Overview(self.shape)

    def run(self, segment_bands: Any, file_name: str, frame_number: int | None, report: Any) -> tuple:
        from napari_livecell.core.formats.coco_stream import summary_line

        height, width = self.shape
        image: dict = {"id": 0, "file_name": file_name, "width": int(width), "height": int(height)}
        if frame_number is not None:
            image["frame"] = frame_number
        self.cells.write(summary_line(image, []))
        steps = segment_bands(self.frame, self.on_band, self.on_cells)
        while True:
            try:
                done, total = next(steps)
            except StopIteration as finished:
                return finished.value
            if report is not None:
                report(done, total)

    def on_band(self, row0: int, band: np.ndarray) -> None:
        self.sink.write_tile(self.index, row0, 0, offset_labels(band, self.first_id, self.dtype))
        self.overview.add(row0, band)

    def on_cells(self, found: list) -> None:
        from napari_livecell.core.formats.coco import cell_annotation
        from napari_livecell.core.formats.coco_stream import summary_line

        annotations = [
            cell_annotation(local, corner, self.shape, 0, 0, cls + 1, area, float(np.round(score, 5)))
            for _, corner, local, area, score, cls in found
        ]
        if annotations:
            self.cells.write(summary_line(None, annotations))

    def overview_frame(self) -> np.ndarray:
        factor = self.overview.factor
        return np.asarray(self.frame)[::factor, ::factor]
