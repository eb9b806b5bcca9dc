"""``napari-livecell segment``: images in, label TIFFs, outlined images and COCO json out."""

from __future__ import annotations

import argparse
import shutil
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
OUT_FORMATS = ("tiff", "ome-zarr")
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
        "--out-format",
        choices=OUT_FORMATS,
        default="tiff",
        help="labels as <stem>_labels.tif with outlined PNGs (tiff), or as the OME-Zarr labels group "
        "<stem>.ome.zarr/labels/cells written frame by frame, with <stem>_cells.csv (ome-zarr; "
        "docs/huge_images.md)",
    )
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
    """Segment every image; write per-image outputs and one ``predictions.json``.

    Before any work: the inputs are found (leaving earlier results and the
    output folder out), every input gets output names of its own, and the
    output folder is created and proven writable.
    """
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.images import input_stem, read_image, search_images
    from napari_livecell.core.inference.frame_input import describe_polarities
    from napari_livecell.core.inference.pixel_size import describe_resamplings, image_pixel_size
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.render import write_segment_outputs
    from napari_livecell.core.inference.run import Backend, RunStarted, iter_segment
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
    check_output_names(paths, out, args.out_format)
    if (out / PREDICTIONS).exists() and not args.overwrite:
        raise CommandError(
            f"{out / PREDICTIONS} holds the results of an earlier run: give --overwrite to replace them, "
            "or another --out"
        )
    ensure_output_folder(out)
    _report_skipped(search, out)
    if args.triton:
        from napari_livecell.core.models.triton import triton_spec

        if args.model or args.scheduler:
            raise CommandError("--triton names the model (--triton-model): not with --model or --scheduler")
        args.model = triton_spec(args.triton, args.triton_model)
    if args.scheduler:
        from napari_livecell.core.models.model import check_weights_path

        weights = None if args.model is None else str(check_weights_path(args.model))
        backend = Backend(weights=weights, scheduler=args.scheduler, threads=args.threads)
        class_names = None
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
    entries: list[CocoImage] = []
    resampled: dict[str, dict] = {}
    failures = []
    for path in paths:
        try:
            image = read_image(path)
            image = _prepare_image(image, path, args.channel)
            pixel = image_pixel_size(path, args.pixel_size)
            # on a cluster, finished frames wait in a scratch folder: a rerun after a crash skips them
            scratch = out / f".{input_stem(path)}_frames" if args.scheduler else None
            events = iter_segment(image, backend, settings, None, *pixel, scratch=scratch)
            started = next(events)
            assert isinstance(started, RunStarted)  # iter_segment's first event
            leading = started.leading
            frames, polarities, resamplings = _frames_with_progress(events, started.n_frames, path.name)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        except USER_ERRORS as error:
            failures.append(f"{path.name}: {error}")
            continue
        if args.out_format == "ome-zarr":
            write_ome_zarr_outputs(out, path, image, frames, pixel[0])
        else:
            write_segment_outputs(out, input_stem(path), image, frames)
        for frame_index, frame in enumerate(frames):
            entries.append(
                CocoImage(
                    image_id=len(entries) + 1,
                    file_name=path.name,
                    segmentation=frame,
                    frame=frame_index if leading else None,
                )
            )
        n_cells = sum(f.n_cells for f in frames)
        if resamplings and resamplings[0] is not None:
            resampled[path.name] = resamplings[0].as_dict()
        print(
            f"{path.name}: {n_cells} cells; {describe_polarities(polarities)}; "
            f"{describe_resamplings(resamplings)}",
            file=sys.stderr,
        )
    if entries:
        coco = build_coco(entries, class_names=class_names, with_scores=True)
        coco["info"]["settings"] = {
            "model": Path(args.model).name if args.model else (model.name if class_names else "default"),
            "conf": settings.conf,
            "iou": settings.iou,
            "imgsz": settings.imgsz,
            "modality": settings.modality,
            "runtime": "torch" if args.scheduler else runtime,
            "pixel_size_um": args.pixel_size,
            "resampling": resampled,
        }
        written = write_predictions(out, coco, args.overwrite)
        print(f"wrote {len(entries)} frame(s) of results to {out} ({written.name})")
    for failure in failures:
        print(f"napari-livecell: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def write_predictions(out: Path, coco: dict, overwrite: bool) -> Path:
    """Write ``predictions.json``; without ``overwrite`` never over one that appeared meanwhile.

    A run into the same ``--out`` at the same time may have written it since
    this run started: this run's results then go to ``predictions-2.json``
    (``-3``...), so neither run's results are lost. The file is linked into
    place (a hard link fails on an existing name, atomically).
    """
    import os

    from napari_livecell.core.formats.coco import write_coco

    target = out / PREDICTIONS
    if overwrite:
        return write_coco(target, coco)
    temporary = write_coco(out / f".{target.stem}.{os.getpid()}.json", coco)
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


def output_names(stem: str, out_format: str = "tiff") -> tuple[str, ...]:
    """The files ``segment`` may write for an input with this stem (a stack's outlines are a folder)."""
    if out_format == "ome-zarr":
        return (f"{stem}.ome.zarr", f"{stem}_cells.csv")
    return (f"{stem}_labels.tif", f"{stem}_outlines.png", f"{stem}_outlines")


def write_ome_zarr_outputs(out: Path, path: Path, image, frames: list, pixel_size_um: float | None) -> Path:
    """Write an input's labels as ``<stem>.ome.zarr/labels/cells``, frame by frame, and its cell table.

    A stack's ids run on across frames, as in its labels TIFF; an OME-Zarr
    input's axes and scale go with its labels. ``<stem>_cells.csv`` holds
    each cell's measurements (``measure``'s columns), read back from the
    store one frame at a time.
    """
    import numpy as np

    from napari_livecell.core.analysis.measure import measure_cells, write_measurements_csv
    from napari_livecell.core.formats.ome_zarr import labels_store_path, open_label_sink, read_labels
    from napari_livecell.core.images import input_stem, is_ome_zarr_image, open_ome_zarr
    from napari_livecell.core.inference.predict import iter_frames
    from napari_livecell.core.segmentation import offset_ids

    stem = input_stem(path)
    leading, _ = iter_frames(image)
    shape = (*leading, *frames[0].labels.shape)
    source = open_ome_zarr(path) if is_ome_zarr_image(path) else None
    if source is not None and len(source.axes.replace("c", "")) != len(shape):
        source = None  # frames laid out otherwise than stored: axes from the shape
    sink = open_label_sink(labels_store_path(out, stem), shape, None, pixel_size_um, image=source)
    first_id = 0
    with sink:
        for index, frame in zip(np.ndindex(*leading) if leading else [()], frames):
            sink.write_frame(index, offset_ids(frame.labels, first_id))
            first_id += frame.n_cells
    stored = read_labels(sink.target).data
    colour = tuple(image.shape[:-1]) == shape and image.shape[-1] in (3, 4)
    intensities = image if tuple(image.shape) == shape or colour else None  # several channels: none
    table = measure_cells(stored, intensities, pixel_size_um).cells
    write_measurements_csv(out / f"{stem}_cells.csv", table)
    return sink.target


def check_output_names(paths: list[Path], out: Path, out_format: str = "tiff") -> None:
    """Refuse a run in which two inputs would write the same files, or one would overwrite an input.

    Names are compared without case: ``A.tif`` and ``a.png`` clash on macOS
    and Windows file systems, and results should not depend on where they are
    written.

    Raises
    ------
    CommandError
        Naming both inputs and the shared file, or the input at risk.
    """
    from napari_livecell.core.images import input_stem

    owners: dict[str, Path] = {}
    inputs = {path.resolve() for path in paths}
    for path in paths:
        key = input_stem(path).casefold()
        if key in owners:
            raise CommandError(
                f"{owners[key]} and {path} would both write {output_names(input_stem(path), out_format)[0]} "
                f"in {out}: rename one, or segment them into separate --out folders"
            )
        owners[key] = path
        for name in output_names(input_stem(path), out_format):
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


def _frames_with_progress(events, n_frames: int, name: str) -> tuple[list, list, list]:
    """A run's frames, polarities and resamplings, with a bar over a stack's frames and one over tiles."""
    from napari_livecell.core.inference.run import FrameResult, TileProgress

    frames, polarities, resamplings = [], [], []
    frame_bar = progress_bar(n_frames, name, unit="frame") if n_frames > 1 else None
    tile_bar = None
    try:
        for event in events:
            if isinstance(event, TileProgress) and event.total > 1:
                if tile_bar is None:
                    tile_bar = progress_bar(event.total, "", unit="tile")
                if event.done == 1 or tile_bar.total != event.total:
                    tile_bar.reset(total=event.total)
                    where = f" frame {event.frame + 1}/{n_frames}" if n_frames > 1 else ""
                    tile_bar.set_description(f"{name}{where}", refresh=False)
                tile_bar.update(event.done - tile_bar.n)
                if event.done == event.total:
                    tile_bar.refresh()  # show the last tile, however soon it came
            elif isinstance(event, FrameResult):
                frames.append(event.segmentation)
                polarities.append(event.polarity)
                resamplings.append(event.resampling)
                if frame_bar is not None:
                    frame_bar.update(1)
    finally:
        for bar in (tile_bar, frame_bar):
            if bar is not None:
                bar.close()
    return frames, polarities, resamplings
