"""Finding training images with missing annotations (the original work dropped ~1k).

An image is suspicious when the model confidently finds cells that no
annotation covers. Each image gets the share of its confident predictions
without a matching annotation (mask IoU >= 0.5); images above a threshold
are dropped from the filtered json.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from napari_livecell.core.formats.coco import (
    annotations_by_image,
    annotations_to_labels,
    check_image_entry,
    load_coco,
)

DEFAULT_THRESHOLD = 0.15  # share of confident cells without an annotation
DEFAULT_CONF = 0.5


@dataclass
class ImageReport:
    """How one image's annotations compare with confident predictions."""

    image_id: int
    file_name: str
    annotated: int
    predicted: int
    unannotated: int  # confident predictions matching no annotation
    missing_share: float
    dropped: bool


def curate(
    coco_json: str | os.PathLike,
    images_dir: str | os.PathLike,
    model,
    threshold: float = DEFAULT_THRESHOLD,
    conf: float = DEFAULT_CONF,
    progress=None,
    pixel_size: float | None = None,
) -> tuple[dict, list[ImageReport]]:
    """Rank images by likely missing annotations; return (filtered coco, reports).

    Reports are sorted most suspicious first; the filtered COCO dict keeps the
    images whose ``missing_share`` is at most ``threshold`` (and their
    annotations). Images are segmented by the frame recipe ``segment`` uses
    (:class:`~napari_livecell.core.inference.recipe.FrameRecipe`), at
    ``pixel_size`` when given, else at what each TIFF's metadata says.
    """
    from napari_livecell.core.analysis.matching import match_cells
    from napari_livecell.core.images import read_image
    from napari_livecell.core.inference.pixel_size import image_pixel_size
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.recipe import FrameRecipe

    coco = load_coco(coco_json)
    grouped = annotations_by_image(coco)
    recipe = FrameRecipe.plan(model, PredictSettings(conf=conf))
    reports = []
    for done, entry in enumerate(coco["images"], start=1):
        height, width = check_image_entry(entry, Path(coco_json).name)
        path = Path(images_dir) / Path(str(entry["file_name"])).name
        if not path.exists():
            raise FileNotFoundError(f"image {entry['file_name']} not found in {images_dir}")
        truth = annotations_to_labels(grouped.get(entry["id"], []), height, width)
        at_size = recipe.at_pixel_size(*image_pixel_size(path, pixel_size))
        predicted = at_size.segment(read_image(path), trace=False).segmentation
        match = match_cells(truth, predicted.labels)
        unannotated = predicted.n_cells - match.n_matched
        share = unannotated / max(1, predicted.n_cells)
        reports.append(
            ImageReport(
                image_id=entry["id"],
                file_name=str(entry["file_name"]),
                annotated=match.n_reference,
                predicted=predicted.n_cells,
                unannotated=unannotated,
                missing_share=round(share, 4),
                dropped=share > threshold,
            )
        )
        if progress is not None:
            progress(done, len(coco["images"]))
    reports.sort(key=lambda report: report.missing_share, reverse=True)
    dropped = {report.image_id for report in reports if report.dropped}
    filtered = dict(coco)
    filtered["images"] = [image for image in coco["images"] if image["id"] not in dropped]
    filtered["annotations"] = [a for a in coco["annotations"] if a["image_id"] not in dropped]
    filtered.setdefault("info", {})
    filtered["info"] = dict(
        filtered["info"], curation={"threshold": threshold, "conf": conf, "dropped": len(dropped)}
    )
    return filtered, reports


def report_rows(reports: list[ImageReport]) -> list[dict]:
    """Reports as plain dicts (json/csv)."""
    return [asdict(report) for report in reports]
