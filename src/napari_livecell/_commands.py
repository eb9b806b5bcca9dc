"""The ``napari-livecell`` subcommands: thin adapters over the core (see cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# errors a user can fix: printed as one line, never as a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    KeyError,
)

TILE_MODES = {"auto": None, "on": True, "off": False}


class CommandError(Exception):
    """A failure to report as one line and exit code 2."""


def _progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="img", file=sys.stderr, leave=False)


def cmd_synth(args: argparse.Namespace) -> int:
    from napari_livecell.core.synthetic_dataset import write_synthetic_dataset

    if args.n < 1:
        raise CommandError("--n must be at least 1")
    with _progress_bar(args.n, "synth") as bar:
        json_path = write_synthetic_dataset(
            args.out,
            args.n,
            seed=args.seed,
            n_frames=args.frames,
            n_cells=args.cells,
            look=args.look,
            cell_type="SkBr3" if args.look == "skbr3" else args.look.capitalize(),
            progress=lambda done, total: bar.update(1),
        )
    print(f"wrote {json_path} and images/, labels/ in {args.out}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from napari_livecell.core.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.images import find_images, read_image
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import PredictSettings, segment

    settings = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz)
    paths = find_images(args.paths)
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1")
    if args.scheduler:
        return _segment_on_cluster(args, paths, settings)
    model = load_model(args.model, device=args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[CocoImage] = []
    failures = []
    with _progress_bar(len(paths), "segment") as bar:
        for path in paths:
            try:
                image = read_image(path)
                result = segment(image, model, settings, tile=TILE_MODES[args.tile])
            except USER_ERRORS as error:
                failures.append(f"{path.name}: {error}")
                bar.update(1)
                continue
            frames = result if isinstance(result, list) else [result]
            _write_segment_outputs(out, path.stem, image, frames, isinstance(result, list))
            for frame_index, frame in enumerate(frames):
                entries.append(
                    CocoImage(
                        image_id=len(entries) + 1,
                        file_name=path.name,
                        segmentation=frame,
                        frame=frame_index if isinstance(result, list) else None,
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


def _segment_on_cluster(args: argparse.Namespace, paths: list[Path], settings) -> int:
    """Each stack's frames as tasks on a Dask cluster; resumable per frame."""
    from napari_livecell.core.distributed import segment_stack_distributed
    from napari_livecell.core.images import read_image
    from napari_livecell.core.model import check_weights_path

    weights = None if args.model is None else str(check_weights_path(args.model))
    for path in paths:
        image = read_image(path)
        stack = image if image.ndim >= 3 and image.shape[-1] not in (3, 4) else image[None]
        with _progress_bar(stack.shape[0], path.name) as bar:
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


def _write_segment_outputs(out: Path, stem: str, image, frames: list, is_stack: bool) -> None:
    """Write ``<stem>_labels.tif`` and the outlined image (PNG, or TIFF for stacks)."""
    import numpy as np
    import tifffile

    from napari_livecell.core.atomic import write_with
    from napari_livecell.core.predict import iter_frames
    from napari_livecell.core.render import draw_outlines, png_bytes

    leading, image_frames = iter_frames(image)
    labels = np.stack([f.labels for f in frames]).reshape(*leading, *frames[0].labels.shape)
    labels = labels.astype(np.uint16 if labels.max() < 65536 else np.uint32)
    write_with(
        out / f"{stem}_labels.tif",
        lambda p: tifffile.imwrite(p, labels, compression="zlib", photometric="minisblack"),
    )
    outlined = np.stack([draw_outlines(data, f.labels) for (_, data), f in zip(image_frames, frames)])
    if is_stack:
        outlined = outlined.reshape(*leading, *outlined.shape[1:])
        write_with(out / f"{stem}_outlines.tif", lambda p: tifffile.imwrite(p, outlined))
    else:
        write_with(out / f"{stem}_outlines.png", lambda p: p.write_bytes(png_bytes(outlined[0])))


def _format_report(report: dict) -> str:
    settings = report["settings"]
    lines = [
        f"protocol: {settings['protocol']} (maxDets {settings['max_dets']}, "
        f"area ranges {settings['area_ranges']}), {settings['n_images']} image(s)",
        "| metric | bbox | mask |",
        "|--------|------|------|",
    ]
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        lines.append(f"| {key} | {report['bbox'][key]:.4f} | {report['segm'][key]:.4f} |")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_livecell.core.evaluate import coco_default_settings, evaluate, livecell_settings

    settings = coco_default_settings() if args.coco_defaults else livecell_settings()
    if args.pred is not None:
        if args.model or args.images:
            raise CommandError("give either --pred, or --images with --model, not both")
        report = evaluate(args.gt, args.pred, settings)
        print(json.dumps(report) if args.json else _format_report(report))
        return 0
    if not args.images or not args.model:
        raise CommandError("give --pred PRED.json, or --images DIR with one or more --model W")
    return _evaluate_models(args, settings)


