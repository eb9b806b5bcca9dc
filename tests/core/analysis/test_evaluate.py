"""mAP with the LIVECell protocol equals a direct pycocotools computation."""

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from napari_livecell.core.analysis.evaluate import evaluate, livecell_settings
from napari_livecell.core.formats.coco import CocoFormatError, CocoImage, build_coco
from napari_livecell.core.segmentation import Segmentation
from napari_livecell.core.training.synthetic import synthesize_image


@pytest.fixture(scope="module")
def truth_and_predictions():
    truth_images, predicted_images = [], []
    rng = np.random.default_rng(0)
    for image_id in (1, 2):
        labels = synthesize_image(seed=image_id, n_cells=150).labels
        truth_images.append(CocoImage(image_id, f"img{image_id}.tif", Segmentation.from_labels(labels)))
        damaged = labels.copy()
        damaged[np.isin(damaged, rng.choice(labels.max(), 30) + 1)] = 0  # missed cells
        damaged = np.roll(damaged, 1, axis=1)  # slightly off
        scores = rng.uniform(0.3, 1.0, damaged.max())
        predicted_images.append(
            CocoImage(image_id, f"img{image_id}.tif", Segmentation.from_labels(damaged, scores=scores))
        )
    return build_coco(truth_images), build_coco(predicted_images, with_scores=True)


def direct_pycocotools(truth: dict, results: list, iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(truth)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.params.maxDets = [1, 10, 2000]
        evaluator.params.areaRng = [[0, 1e10], [0, 324], [324, 961], [961, 1e10]]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats[:6].copy()
    # summarize() hard-codes maxDets=100 for its first line (-1 here): take AP the
    # way it would at maxDets[-1], from the same accumulated precision table
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    stats[0] = precision[precision > -1].mean()
    return stats


def test_equals_direct_pycocotools_with_livecell_protocol(truth_and_predictions):
    truth, predictions = truth_and_predictions
    report = evaluate(truth, predictions, livecell_settings())
    for iou_type in ("segm", "bbox"):
        expected = direct_pycocotools(truth, predictions["annotations"], iou_type)
        ours = [report[iou_type][k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
        np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert 0.2 < report["segm"]["AP"] < 0.95
    assert report["settings"]["max_dets"] == 2000


def test_perfect_predictions_score_one_and_empty_score_zero(truth_and_predictions):
    truth, _ = truth_and_predictions
    perfect = [dict(a, score=1.0) for a in truth["annotations"]]
    report = evaluate(truth, perfect)
    assert report["segm"]["AP"] == pytest.approx(1.0) and report["bbox"]["AP"] == pytest.approx(1.0)
    assert evaluate(truth, [])["segm"]["AP"] == 0.0


def test_maxdets_100_undercounts_dense_images(truth_and_predictions):
    from napari_livecell.core.analysis.evaluate import coco_default_settings

    truth, _ = truth_and_predictions
    perfect = [dict(a, score=1.0) for a in truth["annotations"]]
    assert evaluate(truth, perfect, coco_default_settings())["segm"]["AP"] < 0.9


def test_bad_inputs(truth_and_predictions, tmp_path):
    truth, predictions = truth_and_predictions
    stray = [dict(predictions["annotations"][0], image_id=99)]
    with pytest.raises(CocoFormatError, match="image id"):
        evaluate(truth, stray)
    wrong_category = [dict(predictions["annotations"][0], category_id=5)]
    with pytest.raises(CocoFormatError, match="category"):
        evaluate(truth, wrong_category)
    with pytest.raises(CocoFormatError, match="no images or no annotations"):
        evaluate(dict(truth, annotations=[]), predictions)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(truth)[:100])
    with pytest.raises(CocoFormatError, match="not valid json"):
        evaluate(broken, predictions)


def test_table_command_runs_the_shipped_model_end_to_end(tmp_path, capsys):
    from napari_livecell.cli import main
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset

    json_path = write_synthetic_dataset(tmp_path / "set", 2, seed=77, n_cells=60)
    code = main(
        [
            "evaluate",
            "--gt",
            str(json_path),
            "--images",
            str(tmp_path / "set" / "images"),
            "--model",
            "default",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| Model Arch | bbox (mAP) | mask(mAP) |"
    model, box, mask = (cell.strip() for cell in lines[2].strip("|").split("|"))
    assert model == "livecell-synth-yolov8n-seg.pt"
    assert 40 < float(mask) <= 100 and 40 < float(box) <= 100
    assert "conf 0.4" in lines[3] and "original benchmark" in lines[4]


def test_curation_finds_images_with_removed_annotations(tmp_path, capsys):
    from napari_livecell.cli import main
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset

    json_path = write_synthetic_dataset(tmp_path / "train", 8, seed=123, n_cells=70)
    coco = json.loads(json_path.read_text())
    damaged = {2, 5, 7}
    rng = np.random.default_rng(0)
    kept = []
    for annotation in coco["annotations"]:
        if annotation["image_id"] in damaged and rng.random() < 0.4:
            continue  # an annotator missed this cell
        kept.append(annotation)
    coco["annotations"] = kept
    json_path.write_text(json.dumps(coco))
    out = tmp_path / "curated"
    assert (
        main(
            [
                "curate",
                "--gt",
                str(json_path),
                "--images",
                str(tmp_path / "train" / "images"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "annotations_curation.json").read_text())
    flagged = {row["image_id"] for row in report if row["dropped"]}
    assert len(flagged & damaged) / len(damaged) >= 0.9
    assert len(flagged - damaged) <= 1
    curated = json.loads((out / "annotations_curated.json").read_text())
    assert {image["id"] for image in curated["images"]} == {image["id"] for image in coco["images"]} - flagged


@pytest.mark.parametrize("with_bbox", [False, True], ids=["no-bbox", "bbox"])
def test_a_prediction_with_an_empty_segmentation_is_a_one_line_error(
    truth_and_predictions, tmp_path, capsys, with_bbox
):
    from napari_livecell.cli import main

    truth, predictions = truth_and_predictions
    empty = dict(predictions["annotations"][0], segmentation=[])
    if not with_bbox:
        empty.pop("bbox")
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    (tmp_path / "pred.json").write_text(json.dumps([empty, *predictions["annotations"][1:]]))
    assert main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]) == 2
    err = capsys.readouterr().err
    assert "empty segmentation" in err and "Traceback" not in err and err.count("\n") == 1
