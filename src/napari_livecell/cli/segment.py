"""``napari-livecell segment``: images in, label TIFFs, outlined images and COCO json out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
)
from napari_livecell.core.inference.predict import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU, MODALITIES
from napari_livecell.core.models.runtime import RUNTIMES

TILE_MODES = {"auto": None, "on": True, "off": False}
OUT_FORMATS = ("tiff", "ome-zarr")
PREDICTIONS = "predictions.json"


def add_parser(commands) -> None:
    """Register the subcommand."""
    seg = commands.add_parser(
        "segment",
        help="segment images; write labels, outlines and COCO json",
        description="Segment images frame by frame, writing each frame's labels, outlines and cells as it "
        "finishes (memory stays flat in frames; a frame larger than --imgsz is written band by band). "
        "Resume: an interrupted run (Ctrl-C, a crash, a killed job) keeps its progress in hidden files "
        "in --out; the same command with the same inputs and settings goes on after the last finished "
        "frame. Other settings start over.",
    )
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
        help="labels as <stem>_labels.tif (tiff), or as the OME-Zarr labels group "
        "<stem>.ome.zarr/labels/cells (ome-zarr: chunked, a pyramid napari opens lazily; `measure` "
        "reads it; docs/huge_images.md)",
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
        help="Dask scheduler address: frames of each stack, or the tiles of a frame larger than "
        "--imgsz, run as tasks on the cluster",
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
    from napari_livecell.cli._segment_stream import run_fingerprint, segment_input
    from napari_livecell.core.images import input_stem, search_images
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.run import Backend
    from napari_livecell.core.inference.stream import RunProgress
    from napari_livecell.core.models.model import load_model

    try:
        settings = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz, modality=args.modality)
    except ValueError as error:
        raise CommandError(str(error)) from None
    checked_pixel_size(args.pixel_size)
    if args.out_format == "ome-zarr":
        from napari_livecell.core.formats.ome_zarr import require_ome_zarr

        require_ome_zarr()  # the extra missing: one line now, not after the frames are segmented
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1")
    out = Path(args.out)
    search = search_images(args.paths, out)
    paths = search.paths
    check_output_names(paths, out, args.out_format)
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
            summary = segment_input(path, args, backend, settings, out, progress, label_sink)
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

        info: dict[str, Any] = {"description": "napari-livecell", "version": "1.0"}
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
        files = [progress.cells(input_stem(path)) for path in finished]
        names = class_names or _cluster_class_names(backend)
        written = write_predictions(
            out,
            lambda target: write_coco_stream(target, files, names, info),
            args.overwrite or progress.resumed,
        )
        n_frames = sum(progress.state(input_stem(path))["frames"] for path in finished)
        print(f"wrote {n_frames} frame(s) of results to {out} ({written.name})")
    if not failures:
        progress.finish()  # a failed input keeps its progress: a rerun goes on where it stopped
    for failure in failures:
        print(f"napari-livecell: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def label_sink(out: Path, path: Path, layout, progress, resume: dict | None, args: argparse.Namespace):
    """The sink that writes input ``path``'s labels: ``<stem>_labels.tif`` page by page, or OME-Zarr.

    ``layout``: the labels' shape and id dtype; ``resume``: the sink's last
    checkpoint in an interrupted run (``None``: start afresh). A partial
    output goes to ``progress.partial(stem, suffix)``, a hidden name of this
    run's own (OME-Zarr: a hidden folder beside the store). The sink's
    ``target`` is the finished output. ``--out-format ome-zarr`` writes
    ``<stem>.ome.zarr/labels/cells``: an OME-Zarr input's axes and scale go
    with it, any input's pixel size (``--pixel-size``, else its metadata).
    """
    from napari_livecell.core.images import input_stem

    stem = input_stem(path)
    if args.out_format == "ome-zarr":
        from napari_livecell.core.formats.ome_zarr import labels_store_path, ome_zarr_label_sink
        from napari_livecell.core.images import is_ome_zarr_image, open_ome_zarr
        from napari_livecell.core.inference.pixel_size import image_pixel_size

        image = open_ome_zarr(path) if is_ome_zarr_image(path) else None
        if image is not None and len(image.axes.replace("c", "")) != len(layout.leading) + 2:
            image = None  # frames laid out otherwise than stored: axes from the shape
        pixel = image_pixel_size(path, args.pixel_size)[0]
        target = labels_store_path(out, stem)
        return ome_zarr_label_sink(target, layout, resume, image=image, pixel_size_um=pixel)
    from napari_livecell.core.formats.tiff_sink import TiffLabelSink

    partial = progress.partial(stem, "_labels.tif.partial")
    return TiffLabelSink(out / f"{stem}_labels.tif", layout, resume, partial=partial)


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


def output_names(stem: str, out_format: str = "tiff") -> tuple[str, ...]:
    """The files ``segment`` may write for an input with this stem (a stack's outlines are a folder)."""
    labels = f"{stem}.ome.zarr" if out_format == "ome-zarr" else f"{stem}_labels.tif"
    return (labels, f"{stem}_outlines.png", f"{stem}_outlines")


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
