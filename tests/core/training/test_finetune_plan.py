"""Small-data fine-tuning: planned by optimizer steps, warned when too small, scored before and after."""

import json

import numpy as np
import pytest

from napari_livecell.core.training.data import DatasetStats
from napari_livecell.core.training.train import (
    MAX_PLANNED_EPOCHS,
    MIN_FINETUNE_STEPS,
    ROTATE_BELOW_IMAGES,
    TrainSettings,
    plan_finetune,
)


def test_a_handful_of_frames_gets_enough_steps_turns_and_one_step_per_batch():
    plan = plan_finetune(DatasetStats(6, 120, 1, 20, max_side=256), imgsz=320)
    assert plan.rotate and plan.batch == 4 and plan.imgsz == 256, "cells keep their pixel size"
    assert plan.steps_per_epoch == 6  # 6 frames x 4 quarter turns / batch 4
    assert plan.steps >= MIN_FINETUNE_STEPS and plan.epochs == 50
    assert plan.overrides["nbs"] == plan.batch, "Ultralytics would accumulate 16 batches per step"
    assert plan.overrides["flipud"] == plan.overrides["fliplr"] == 0.5
    assert "300 optimizer steps" in plan.reason and "x 4 quarter turns" in plan.reason
    settings = TrainSettings.for_plan("data.yaml", "base.pt", plan)
    assert (settings.epochs, settings.batch, settings.imgsz) == (50, 4, 256)
    assert settings.extra["nbs"] == 4 and settings.extra["warmup_epochs"] == 0


def test_a_large_set_keeps_its_batch_and_trains_few_epochs():
    plan = plan_finetune(DatasetStats(810, 40_000, 90, 4000, max_side=320))
    assert not plan.rotate and plan.batch == 8 and plan.epochs == 3 and plan.steps >= MIN_FINETUNE_STEPS
    assert plan.warnings == []
    assert ROTATE_BELOW_IMAGES <= 810


def test_asked_epochs_are_kept_and_too_few_steps_said():
    plan = plan_finetune(DatasetStats(6, 120, 2, 40), epochs=5)
    assert plan.epochs == 5 and plan.steps == 30
    assert any("only 30 optimizer steps" in w for w in plan.warnings)
    # a short run takes smaller steps: AdamW's first steps would otherwise wreck a working model
    assert plan.overrides["lr0"] == pytest.approx(0.001 * 30 / MIN_FINETUNE_STEPS)


def test_one_image_plans_capped_epochs_and_warns_it_validates_on_training_frames():
    plan = plan_finetune(DatasetStats(1, 12, 1, 12, val_is_train=True))
    assert plan.epochs == MAX_PLANNED_EPOCHS and plan.validation == "train"
    text = " ".join(plan.warnings)
    assert "validating on the training frames" in text and "only 12 training cells" in text
    assert "leave epochs to the plan" not in text, "the plan's own cap is not the user's doing"


def test_a_one_frame_dataset_is_seen_as_validating_on_itself(tmp_path):
    from napari_livecell.core.training.data import (
        TrainingFrame,
        describe_yolo_dataset,
        split_frames,
        write_rotated_training_set,
        write_training_dataset,
    )
    from napari_livecell.core.training.synthetic import synthesize_image

    sample = synthesize_image(3, n_cells=15, shape=(96, 128))
    frame = TrainingFrame("only", sample.image, sample.labels)
    data_yaml = write_training_dataset([frame], 1, {0: "cell"}, tmp_path / "ds", val_fraction=0.2)
    stats = describe_yolo_dataset(data_yaml)
    assert stats.val_is_train and stats.train_images == 1 and stats.max_side == 128
    assert stats.train_cells == int(sample.labels.max())

    turned = describe_yolo_dataset(write_rotated_training_set(data_yaml, tmp_path / "turned"))
    assert turned.train_images == 4 and turned.val_images == 1, "validation: the unturned frame"
    frames = {name: labels for name, _, labels in split_frames(tmp_path / "turned" / "data.yaml", "train")}
    for quarter in (1, 2, 3):
        turned_mask = frames[f"only_rot{90 * quarter}"] > 0
        expected = np.rot90(frames["only"], quarter) > 0
        assert (turned_mask == expected).mean() > 0.999


def test_a_fine_tuned_model_keeps_the_modality_of_its_base(tmp_path):
    import torch

    from napari_livecell.core.models.model import DEFAULT_MODEL
    from napari_livecell.core.models.safe_load import load_checkpoint
    from napari_livecell.core.training.train import _inherited

    checkpoint = load_checkpoint(DEFAULT_MODEL)
    checkpoint["napari_livecell"] = {"modality": "fluorescence", "metrics": {"m": 1.0}}
    torch.save(checkpoint, tmp_path / "fluo.pt")
    assert _inherited(str(tmp_path / "fluo.pt")) == {"modality": "fluorescence"}
    assert _inherited(str(DEFAULT_MODEL)) == {} and _inherited("yolov8n-seg.yaml") == {}


def _write_frames(root, n_frames: int, shape=(128, 128), n_cells=12):
    import tifffile

    from napari_livecell.core.formats.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import synthesize_image

    (root / "images").mkdir(parents=True)
    entries = []
    for index in range(n_frames):
        sample = synthesize_image(100 + index, n_cells=n_cells, shape=shape)
        tifffile.imwrite(root / "images" / f"f{index}.tif", sample.image)
        entries.append(CocoImage(index + 1, f"f{index}.tif", Segmentation.from_labels(sample.labels)))
    return write_coco(root / "annotations.json", build_coco(entries))


@pytest.mark.slow
def test_tiny_finetune_follows_the_plan_and_reports_before_after(tmp_path, capsys):
    from napari_livecell.cli import main

    json_path = _write_frames(tmp_path / "data", 3)
    out = tmp_path / "tuned"
    args = ["train", "--data", str(json_path), "--images", str(json_path.parent / "images")]
    args += ["--model", "default", "--crop", "0", "--steps", "4", "--workers", "0", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    # 2 training frames x 4 quarter turns at batch 4: 2 steps an epoch, at least 3 epochs
    assert summary["plan"] == {"epochs": 3, "steps": 6, "batch": 4, "imgsz": 128, "rotate": True}
    assert "plan: 3 epochs x 2 steps = 6 optimizer steps" in captured.err
    assert "warning: validation holds 1 frame(s)" in captured.err
    assert "warning: only" in captured.err and "training cells" in captured.err
    assert summary["warnings"] and "mask AP50" in captured.err

    metrics = json.loads((out / "metrics.json").read_text())
    before_after = metrics["before_after"]
    assert before_after == summary["before_after"]
    assert before_after["on"] == "val" and before_after["frames"] == 1 and before_after["cells"] > 5
    for model in ("base", "tuned"):
        assert 0.0 <= before_after[model]["AP50"] <= 1.0
    # the shipped model already knows this look: a few steps must not wreck it
    assert before_after["base"]["AP50"] > 0.5 and before_after["tuned"]["AP50"] > 0.3
    assert metrics["plan"]["steps"] == 6 and metrics["settings"]["extra"]["nbs"] == 4
