"""The "Train on corrections" widget: real viewer, real fine-tuning of the shipped model."""

import numpy as np
import pytest

from napari_livecell._qt.segment_widget import SegmentCellsWidget
from napari_livecell._qt.train_widget import TrainOnCorrectionsWidget
from napari_livecell.core.training.synthetic import synthesize_image
from napari_livecell.core.training.train import FinetunePlan, TrainProgress


@pytest.fixture
def corrected_viewer(make_napari_viewer, small_frame):
    """A viewer with a 2-frame image and its corrected cells, plus both widgets docked."""
    viewer = make_napari_viewer()
    second = synthesize_image(seed=77, n_cells=40, shape=small_frame.image.shape)
    viewer.add_image(np.stack([small_frame.image, second.image]), name="plate")
    viewer.add_labels(np.stack([small_frame.labels, second.labels]), name="plate cells")
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    _, train = viewer.window.add_plugin_dock_widget("napari-livecell", "Train on corrections")
    assert isinstance(train, TrainOnCorrectionsWidget) and isinstance(segment, SegmentCellsWidget)
    train._layers.value = [viewer.layers["plate cells"]]
    train._epochs.value = 1
    train._crop.value = 0
    train._batch.value = 2
    train._val_fraction.value = 0.5
    return viewer, segment, train


def wait_for(qtbot, train, timeout=180_000):
    # not worker.finished: a run that fails at once can finish before a test connects to it
    qtbot.waitUntil(lambda: not train.busy, timeout=timeout)


def test_trains_on_corrected_layers_and_offers_the_model(qtbot, tmp_path, corrected_viewer, small_frame):
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import load_model

    _, segment, train = corrected_viewer
    train._out.value = tmp_path / "model"
    reports = []
    train._relay.report.connect(reports.append)
    worker = train.train()
    assert worker is not None
    wait_for(qtbot, train)

    weights = tmp_path / "model" / "best.pt"
    assert weights.exists(), train._status.value
    assert "mask mAP50-95" in train._status.value
    # before/after on the held-out frame, as the plan promised
    assert "mask AP50 " in train._status.value and " -> " in train._status.value, train._status.value
    assert "on held-out frames: 1," in train._status.value
    assert segment._model.value == str(weights), "the new model is chosen in Segment cells"
    plan, progress = reports[0], [r for r in reports if isinstance(r, TrainProgress)]
    assert isinstance(plan, FinetunePlan) and plan.epochs == 1 and plan.batch == 2 and plan.rotate
    assert any(r.epoch_done for r in progress) and progress[0].loss is not None
    # both frames went into the dataset: one to train, one to validate
    assert len(list((tmp_path / "model" / "dataset" / "images").rglob("*.png"))) == 2
    tuned = load_model(weights, device="cpu")
    n_true = int(small_frame.labels.max())
    assert abs(segment_frame(small_frame.image, tuned).n_cells - n_true) <= 0.25 * n_true


def test_cancel_stops_in_the_first_epoch_and_writes_no_model(qtbot, tmp_path, corrected_viewer):
    viewer, _, train = corrected_viewer
    train._epochs.value = 20
    train._crop.value = 128  # several batches per epoch
    train._out.value = tmp_path / "model"
    layers_before = [layer.name for layer in viewer.layers]
    reports = []

    def cancel_on_first_batch(progress):
        if isinstance(progress, FinetunePlan):
            return  # the plan arrives before training starts
        reports.append(progress)
        train.cancel()

    train._relay.report.connect(cancel_on_first_batch)
    assert train.train() is not None
    wait_for(qtbot, train)

    # the click lands while epoch 1 runs; the trainer stops at its next batch
    clicked_in = reports[0].epoch
    stopped_in = int(train._status.value.split("cancelled in epoch ")[1].split(";")[0])
    assert clicked_in == 1 and stopped_in <= clicked_in + 1, train._status.value
    assert not (tmp_path / "model" / "best.pt").exists()
    assert [layer.name for layer in viewer.layers] == layers_before
    assert train._train.enabled and not train._cancel.enabled


def test_labels_without_their_image_give_a_clear_message(corrected_viewer):
    viewer, _, train = corrected_viewer
    orphan = viewer.add_labels(np.ones((32, 32), np.int32), name="orphan")
    train._layers.reset_choices()
    train._layers.value = [orphan]
    assert train.train() is None
    assert "no image layer found for 'orphan'" in train._status.value


def test_an_empty_export_folder_is_refused_with_its_name(qtbot, tmp_path, corrected_viewer):
    _, _, train = corrected_viewer
    (tmp_path / "export").mkdir()
    train._layers.value = []
    train._folder.value = tmp_path / "export"
    train._out.value = tmp_path / "model"
    assert train.train() is not None
    wait_for(qtbot, train)
    assert "is not an export folder" in train._status.value
    assert not (tmp_path / "model" / "best.pt").exists()


def test_a_planned_run_says_its_plan_and_warns_that_one_frame_cannot_validate(
    qtbot, tmp_path, corrected_viewer, monkeypatch
):
    """Epochs left to the plan; one corrected frame: validated on itself, and the user told."""
    import napari_livecell._qt.train_widget as widget_module

    viewer, _, train = corrected_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    one = viewer.add_labels(viewer.layers["plate cells"].data[0], name="one cells")
    viewer.add_image(viewer.layers["plate"].data[0], name="one")
    train._layers.reset_choices()
    train._layers.value = [one]
    train._epochs.value = 0  # plan
    train._steps.value = 2
    train._out.value = tmp_path / "model"
    plans = []
    train._relay.report.connect(lambda r: plans.append(r) if isinstance(r, FinetunePlan) else None)
    assert widget_module.WIDGET_EPOCHS == 0, "the widget plans by default"
    assert train.train() is not None
    wait_for(qtbot, train)
    assert (tmp_path / "model" / "best.pt").exists(), train._status.value
    (plan,) = plans
    assert plan.validation == "train" and plan.epochs == 3, plan.reason  # at least 3 epochs
    assert any("validating on the training frames" in w for w in shown), shown
    assert "on training (nothing held out) frames" in train._status.value, train._status.value
