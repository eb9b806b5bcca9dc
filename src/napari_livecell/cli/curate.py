"""``napari-livecell curate``: rank images by likely missing annotations; filter them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_livecell.cli.common import checked_pixel_size, ensure_output_folder, weights_argument


def add_parser(commands) -> None:
    """Register the subcommand."""
    cur = commands.add_parser("curate", help="rank images by likely missing annotations; filter them")
    cur.add_argument("--gt", required=True, help="training COCO json")
    cur.add_argument("--images", required=True, help="its image folder")
    cur.add_argument("--model", default="default", help="weights, or 'default'")
    cur.add_argument("--threshold", type=float, default=0.15, help="max share of unannotated cells")
    cur.add_argument("--conf", type=float, default=0.5, help="confidence of the predictions compared")
    cur.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="micrometres per pixel of the images (default: each TIFF's own metadata, else unknown); "
        "images are resampled to the model's pixel size as `segment` does",
    )
    cur.add_argument("--out", required=True, help="folder for the filtered json and the report")
    cur.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the filtered json and the report; print the most suspicious images."""
    from napari_livecell.core.atomic import write_text_atomic
    from napari_livecell.core.formats.coco import write_coco
    from napari_livecell.core.training.curate import curate, report_rows

    pixel_size = checked_pixel_size(args.pixel_size)
    out = ensure_output_folder(args.out)  # before the model runs over every image
    weights = weights_argument(args.model)
    filtered, reports = curate(
        args.gt, args.images, weights, args.threshold, args.conf, pixel_size=pixel_size
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
