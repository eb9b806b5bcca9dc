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
    """Convert through the core's table; the output is checked writable before any work."""
    from napari_livecell.core.formats.convert import conversion_for, source_kind

    source, out = Path(args.input), Path(args.output)
    try:
        conversion = conversion_for(source_kind(source), args.to)
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(str(error)) from None
    options = {"images": args.images, "reference": args.reference, "val": args.val, "seed": args.seed}
    for needed in conversion.needs:
        if options[needed] is None:
            raise CommandError(f"--{needed} DIR is required to convert {args.input} --to {args.to}")
    if conversion.writes == "folder":
        ensure_output_folder(out, option="output")
    else:
        ensure_output_file(out, option="output")
    print(conversion.call(conversion.resolve(), source, out, options))
    return 0
