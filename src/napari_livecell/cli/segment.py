"""``napari-livecell segment``: images in, label TIFFs, outlined images and COCO json out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_livecell.cli.common import USER_ERRORS, CommandError, ensure_output_folder, progress_bar
from napari_livecell.core.predict import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU

TILE_MODES = {"auto": None, "on": True, "off": False}


def add_parser(commands) -> None:
    """Register the subcommand."""
    seg = commands.add_parser("segment", help="segment images; write labels, outlines and COCO json")
    seg.add_argument("paths", nargs="+", help="image files, folders or glob patterns")
    seg.add_argument("--model", default=None, help="weights (.pt/.onnx); the shipped default if omitted")
    seg.add_argument(
        "--conf", type=float, default=DEFAULT_CONF, help=f"confidence threshold ({DEFAULT_CONF})"
    )
    seg.add_argument("--iou", type=float, default=DEFAULT_IOU, help=f"NMS IoU threshold ({DEFAULT_IOU})")
    seg.add_argument("--imgsz", type=int, default=DEFAULT_IMGSZ, help=f"network input size ({DEFAULT_IMGSZ})")
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda:N or mps")
    seg.add_argument(
        "--tile",
        choices=tuple(TILE_MODES),
        default="auto",
        help="overlapping tiles for frames larger than --imgsz (auto), always, or never",
    )
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address: frames of each stack run on the cluster, resumably",
    )
    seg.add_argument(
        "--threads",
        type=int,
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
    from napari_livecell.core.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.images import read_image, search_images
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import PredictSettings
    from napari_livecell.core.render import write_segment_outputs
    from napari_livecell.core.run import Backend, iter_segment

    settings = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz)
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1")
    out = Path(args.out)
    search = search_images(args.paths, out)
    paths = search.paths
    check_output_names(paths, out)
    ensure_output_folder(out)
    _report_skipped(search, out)
    if args.scheduler:
        return _segment_on_cluster(args, paths, settings)
    model = load_model(args.model, device=args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    backend = Backend(weights=args.model, device=args.device, tile=TILE_MODES[args.tile])
    entries: list[CocoImage] = []
    failures = []
    with progress_bar(len(paths), "segment") as bar:
        for path in paths:
            try:
                image = read_image(path)
                events = iter_segment(image, backend, settings)
                started = next(events)
                frames = _frames_with_progress(events, started.n_frames, path.name)
            except USER_ERRORS as error:
                failures.append(f"{path.name}: {error}")
                bar.update(1)
                continue
            is_stack = bool(started.leading)
            write_segment_outputs(out, path.stem, image, frames)
            for frame_index, frame in enumerate(frames):
                entries.append(
                    CocoImage(
                        image_id=len(entries) + 1,
                        file_name=path.name,
                        segmentation=frame,
                        frame=frame_index if is_stack else None,
                    )
                )
            bar.update(1)
            n_cells = sum(f.n_cells for f in frames)
            bar.write(f"{path.name}: {n_cells} cells")
    if entries:
        coco = build_coco(entries, class_names=model.class_names, with_scores=True)
        coco["info"]["settings"] = {
            "model": model.name,
            "conf": settings.conf,
            "iou": settings.iou,
            "imgsz": settings.imgsz,
        }
        write_coco(out / "predictions.json", coco)
        print(f"wrote {len(entries)} frame(s) of results to {out}")
    for failure in failures:
        print(f"napari-livecell: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def output_names(stem: str) -> tuple[str, ...]:
    """The files ``segment`` may write for an input with this stem (a stack's outlines are a TIFF)."""
    return (f"{stem}_labels.tif", f"{stem}_outlines.png", f"{stem}_outlines.tif")


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


def _frames_with_progress(events, n_frames: int, name: str) -> list:
    """Collect a run's frames, with a bar over a stack's frames and one over a large frame's tiles."""
    from napari_livecell.core.run import FrameResult, TileProgress

    frames = []
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
                if frame_bar is not None:
                    frame_bar.update(1)
    finally:
        for bar in (tile_bar, frame_bar):
            if bar is not None:
                bar.close()
    return frames


def _segment_on_cluster(args: argparse.Namespace, paths: list[Path], settings) -> int:
    """Each stack's frames as tasks on a Dask cluster; resumable per frame."""
    from napari_livecell.core.distributed import segment_stack_distributed
    from napari_livecell.core.images import read_image
    from napari_livecell.core.model import check_weights_path

    weights = None if args.model is None else str(check_weights_path(args.model))
    for path in paths:
        image = read_image(path)
        stack = image if image.ndim >= 3 and image.shape[-1] not in (3, 4) else image[None]
        with progress_bar(stack.shape[0], path.name) as bar:
            predictions = segment_stack_distributed(
                stack,
                Path(args.out) / path.stem,
                args.scheduler,
                weights,
                settings,
                progress=lambda done, total: bar.update(done - bar.n),
                torch_threads=args.threads,
            )
        print(f"{path.name}: {stack.shape[0]} frame(s) -> {predictions}")
    return 0
