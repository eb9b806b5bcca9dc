"""COCO mAP with the LIVECell protocol, computed by pycocotools.

LIVECell raises COCO's detection cap from 100 to 2000 per image (dense images
hold more than 100 cells) and uses its own area ranges: small < 324 px^2,
medium 324-961 px^2, large > 961 px^2. The matching is pycocotools' own;
nothing here re-implements it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from napari_livecell.core.formats.coco import CocoFormatError, load_coco

LIVECELL_MAX_DETS = 2000
LIVECELL_AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 324.0),
    "medium": (324.0, 961.0),
    "large": (961.0, 1e10),
}
COCO_AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}


@dataclass
class EvaluationSettings:
    """How AP was computed (reported next to every number)."""

    max_dets: int = LIVECELL_MAX_DETS
    area_ranges: dict = field(default_factory=lambda: dict(LIVECELL_AREA_RANGES))
    protocol: str = "livecell"


def livecell_settings() -> EvaluationSettings:
    """LIVECell's protocol: maxDets 2000 and its cell-size area ranges."""
    return EvaluationSettings()


def coco_default_settings() -> EvaluationSettings:
    """COCO's defaults: maxDets 100 and COCO's area ranges."""
    return EvaluationSettings(max_dets=100, area_ranges=dict(COCO_AREA_RANGES), protocol="coco")