def _evaluate_models(args: argparse.Namespace, settings) -> int:
    """The original work's table: one row per model, run through the core."""
    from napari_livecell.core.evaluate import evaluate, predict_dataset
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import PredictSettings

    predict = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz)
    rows = []
    for weights in args.model:
        model = load_model(None if weights == "default" else weights, device=args.device)
        results = predict_dataset(args.gt, args.images, model, predict)
        report = evaluate(args.gt, results, settings)
        rows.append({"model": model.name, "bbox": report["bbox"], "segm": report["segm"]})
    described = (
        f"conf {predict.conf}, NMS IoU {predict.iou}, imgsz {predict.imgsz}, maxDets "
        f"{settings.max_dets}, {settings.protocol} area ranges"
    )
    if args.json:
        print(
            json.dumps({"rows": rows, "settings": {"predict": vars(predict), "protocol": settings.protocol}})
        )
        return 0
    print("| Model Arch | bbox (mAP) | mask(mAP) |")
    print("|------------|------------|-----------|")
    for row in rows:
        print(f"| {row['model']} | {100 * row['bbox']['AP']:.1f} | {100 * row['segm']['AP']:.1f} |")
    print(f"settings: {described}")
    if predict.conf >= 0.1:
        print(
            f"note: AP at conf {predict.conf} is the original benchmark's setting; COCO tools expect "
            "a low confidence (e.g. --conf 0.001), which gives a higher AP. Report the setting."
        )
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from napari_livecell.core import convert
    from napari_livecell.core.training_data import coco_to_yolo_dataset

    source, out = Path(args.input), Path(args.output)
    if not source.exists():
        raise CommandError(f"input not found: {source}")
    if source.suffix.lower() == ".json":
        if args.to == "yolo":
            if args.images is None:
                raise CommandError("--images DIR is required to build a YOLO dataset from COCO")
            data_yaml = coco_to_yolo_dataset(source, args.images, out, val_fraction=args.val, seed=args.seed)
            print(f"wrote YOLO dataset {data_yaml}")
        elif args.to == "tif":
            written = convert.coco_to_label_tiffs(source, out)
            print(f"wrote {len(written)} label TIFF(s) to {out}")
        else:
            raise CommandError("the input is already COCO json: use --to yolo or --to tif")
    elif source.is_dir() and (source / "data.yaml").exists():
        if args.to != "coco":
            raise CommandError("a YOLO dataset converts --to coco")
        print(f"wrote {convert.yolo_dataset_to_coco(source, out)}")
    elif source.is_dir():
        label_files = sorted(source.glob("*_labels.tif"))
        if not label_files:
            raise CommandError(f"no *_labels.tif files in {source}")
        if args.to != "coco":
            raise CommandError("label TIFFs convert --to coco")
        print(f"wrote {convert.label_tiffs_to_coco(label_files, out, args.reference)}")
    else:
        raise CommandError(f"{source} is not a COCO json, a YOLO dataset folder or a folder of *_labels.tif")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from napari_livecell.service import ServiceSettings, serve
    except ImportError as error:
        raise CommandError(
            f"the service needs the 'server' extra (pip install 'napari-livecell[server]'): {error}"
        ) from None
    from napari_livecell.core.model import check_weights_path

    check_weights_path(args.model)  # fail before the server starts, with the reason
    settings = ServiceSettings(
        model=args.model, device=args.device, concurrency=args.workers, queue=args.queue
    )
    serve(args.host, args.port, settings)
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from napari_livecell.core.atomic import write_text_atomic
    from napari_livecell.core.coco import write_coco
    from napari_livecell.core.curate import curate, report_rows

    out = Path(args.out)
    filtered, reports = curate(
        args.gt, args.images, None if args.model == "default" else args.model, args.threshold, args.conf
    )
    stem = Path(args.gt).stem
    write_coco(out / f"{stem}_curated.json", filtered)
    write_text_atomic(out / f"{stem}_curation.json", json.dumps(report_rows(reports), indent=1))
    dropped = [r for r in reports if r.dropped]
    print(
        f"{len(dropped)} of {len(reports)} image(s) dropped (more than {args.threshold:.0%} of "
        f"confident cells unannotated); most suspicious first:"
    )
    for report in reports[:10]:
        flag = "DROP" if report.dropped else "keep"
        counts = f"{report.unannotated:4d}/{report.predicted:<4d}"
        print(f"  {flag} {report.missing_share:6.1%}  {counts} {report.file_name}")
    print(f"wrote {out / f'{stem}_curated.json'} and {out / f'{stem}_curation.json'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import napari

    viewer = napari.Viewer(title="napari-livecell demo")
    viewer.open_sample("napari-livecell", "livecell_image")
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    if args.run or args.screenshot:
        import time

        from qtpy.QtWidgets import QApplication

        widget.run()
        while widget.busy:  # until the result layers are in place and shown, not only computed
            QApplication.processEvents()
            time.sleep(0.02)
        QApplication.processEvents()
    if args.screenshot:
        viewer.window.resize(1500, 920)
        QApplication.processEvents()
        viewer.reset_view()  # the whole image in the resized canvas
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
        viewer.close()
        return 0
    napari.run()
    return 0
