"""``napari-livecell`` command line: the parser; the subcommands live in ``_commands``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from napari_livecell import _commands as handlers
from napari_livecell import _train_commands as train_handlers


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-livecell`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="napari-livecell",
        description="Segment cells in phase-contrast images with YOLO-seg models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write synthetic LIVECell-like images and labels")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--n", type=int, default=10, help="number of images (or time-lapses)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames", type=int, default=None, help="write time-lapses of T frames")
    synth.add_argument("--cells", type=int, default=None, help="cells per image (default 20..600)")
    synth.add_argument(
        "--look",
        choices=["skbr3", "bright"],
        default="skbr3",
        help="cell type: skbr3 (what the shipped model knows) or bright (large, bright, new)",
    )
    synth.set_defaults(handler=handlers.cmd_synth)

    seg = commands.add_parser("segment", help="segment images; write labels, outlines and COCO json")
    seg.add_argument("paths", nargs="+", help="image files, folders or glob patterns")
    seg.add_argument("--model", default=None, help="weights (.pt/.onnx); the shipped default if omitted")
    seg.add_argument("--conf", type=float, default=0.4, help="confidence threshold (0.4)")
    seg.add_argument("--iou", type=float, default=0.6, help="NMS IoU threshold (0.6)")
    seg.add_argument("--imgsz", type=int, default=704, help="network input size (704)")
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda:N or mps")
    seg.add_argument(
        "--tile",
        choices=("auto", "on", "off"),
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
    seg.set_defaults(handler=handlers.cmd_segment)

    train = commands.add_parser(
        "train",
        help="train or fine-tune a YOLO-seg model, offline",
        description="Presets set model, imgsz, batch and crop; explicit options override them. "
        "nano (default): YOLOv8n-seg at 320 on native-resolution 320 px crops, fits a laptop CPU. "
        "livecell-x: the original LIVECell recipe, YOLOv8x-seg on square 704 inputs (a GPU job).",
    )
    train.add_argument("--data", default=None, help="COCO json (with --images) or YOLO dataset folder")
    train.add_argument("--images", default=None, help="image folder for a COCO json")
    train.add_argument("--preset", choices=["nano", "livecell-x"], default="nano")
    train.add_argument(
        "--model",
        default=None,
        help="base: an architecture yaml (from scratch), a .pt (fine-tune), or 'default' (shipped model)",
    )
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--imgsz", type=int, default=None)
    train.add_argument("--batch", type=int, default=None)
    train.add_argument(
        "--crop",
        type=int,
        default=None,
        help="cut images into native-resolution crops of this size (0: whole images)",
    )
    train.add_argument("--device", default="cpu")
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="output folder (best.pt, metrics.json, settings.json)")
    train.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --out where it stopped"
    )
    train.add_argument("--export", choices=["onnx"], default=None, help="also export best.pt")
    train.set_defaults(handler=train_handlers.cmd_train)

    evaluate = commands.add_parser("evaluate", help="box and mask AP with the LIVECell protocol")
    evaluate.add_argument("--gt", required=True, help="ground-truth COCO json")
    evaluate.add_argument("--pred", default=None, help="predictions (COCO json with scores)")
    evaluate.add_argument("--images", default=None, help="image folder: run --model on the gt's images")
    evaluate.add_argument(
        "--model", action="append", default=[], help="weights (repeat for several rows; 'default')"
    )
    evaluate.add_argument("--conf", type=float, default=0.4, help="0.4: the original benchmark")
    evaluate.add_argument("--iou", type=float, default=0.6)
    evaluate.add_argument("--imgsz", type=int, default=704)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true", help="print one json object")
    evaluate.add_argument(
        "--coco-defaults",
        action="store_true",
        help="COCO's maxDets 100 and area ranges instead of LIVECell's",
    )
    evaluate.set_defaults(handler=handlers.cmd_evaluate)

    conv = commands.add_parser("convert", help="COCO json <-> YOLO dataset <-> label TIFFs")
    conv.add_argument("input", help="COCO json, YOLO dataset folder, or folder of *_labels.tif")
    conv.add_argument("output", help="output json or folder")
    conv.add_argument("--to", choices=("coco", "yolo", "tif"), required=True)
    conv.add_argument("--images", default=None, help="image folder (COCO -> YOLO)")
    conv.add_argument("--reference", default=None, help="COCO json whose ids/sizes label TIFFs must match")
    conv.add_argument("--val", type=float, default=0.1, help="validation share (COCO -> YOLO)")
    conv.add_argument("--seed", type=int, default=0)
    conv.set_defaults(handler=handlers.cmd_convert)

    srv = commands.add_parser("serve", help="HTTP service: image in, outlined image / json out")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--model", default=None, help="weights; the shipped default if omitted")
    srv.add_argument("--device", default="cpu", help="cpu, cuda:N, mps or auto")
    srv.add_argument("--workers", type=int, default=1, help="inferences at once")
    srv.add_argument("--queue", type=int, default=8, help="requests that may wait (more get 503)")
    srv.set_defaults(handler=handlers.cmd_serve)

    cur = commands.add_parser("curate", help="rank images by likely missing annotations; filter them")
    cur.add_argument("--gt", required=True, help="training COCO json")
    cur.add_argument("--images", required=True, help="its image folder")
    cur.add_argument("--model", default="default", help="weights, or 'default'")
    cur.add_argument("--threshold", type=float, default=0.15, help="max share of unannotated cells")
    cur.add_argument("--conf", type=float, default=0.5, help="confidence of the predictions compared")
    cur.add_argument("--out", required=True, help="folder for the filtered json and the report")
    cur.set_defaults(handler=handlers.cmd_curate)

    exp = commands.add_parser("export", help="export a .pt model to ONNX (and a Triton repository)")
    exp.add_argument("weights", help="a .pt file, or 'default'")
    exp.add_argument("--format", choices=("onnx",), default="onnx")
    exp.add_argument("--imgsz", type=int, nargs="+", default=[544, 704], help="H W of the input (544 704)")
    exp.add_argument("--out", required=True, help="an .onnx path or a folder")
    exp.add_argument("--triton", default=None, help="also write a Triton model repository here")
    exp.set_defaults(handler=train_handlers.cmd_export)

    demo = commands.add_parser("demo", help="open napari with the sample image and its cells")
    demo.add_argument("--run", action="store_true", help="segment the sample right away")
    demo.add_argument("--screenshot", default=None, help="save a window screenshot and exit")
    demo.set_defaults(handler=handlers.cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (handlers.CommandError, *handlers.USER_ERRORS) as error:
        message = str(error).strip("'\"") or type(error).__name__
        print(f"napari-livecell: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-livecell: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