def _coco_from_dict(data: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _as_dict(source: str | os.PathLike | dict) -> dict:
    if isinstance(source, dict):
        data = copy.deepcopy(source)
        if isinstance(data.get("annotations"), dict):
            data["annotations"] = list(data["annotations"].values())
        return data
    return load_coco(source)


def _image_key(image: dict) -> tuple[str, int]:
    return Path(str(image.get("file_name", ""))).name, int(image.get("frame") or 0)


def _load_predictions(source: str | os.PathLike | dict | list, truth: dict | None = None) -> list[dict]:
    """Prediction list; a COCO dict's image ids are mapped to the truth's by file name."""
    if isinstance(source, list):
        return copy.deepcopy(source)
    if isinstance(source, dict):
        annotations = source.get("annotations", [])
        if isinstance(annotations, dict):
            annotations = list(annotations.values())
        annotations = copy.deepcopy(annotations)
        if truth is not None and source.get("images"):
            truth_ids = {_image_key(image): image["id"] for image in truth["images"]}
            remap = {
                image["id"]: truth_ids.get(_image_key(image), f"missing:{image['file_name']}")
                for image in source["images"]
            }
            for annotation in annotations:
                annotation["image_id"] = remap.get(annotation["image_id"], annotation["image_id"])
        return annotations
    import json

    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CocoFormatError(f"{path.name} is not valid json: {error}") from None
    except FileNotFoundError:
        raise CocoFormatError(f"prediction file not found: {path}") from None
    return _load_predictions(data, truth)


def _add_box_from_mask(result: dict, height: int, width: int) -> None:
    """Give a mask-only prediction the box pycocotools needs for bbox AP."""
    from pycocotools import mask as mask_utils

    segmentation = result.get("segmentation")
    if segmentation is None:
        raise CocoFormatError("a prediction needs a 'bbox' or a 'segmentation'")
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    result["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]


def _check_segmentation(result: dict, number: int) -> None:
    """Refuse a prediction whose mask is empty or malformed (pycocotools would raise IndexError)."""
    if "segmentation" not in result:
        return
    segmentation = result["segmentation"]
    where = f"prediction {number} (image {result.get('image_id')})"
    if isinstance(segmentation, list):
        if not segmentation or not all(isinstance(ring, list) and len(ring) >= 6 for ring in segmentation):
            raise CocoFormatError(
                f"{where} has an empty segmentation or a polygon of fewer than 3 points: "
                "remove it or give it a polygon or RLE"
            )
    elif not isinstance(segmentation, dict) or not segmentation.get("counts"):
        raise CocoFormatError(f"{where} has an empty segmentation (no polygon and no RLE counts)")


def _summary(evaluator, settings: EvaluationSettings) -> dict[str, float]:
    """AP, AP50, AP75, APs, APm, APl at the last maxDets, as COCO's summarize does."""
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    thresholds = evaluator.params.iouThrs
    area_names = list(settings.area_ranges)

    def average(iou: float | None = None, area: str = "all") -> float:
        values = precision[..., area_names.index(area), -1]
        if iou is not None:
            values = values[np.where(np.isclose(thresholds, iou))[0]]
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    return {
        "AP": average(),
        "AP50": average(0.5),
        "AP75": average(0.75),
        "APs": average(area="small"),
        "APm": average(area="medium"),
        "APl": average(area="large"),
    }


def evaluate(
    ground_truth: str | os.PathLike | dict,
    predictions: str | os.PathLike | dict | list,
    settings: EvaluationSettings | None = None,
) -> dict:
    """Box and mask AP of predictions against ground truth.

    Parameters
    ----------
    ground_truth : path or dict
        COCO json (list- or dict-style ``annotations``).
    predictions : path, dict or list
        A COCO results list, or a COCO dict whose annotations carry ``score``.
    settings : EvaluationSettings, optional
        LIVECell's protocol by default (maxDets 2000, its area ranges).

    Returns
    -------
    dict
        ``{"segm": {...}, "bbox": {...}, "settings": {...}}`` with AP values as
        fractions (-1 where a size range holds no cells).

    Raises
    ------
    CocoFormatError
        Empty ground truth, predictions for images or categories the ground
        truth does not have.
    """
    from pycocotools.cocoeval import COCOeval

    settings = settings or livecell_settings()
    truth = _as_dict(ground_truth)
    results = _load_predictions(predictions, truth)
    if not truth["images"] or not truth["annotations"]:
        raise CocoFormatError("the ground truth holds no images or no annotations")
    image_ids = {image["id"] for image in truth["images"]}
    category_ids = {category["id"] for category in truth.get("categories", [])}
    unknown_images = {r.get("image_id") for r in results} - image_ids
    if unknown_images:
        raise CocoFormatError(
            f"predictions refer to {len(unknown_images)} image id(s) not in the ground "
            f"truth, e.g. {sorted(unknown_images, key=str)[:3]}"
        )
    unknown_categories = {r.get("category_id") for r in results} - category_ids
    if unknown_categories:
        raise CocoFormatError(
            f"predictions use category id(s) {sorted(unknown_categories, key=str)} that the "
            f"ground truth does not define ({sorted(category_ids)})"
        )
    sizes = {image["id"]: (image["height"], image["width"]) for image in truth["images"]}
    for number, result in enumerate(results, start=1):
        if "score" not in result:
            raise CocoFormatError("every prediction needs a 'score'")
        _check_segmentation(result, number)
        result.pop("id", None)
        if "bbox" not in result:
            _add_box_from_mask(result, *sizes[result["image_id"]])
    for annotation in truth["annotations"]:
        annotation.setdefault("iscrowd", 0)
    gt = _coco_from_dict(truth)
    report: dict = {"settings": {**asdict(settings), "n_images": len(image_ids)}}
    for iou_type in ("segm", "bbox"):
        if not results:
            report[iou_type] = dict.fromkeys(("AP", "AP50", "AP75", "APs", "APm", "APl"), 0.0)
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(copy.deepcopy(results))
            evaluator = COCOeval(gt, dt, iouType=iou_type)
            evaluator.params.maxDets = sorted({1, 10, settings.max_dets})[-3:]
            evaluator.params.areaRng = [list(r) for r in settings.area_ranges.values()]
            evaluator.params.areaRngLbl = list(settings.area_ranges)
            evaluator.evaluate()
            evaluator.accumulate()
        report[iou_type] = _summary(evaluator, settings)
    return report


def predict_dataset(
    ground_truth: str | os.PathLike | dict,
    images_dir: str | os.PathLike,
    model,
    settings=None,
    progress=None,
    pixel_size: float | None = None,
) -> list[dict]:
    """Segment every image of a COCO ground truth; return COCO results with scores.

    Each image goes through the frame recipe the widget, the CLI and the
    service use (:class:`~napari_livecell.core.inference.recipe.FrameRecipe`:
    polarity, resampling to the model's pixel size, tiling), so that
    ``evaluate --model`` scores the cells ``segment`` finds. An image's pixel
    size is ``pixel_size`` when given, else its TIFF metadata, else unknown.
    Image ids are the ground truth's, so the results evaluate directly against it.
    """
    from napari_livecell.core.formats.coco import segmentation_annotations
    from napari_livecell.core.images import read_image
    from napari_livecell.core.inference.pixel_size import image_pixel_size
    from napari_livecell.core.inference.recipe import FrameRecipe

    truth = _as_dict(ground_truth)
    recipe = FrameRecipe.plan(model, settings)
    results: list[dict] = []
    for done, entry in enumerate(truth["images"], start=1):
        path = Path(images_dir) / Path(str(entry["file_name"])).name
        if not path.exists():
            raise FileNotFoundError(f"image {entry['file_name']} not found in {images_dir}")
        segmentation = recipe.at_pixel_size(*image_pixel_size(path, pixel_size)).segment(read_image(path))
        results += segmentation_annotations(
            segmentation.segmentation, entry["id"], len(results) + 1, with_scores=True
        )
        if progress is not None:
            progress(done, len(truth["images"]))
    return results
