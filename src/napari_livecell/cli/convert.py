"""``napari-livecell convert``: COCO json <-> YOLO dataset <-> label TIFFs."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_livecell.cli.common import CommandError, ensure_output_file, ensure_output_folder


def add_parser(commands) -> None:
    """Register the subcommand."""
    conv = commands.add_parser("convert", help="COCO json <-> YOLO dataset <-> label TIFFs")
    conv.add_argument("input", help="COCO json, YOLO dataset folder, or folder of *_labels.tif")
    conv.add_argument("output", help="output json or folder")
    conv.add_argument(
        "--to",
        choices=("coco", "yolo", "tif"),
        required=True,
        help="output format: a COCO json, a YOLO dataset folder, or one label TIFF per image",
    )
    conv.add_argument("--images", default=None, help="image folder (COCO -> YOLO)")
    conv.add_argument("--reference", default=None, help="COCO json whose ids/sizes label TIFFs must match")
    conv.add_argument("--val", type=float, default=0.1, help="validation share, 0..1 (COCO -> YOLO; 0.1)")
    conv.add_argument(
        "--seed", type=int, default=0, help="seed of the train/validation draw (COCO -> YOLO; 0)"
    )
    conv.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Convert between the formats; the output is checked writable before any work."""
    from napari_livecell.core.formats import convert
    from napari_livecell.core.training.data import coco_to_yolo_dataset

    source, out = Path(args.input), Path(args.output)
    if not source.exists():
        raise CommandError(f"input not found: {source}")
    if source.suffix.lower() == ".json":
        if args.to == "yolo":
            if args.images is None:
                raise CommandError("--images DIR is required to build a YOLO dataset from COCO")
            ensure_output_folder(out, option="output")
            data_yaml = coco_to_yolo_dataset(source, args.images, out, val_fraction=args.val, seed=args.seed)
            print(f"wrote YOLO dataset {data_yaml}")
        elif args.to == "tif":
            ensure_output_folder(out, option="output")
            written = convert.coco_to_label_tiffs(source, out)
            print(f"wrote {len(written)} label TIFF(s) to {out}")
        else:
            raise CommandError("the input is already COCO json: use --to yolo or --to tif")
    elif source.is_dir() and (source / "data.yaml").exists():
        if args.to != "coco":
            raise CommandError("a YOLO dataset converts --to coco")
        ensure_output_file(out, option="output")
        print(f"wrote {convert.yolo_dataset_to_coco(source, out)}")
    elif source.is_dir():
        label_files = sorted(source.glob("*_labels.tif"))
        if not label_files:
            raise CommandError(f"no *_labels.tif files in {source}")
        if args.to != "coco":
            raise CommandError("label TIFFs convert --to coco")
        ensure_output_file(out, option="output")
        print(f"wrote {convert.label_tiffs_to_coco(label_files, out, args.reference)}")
    else:
        raise CommandError(f"{source} is not a COCO json, a YOLO dataset folder or a folder of *_labels.tif")
    return 0
