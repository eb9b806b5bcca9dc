"""The per-input part of ``segment``: one input streamed to its files, resumably."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_livecell.cli.common import progress_bar

if TYPE_CHECKING:
    import numpy as np


def segment_input(path: Path, args, backend, settings, out: Path, progress, label_sink):
    """Segment one input, writing each frame's results as it finishes; resume where it stopped.

    ``label_sink(out, path, layout, progress, resume, args)`` opens the sink its labels go to
    (:func:`napari_livecell.cli.segment.label_sink`).

    Returns
    -------
    InputSummary
        Its frames, cells and what was decided for them.
    """
    from napari_livecell.core.formats.label_sink import LabelLayout
    from napari_livecell.core.formats.lazy_image import opened_image
    from napari_livecell.core.images import input_stem
    from napari_livecell.core.inference.bands import band_segmenter
    from napari_livecell.core.inference.pixel_size import image_pixel_size
    from napari_livecell.core.inference.predict import iter_frames
    from napari_livecell.core.inference.run import RunStarted, iter_segment
    from napari_livecell.core.inference.stream import (
        OutlineWriter,
        stream_input,
        stream_tiled_input,
        summary_of,
    )

    stem = input_stem(path)  # a.ome.zarr is a
    state = progress.state(stem)
    output = state.get("output")
    if state["done"] and output and Path(output).exists():
        return summary_of(state)  # finished by the interrupted run
    if state["done"]:
        state = progress.restart(stem)
    with opened_image(path) as image:
        image = _prepare_image(image, path, args.channel)
        pixel = image_pixel_size(path, args.pixel_size)
        leading, image_frames = iter_frames(image, None, state["frames"])
        layout = LabelLayout(
            leading, tuple(image.shape[len(leading) : len(leading) + 2]), ids_dtype(image, args)
        )
        try:
            sink = label_sink(out, path, layout, progress, state["sink"] if state["frames"] else None, args)
        except (OSError, ValueError):  # the partial output is gone or cut: start this input over
            state = progress.restart(stem)
            leading, image_frames = iter_frames(image, None, 0)
            sink = label_sink(out, path, layout, progress, None, args)
        if state["frames"] == 0:
            progress.cells(stem).unlink(missing_ok=True)
        outlines = OutlineWriter(out, stem, leading)
        cells = progress.cells(stem)
        with (
            band_segmenter(backend, settings, *pixel, layout.frame_shape) as segment_bands,
            _Bars(layout.n_frames, state["frames"], path.name) as bars,
        ):
            if segment_bands is not None:  # frames larger than the network input: band by band
                args_ = (segment_bands, sink, outlines, path.name, layout.dtype, state, progress, cells)
                stream_tiled_input(bars.frames(image_frames), *args_, on_tiles=bars.tiles)
            else:
                events = iter_segment(image, backend, settings, None, *pixel, start=state["frames"])
                started = next(events)
                assert isinstance(started, RunStarted)  # iter_segment's first event
                frames = bars.frames(bars.events(events))
                stream_input(
                    frames, image_frames, sink, outlines, path.name, layout.dtype, state, progress, cells
                )
        sink.close()
        outlines.finish(layout.n_frames)
    state["done"], state["output"] = True, str(sink.target)
    progress.save()
    return summary_of(state)


def ids_dtype(image, args) -> np.dtype:
    """The labels' id dtype, decided before the first frame: uint16 where these frames cannot overflow it.

    A frame holds at most the model's maximum detections per network pass;
    a frame larger than ``--imgsz`` (tiled) or resampled to another pixel
    size may take several passes, so it gets uint32.
    """
    import numpy as np

    from napari_livecell.core.formats.label_sink import id_dtype
    from napari_livecell.core.inference.predict import MAX_DETECTIONS, iter_frames

    leading, _ = iter_frames(image)
    frame = image.shape[len(leading) : len(leading) + 2]
    n_frames = int(np.prod(leading)) if leading else 1
    one_pass = max(frame) <= args.imgsz and args.pixel_size is None and args.tile != "on"
    return id_dtype(n_frames, MAX_DETECTIONS) if one_pass else np.dtype(np.uint32)


def run_fingerprint(args: argparse.Namespace, paths: list[Path]) -> dict:
    """What makes a rerun the same run (it resumes): the inputs and every setting that changes the cells."""
    from napari_livecell.core.inference.stream import input_fingerprint

    keys = ("model", "conf", "iou", "imgsz", "modality", "tile", "channel", "pixel_size", "runtime", "device")
    settings = {key: getattr(args, key, None) for key in keys}
    settings.update(triton=args.triton, triton_model=args.triton_model, cluster=bool(args.scheduler))
    settings["out_format"] = getattr(args, "out_format", "tiff")
    return {"settings": settings, "inputs": [input_fingerprint(path) for path in paths]}


class _Bars:
    """A bar over a stack's frames and one over a large frame's tiles, fed by a run's events."""

    def __init__(self, n_frames: int, done: int, name: str) -> None:
        self.n_frames, self.done, self.name = n_frames, done, name
        self.frame_bar = progress_bar(n_frames, name, unit="frame") if n_frames > 1 else None
        if self.frame_bar is not None and done:
            self.frame_bar.update(done)  # finished by the interrupted run
        self.tile_bar: Any = None

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc) -> None:
        for bar in (self.tile_bar, self.frame_bar):
            if bar is not None:
                bar.close()

    def tiles(self, frame: int, done: int, total: int) -> None:
        """Tiles ``done`` of ``total`` in frame number ``frame`` (counted from the stack's first)."""
        if total <= 1:
            return
        if self.tile_bar is None:
            self.tile_bar = progress_bar(total, "", unit="tile")
        if done == 1 or self.tile_bar.total != total:
            self.tile_bar.reset(total=total)
            where = f" frame {frame + 1}/{self.n_frames}" if self.n_frames > 1 else ""
            self.tile_bar.set_description(f"{self.name}{where}", refresh=False)
        self.tile_bar.update(done - self.tile_bar.n)
        if done == total:
            self.tile_bar.refresh()  # show the last tile, however soon it came

    def events(self, events):
        """The run's frame results, its tile progress shown on the way."""
        from napari_livecell.core.inference.run import FrameResult, TileProgress

        for event in events:
            if isinstance(event, TileProgress):
                self.tiles(self.done + event.frame, event.done, event.total)
            elif isinstance(event, FrameResult):
                yield event

    def frames(self, items):
        """``items`` passed on, each counted on the frame bar once the caller is done with it."""
        for item in items:
            yield item
            if self.frame_bar is not None:
                self.frame_bar.update(1)


def _prepare_image(image, path: Path, channel: int | None):
    """The channel asked for, and a warning when the input looks like a label image."""
    from napari_livecell.core.images import looks_like_labels, select_channel

    if channel is not None:
        image = select_channel(image, channel)
    if looks_like_labels(image):
        print(
            f"napari-livecell: warning: {path.name} looks like a label image (flat integer regions on 0), "
            "not a microscope image: segmenting it anyway",
            file=sys.stderr,
        )
    return image
