"""``napari-livecell evaluate``: box and mask AP with the LIVECell protocol."""

from __future__ import annotations

import argparse
import json

from napari_livecell.cli.common import CommandError, checked_pixel_size, weights_argument
from napari_livecell.core.inference.predict import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU


def add_parser(commands) -> None:
    """Register the subcommand."""
    evaluate = commands.add_parser("evaluate", help="box and mask AP with the LIVECell protocol")
    evaluate.add_argument("--gt", required=True, help="ground-truth COCO json")
    evaluate.add_argument("--pred", default=None, help="predictions (COCO json with scores)")
    evaluate.add_argument("--images", default=None, help="image folder: run --model on the gt's images")
    evaluate.add_argument(
        "--model", action="append", default=[], help="weights (repeat for several rows; 'default')"
    )
    evaluate.add_argument(
        "--conf", type=float, default=DEFAULT_CONF, help=f"{DEFAULT_CONF}: the original benchmark"
    )
    evaluate.add_argument(
        "--iou", type=float, default=DEFAULT_IOU, help=f"NMS IoU of --model's predictions ({DEFAULT_IOU})"
    )
    evaluate.add_argument(
        "--imgsz", type=int, default=DEFAULT_IMGSZ, help=f"--model's input size, px ({DEFAULT_IMGSZ})"
    )
    evaluate.add_argument("--device", default="auto", help="where --model runs: auto, cpu, cuda:N or mps")
    evaluate.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="micrometres per pixel of the images (default: each TIFF's own metadata, else unknown); "
        "images are resampled to the model's pixel size as `segment` does",
    )
    evaluate.add_argument("--json", action="store_true", help="print one json object")
    evaluate.add_argument(
        "--coco-defaults",
        action="store_true",
        help="COCO's maxDets 100 and area ranges instead of LIVECell's",
    )
    evaluate.set_defaults(handler=run)


SIZE_METRICS = {"APs": "small", "APm": "medium", "APl": "large"}


def _percent(value: float) -> str:
    """An AP as the tables print it: percent, one decimal; "n/a" for COCO's -1 (no cells of that size)."""
    return "n/a" if value < 0 else f"{100 * value:.1f}"


def _missing_sizes(report: dict) -> list[str]:
    """A line for each size range without ground-truth cells (COCO reports -1 for its AP)."""
    ranges = report["settings"]["area_ranges"]
    lines = []
    for key, size in SIZE_METRICS.items():
        if report["bbox"][key] < 0 or report["segm"][key] < 0:
            low, high = ranges[size]
            bounds = f"{low:g} px and more" if high >= 1e9 else f"{low:g} to {high:g} px"
            lines.append(f"note: {key} is n/a: no {size} cells ({bounds}) in the ground truth")
    return lines


def _format_report(report: dict) -> str:
    """The AP table of ``--pred``: percent with one decimal, as the ``--model`` table prints them."""
    settings = report["settings"]
    lines = [
        f"protocol: {settings['protocol']} (maxDets {settings['max_dets']}, "
        f"area ranges {settings['area_ranges']}), {settings['n_images']} image(s)",
        "| metric | bbox (%) | mask (%) |",
        "|--------|----------|----------|",
    ]
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        lines.append(f"| {key} | {_percent(report['bbox'][key])} | {_percent(report['segm'][key])} |")
    return "\n".join(lines + _missing_sizes(report))


def run(args: argparse.Namespace) -> int:
    """Evaluate a prediction file, or run models on the ground truth's images."""
    from napari_livecell.core.analysis.evaluate import coco_default_settings, evaluate, livecell_settings

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
    from napari_livecell.core.analysis.evaluate import evaluate, predict_dataset
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.models.model import load_model

    predict = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz)
    pixel_size = checked_pixel_size(args.pixel_size)
    rows = []
    for weights in args.model:
        model = load_model(weights_argument(weights), device=args.device)
        results = predict_dataset(args.gt, args.images, model, predict, pixel_size=pixel_size)
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
        print(f"| {row['model']} | {_percent(row['bbox']['AP'])} | {_percent(row['segm']['AP'])} |")
    print(f"settings: {described}")
    if predict.conf >= 0.1:
        print(
            f"note: AP at conf {predict.conf} is the original benchmark's setting; COCO tools expect "
            "a low confidence (e.g. --conf 0.001), which gives a higher AP. Report the setting."
        )
    return 0
