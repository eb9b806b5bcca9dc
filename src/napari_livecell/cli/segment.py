"""``napari-livecell segment``: images in, label TIFFs, outlined images and COCO json out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_livecell.cli.common import (
    USER_ERRORS,
    CommandError,
    checked_pixel_size,
    ensure_output_folder,
    file_name_argument,
    fraction,
    imgsz_int,
    int_in,
    pixel_size_um,
    progress_bar,
)
from napari_livecell.core.inference.predict import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU, MODALITIES
from napari_livecell.core.models.runtime import RUNTIMES

TILE_MODES = {"auto": None, "on": True, "off": False}
PREDICTIONS = "predictions.json"


def add_parser(commands) -> None:
    """Register the subcommand."""
    seg = commands.add_parser("segment", help="segment images; write labels, outlines and COCO json")
    seg.add_argument("paths", nargs="+", help="image files, folders or glob patterns")
    seg.add_argument(
        "--model", default=None, help="weights (.onnx; .pt with extra train); the shipped model if omitted"
    )
    seg.add_argument(
        "--conf", type=fraction, default=DEFAULT_CONF, help=f"confidence threshold ({DEFAULT_CONF})"
    )
    seg.add_argument("--iou", type=fraction, default=DEFAULT_IOU, help=f"NMS IoU threshold ({DEFAULT_IOU})")
    seg.add_argument(
        "--imgsz", type=imgsz_int, default=DEFAULT_IMGSZ, help=f"network input size ({DEFAULT_IMGSZ})"
    )
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda:N or mps")
    seg.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="what runs the network: auto (ONNX Runtime, then OpenVINO, on the CPU; else torch), "
        "onnxruntime, openvino, openvino-int8 once calibrated by `quantize`, or torch (extra train) "
        "(docs/runtime.md)",
    )
    seg.add_argument(
        "--triton",
        default=None,
        metavar="URL",
        help="run the network on this Triton Inference Server (http://HOST:PORT; docs/triton.md)",
    )
    seg.add_argument(
        "--triton-model",
        type=file_name_argument("--triton-model"),
        default="livecell",
        help="the model's name on the Triton server",
    )
    seg.add_argument(
        "--tile",
        choices=tuple(TILE_MODES),
        default="auto",
        help="overlapping tiles for frames larger than --imgsz (auto), always, or never",
    )
    seg.add_argument(
        "--modality",
        choices=MODALITIES,
        default="auto",
        help="what the images are: auto (decided per frame from the pixels), phase or fluorescence; "
        "a frame unlike the model's training images is inverted",
    )
    seg.add_argument(
        "--channel",
        type=int_in(0, 1_000_000),
        default=None,
        help="segment this channel (from 0) of multi-channel images: the last axis when short "
        "(H, W, C), else a short first axis (C, H, W)",
    )
    seg.add_argument(
        "--pixel-size",
        type=pixel_size_um,
        default=None,
        help="micrometres per pixel of the images (default: each TIFF's own metadata, else unknown); "
        "frames are resampled to the model's pixel size when they differ by more than 10%%",
    )
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results (predictions.json) of an earlier run in --out; without it such a "
        "run is refused, and a run that finds one written meanwhile keeps its own as predictions-N.json",
    )
    seg.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address: frames of each stack run on the cluster, resumably",
    )
    seg.add_argument(
        "--threads",
        type=int_in(1, 4096),
        default=None,
        help="torch threads per frame task (default: all cores); with several Dask worker "
        "processes per machine, give cores // processes",
    )
    seg.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Segment every image; write per-image outputs as frames finish, then one ``predictions.json``.

    Before any work: the inputs are found (leaving earlier results and the
    output folder out), every input gets output names of its own, and the
    output folder is created and proven writable. Each frame's labels,
    outlines and cells are written as it finishes, and the progress record
    in ``--out`` is updated: the same command run again after an
    interruption goes on after the last finished frame.
    """
    from napari_livecell.core.images import search_images
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.run import Backend
    from napari_livecell.core.inference.stream import RunProgress
    from napari_livecell.core.models.model import load_model

    try:
        settings = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz, modality=args.modality)
    except ValueError as error:
        raise CommandError(str(error)) from None
    checked_pixel_size(args.pixel_size)
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1")
    out = Path(args.out)
    search = search_images(args.paths, out)
    paths = search.paths
    check_output_names(paths, out)
    progress = RunProgress(out, run_fingerprint(args, paths))
    if (out / PREDICTIONS).exists() and not args.overwrite and not progress.resumed:
        raise CommandError(
            f"{out / PREDICTIONS} holds the results of an earlier run: give --overwrite to replace them, "
            "or another --out"
        )
    ensure_output_folder(out)
    _report_skipped(search, out)
    if progress.resumed:
        print(f"napari-livecell: resuming the interrupted run in {out}", file=sys.stderr)
    if args.triton:
        from napari_livecell.core.models.triton import triton_spec

        if args.model or args.scheduler:
            raise CommandError("--triton names the model (--triton-model): not with --model or --scheduler")
        args.model = triton_spec(args.triton, args.triton_model)
    if args.scheduler:
        from napari_livecell.core.models.model import check_weights_path

        weights = None if args.model is None else str(check_weights_path(args.model))
        backend = Backend(weights=weights, scheduler=args.scheduler, threads=args.threads)
        class_names, runtime = None, "torch"
    else:
        model = load_model(args.model, device=args.device, runtime=args.runtime)
        runtime = "triton" if args.triton else model.runtime
        print(f"napari-livecell: {model.name} runs on {model.device} with {runtime}", file=sys.stderr)
        if args.threads and model.engine is None:  # an engine's threads are set when it loads
            import torch

            torch.set_num_threads(args.threads)
        backend = Backend(
            weights=args.model, device=args.device, tile=TILE_MODES[args.tile], runtime=args.runtime
        )
        class_names = model.class_names
    resampled: dict[str, dict] = {}
    failures, finished = [], []
    for path in paths:
        try:
            summary = segment_input(path, args, backend, settings, out, progress)
        except USER_ERRORS as error:
            failures.append(f"{path.name}: {error}")
            continue
        finished.append(path)
        if summary.first_resampling is not None:
            resampled[path.name] = summary.first_resampling
        print(
            f"{path.name}: {summary.n_cells} cells; {summary.polarities}; {summary.resamplings}",
            file=sys.stderr,
        )
    if finished:
        from napari_livecell.core.formats.coco_stream import write_coco_stream

        info = {"description": "napari-livecell", "version": "1.0"}
        info["settings"] = {
            "model": Path(args.model).name if args.model else (model.name if class_names else "default"),
            "conf": settings.conf,
            "iou": settings.iou,
            "imgsz": settings.imgsz,
            "modality": settings.modality,
            "runtime": runtime,
            "pixel_size_um": args.pixel_size,
            "resampling": resampled,
        }
        files = [progress.cells(path.stem) for path in finished]
        names = class_names or _cluster_class_names(backend)
        written = write_predictions(
            out,
            lambda target: write_coco_stream(target, files, names, info),
            args.overwrite or progress.resumed,
        )
        n_frames = sum(progress.state(path.stem)["frames"] for path in finished)
        print(f"wrote {n_frames} frame(s) of results to {out} ({written.name})")
    if not failures:
        progress.finish()  # a failed input keeps its progress: a rerun goes on where it stopped
    for failure in failures:
        print(f"napari-livecell: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def segment_input(path: Path, args, backend, settings, out: Path, progress):
    """Segment one input, writing each frame's results as it finishes; resume where it stopped.

    Returns
    -------
    InputSummary
        Its frames, cells and what was decided for them.
    """
    from napari_livecell.core.formats.label_sink import LabelLayout
    from napari_livecell.core.formats.lazy_image import opened_image
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

    state = progress.state(path.stem)
    target = out / f"{path.stem}_labels.tif"
    if state["done"] and target.exists():
        return summary_of(state)  # finished by the interrupted run
    if state["done"]:
        state = progress.restart(path.stem)
    with opened_image(path) as image:
        image = _prepare_image(image, path, args.channel)
        pixel = image_pixel_size(path, args.pixel_size)
        leading, image_frames = iter_frames(image, None, state["frames"])
        layout = LabelLayout(
            leading, tuple(image.shape[len(leading) : len(leading) + 2]), ids_dtype(image, args)
        )
        try:
            sink = label_sink(out, path.stem, layout, progress, state["sink"] if state["frames"] else None)
        except (OSError, ValueError):  # the partial output is gone or cut: start this input over
            state = progress.restart(path.stem)
            leading, image_frames = iter_frames(image, None, 0)
            sink = label_sink(out, path.stem, layout, progress, None)
        if state["frames"] == 0:
            progress.cells(path.stem).unlink(missing_ok=True)
        outlines = OutlineWriter(out, path.stem, leading)
        cells = progress.cells(path.stem)
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
    state["done"] = True
    progress.save()
    return summary_of(state)


def label_sink(out: Path, stem: str, layout, progress, resume: dict | None):
    """The sink that writes an input's labels (``<stem>_labels.tif``, page by page).

    Its partial output is ``progress.partial(stem, suffix)``; ``resume``: the
    sink's last checkpoint in an interrupted run (``None``: start afresh).
    """
    from napari_livecell.core.formats.tiff_sink import TiffLabelSink

    partial = progress.partial(stem, "_labels.tif.partial")
    return TiffLabelSink(out / f"{stem}_labels.tif", layout, resume, partial=partial)


def ids_dtype(image, args) -> object:
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
    one_pass = max(frame) <= args.imgsz and args.pixel_size is None and TILE_MODES[args.tile] is not True
    return id_dtype(n_frames, MAX_DETECTIONS) if one_pass else np.dtype(np.uint32)


def run_fingerprint(args: argparse.Namespace, paths: list[Path]) -> dict:
    """What makes a rerun the same run (it resumes): the inputs and every setting that changes the cells."""
    from napari_livecell.core.inference.stream import input_fingerprint

    keys = ("model", "conf", "iou", "imgsz", "modality", "tile", "channel", "pixel_size", "runtime", "device")
    settings = {key: getattr(args, key, None) for key in keys}
    settings.update(triton=args.triton, triton_model=args.triton_model, cluster=bool(args.scheduler))
    settings["out_format"] = getattr(args, "out_format", "tiff")
    return {"settings": settings, "inputs": [input_fingerprint(path) for path in paths]}


def _cluster_class_names(backend) -> dict[int, str]:
    """The model's classes when the cluster ran it (the workers load it, not this process)."""
    from napari_livecell.core.models.model import load_model

    try:
        return dict(load_model(backend.weights, device="cpu").class_names)
    except (ValueError, OSError):
        return {0: "cell"}


def write_predictions(out: Path, coco, overwrite: bool) -> Path:
    """Write ``predictions.json``; without ``overwrite`` never over one made meanwhile.

    ``coco``: a COCO dict, or ``write(path) -> path`` that writes one (atomically).

    A run into the same ``--out`` at the same time may have written it since
    this run started: this run's results then go to ``predictions-2.json``
    (``-3``...), so neither run's results are lost. The file is linked into
    place (a hard link fails on an existing name, atomically).
    """
    import os

    from napari_livecell.core.formats.coco import write_coco

    write = coco if callable(coco) else lambda path: write_coco(path, coco)
    target = out / PREDICTIONS
    if overwrite:
        return write(target)
    temporary = write(out / f".{target.stem}.{os.getpid()}.json")
    try:
        for number in range(1, 10_000):
            candidate = target if number == 1 else out / f"{target.stem}-{number}.json"
            try:
                os.link(temporary, candidate)
            except FileExistsError:
                continue
            except OSError:  # no hard links here (FAT, some network shares): a check, then a rename
                if candidate.exists():
                    continue
                os.replace(temporary, candidate)
            if candidate != target:
                print(
                    f"napari-livecell: warning: {target.name} was written by another run meanwhile: "
                    f"this run's results are in {candidate.name}",
                    file=sys.stderr,
                )
            return candidate
        raise CommandError(f"{out} holds too many predictions-N.json files")
    finally:
        temporary.unlink(missing_ok=True)


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


def output_names(stem: str) -> tuple[str, ...]:
    """The files ``segment`` may write for an input with this stem (a stack's outlines are a folder)."""
    return (f"{stem}_labels.tif", f"{stem}_outlines.png", f"{stem}_outlines")


def check_output_names(paths: list[Path], out: Path) -> None:
    """Refuse a run in which two inputs would write the same files, or one would overwrite an input.

    Names are compared without case: ``A.tif`` and ``a.png`` clash on macOS
    and Windows file systems, and results should not depend on where they are
    written.

    Raises
    ------
    CommandError
        Naming both inputs and the shared file, or the input at risk.
    """
    owners: dict[str, Path] = {}
    inputs = {path.resolve() for path in paths}
    for path in paths:
        key = path.stem.casefold()
        if key in owners:
            raise CommandError(
                f"{owners[key]} and {path} would both write {owners[key].stem}_labels.tif in {out}: "
                "rename one, or segment them into separate --out folders"
            )
        owners[key] = path
        for name in output_names(path.stem):
            target = (out / name).resolve()
            if target in inputs:
                raise CommandError(
                    f"the results of {path.name} would overwrite the input {target}: choose another --out"
                )


def _report_skipped(search, out: Path) -> None:
    """Say which matched files are left out of the run, and why."""
    from napari_livecell.core.images import OUTPUT_SUFFIXES

    reasons = []
    if search.outputs:
        patterns = ", ".join(f"*{suffix}" for suffix in OUTPUT_SUFFIXES)
        reasons.append(f"{len(search.outputs)} segmentation output(s) ({patterns})")
    if search.inside_out:
        reasons.append(f"{len(search.inside_out)} file(s) inside --out {out}")
    if reasons:
        print(
            f"napari-livecell: skipped {' and '.join(reasons)}: results are never read as inputs",
            file=sys.stderr,
        )


class _Bars:
    """A bar over a stack's frames and one over a large frame's tiles, fed by a run's events."""

    def __init__(self, n_frames: int, done: int, name: str) -> None:
        self.n_frames, self.done, self.name = n_frames, done, name
        self.frame_bar = progress_bar(n_frames, name, unit="frame") if n_frames > 1 else None
        if self.frame_bar is not None and done:
            self.frame_bar.update(done)  # finished by the interrupted run
        self.tile_bar = None

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
