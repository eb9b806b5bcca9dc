"""The one training sequence (core/training/pipeline.py) that the widget's worker and ``train`` call."""

from napari_livecell.core.training.pipeline import SCRATCH_EPOCHS, TrainingOptions, training_settings


def one_frame_dataset(root):
    from napari_livecell.core.training.data import TrainingFrame, write_training_dataset
    from napari_livecell.core.training.synthetic import synthesize_image

    sample = synthesize_image(3, n_cells=15, shape=(96, 128))
    frame = TrainingFrame("only", sample.image, sample.labels)
    return write_training_dataset([frame], 1, {0: "cell"}, root, val_fraction=0.2)


def test_a_small_finetune_is_planned_said_and_turned(tmp_path):
    from napari_livecell.core.models.model import DEFAULT_MODEL
    from napari_livecell.core.training.data import describe_yolo_dataset

    data_yaml = one_frame_dataset(tmp_path / "ds")
    plans = []
    settings, summary = training_settings(
        data_yaml, str(DEFAULT_MODEL), tmp_path, TrainingOptions(steps=8, batch=2), on_plan=plans.append
    )
    (plan,) = plans
    assert plan.rotate and summary == plan.summary()
    assert settings.data == str(tmp_path / "dataset-turned" / "data.yaml")
    assert describe_yolo_dataset(settings.data).train_images == 4
    assert (settings.epochs, settings.batch) == (plan.epochs, 2) and settings.extra["nbs"] == 2


def test_from_scratch_takes_the_shipped_recipe_and_the_users_word(tmp_path):
    data_yaml = one_frame_dataset(tmp_path / "ds")
    plans = []
    settings, summary = training_settings(
        data_yaml, "yolov8n-seg.yaml", tmp_path, TrainingOptions(seed=3), on_plan=plans.append
    )
    assert summary is None and plans == []
    assert (settings.epochs, settings.batch, settings.seed) == (SCRATCH_EPOCHS, 8, 3)
    asked = TrainingOptions(epochs=2, batch=4, imgsz=256)
    settings, _ = training_settings(data_yaml, "yolov8n-seg.yaml", tmp_path, asked)
    assert (settings.epochs, settings.batch, settings.imgsz) == (2, 4, 256)


def test_the_cli_and_the_widget_take_the_scratch_epochs_from_the_pipeline():
    import napari_livecell._qt.train_worker as worker
    import napari_livecell.cli.train as cli

    assert cli.SCRATCH_EPOCHS is SCRATCH_EPOCHS
    assert not hasattr(worker, "SCRATCH_EPOCHS") and not hasattr(worker, "SCRATCH_BATCH")
