"""Learning while reviewing (core/training/learning.py): rounds, their record, what is segmented again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from napari_livecell.core.training.learning import (
    SHIPPED,
    LearningError,
    LearningLog,
    LearningRound,
    round_due,
    run_round,
    to_resegment,
)
from tests.core.training.learning_data import STEPS, tiny_review

pytest.importorskip("ultralytics")


def test_a_round_is_due_every_n_done_images_and_needs_one_to_hold_out(tmp_path):
    dataset, _ = tiny_review(tmp_path, done=1)
    index = dataset.index
    assert not round_due(index, every=1)  # one done image: nothing to judge a new model by
    with pytest.raises(LearningError, match="needs 2"):
        run_round(index, steps=STEPS)
    dataset.set_state("img1", "done")
    assert round_due(index, every=2) and not round_due(index, every=3)
    LearningLog(index).record(
        LearningRound(1, SHIPPED, "models/round-1.pt", ["img0", "img1"], 1, 0.5, 0.4, False, 1.0, "t")
    )
    assert not round_due(index, every=1)  # both were learned from already
    dataset.set_state("img2", "done")
    assert round_due(index, every=1)
    with pytest.raises(ValueError):
        round_due(index, every=0)


def test_a_round_trains_on_the_done_images_and_is_kept_only_when_better(tmp_path):
    dataset, _ = tiny_review(tmp_path)
    index = dataset.index
    learned = run_round(index, steps=STEPS, imgsz=128)
    log = LearningLog(index)
    assert log.rounds() == [learned]
    assert learned.images == ["img0", "img1", "img2", "img3"] and learned.held_out == 1
    assert learned.ap50_after == learned.ap50_after and learned.ap50_before == learned.ap50_before  # scored
    assert learned.accepted == (learned.ap50_after > learned.ap50_before)
    assert (index.folder / learned.model).is_file()
    assert log.current() == (learned.model if learned.accepted else SHIPPED)
    assert not (index.folder / "learning" / "round-1").exists()  # the work folder is cleared
    # the history survives reopening; going back to the shipped model is recorded
    from napari_livecell.io.review import ReviewDataset

    reopened = LearningLog(ReviewDataset.open(tmp_path / "images").index)
    assert reopened.rounds() == [learned]
    reopened.use(SHIPPED)
    assert reopened.current() == SHIPPED
    with pytest.raises(LearningError):
        reopened.use("models/round-9.pt")


def test_only_unopened_model_cells_are_segmented_again_never_a_persons(tmp_path):
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.models.model import DEFAULT_MODEL
    from napari_livecell.io.review import resegment_unopened

    dataset, truth = tiny_review(tmp_path, done=2)
    index = dataset.index
    dataset.set_state("img2", "in progress")  # opened, not edited
    dataset.save_cells("img3", truth["img3"], {})  # a person's cells, never opened from here
    before = {name: index.cells_path(name).read_bytes() for name in truth}
    assert to_resegment(index) == ["img4", "img5"]
    # every image is offered: the write itself refuses all but the unopened model cells
    weights = str(tmp_path / "copy.pt")
    shutil.copyfile(DEFAULT_MODEL, weights)
    written = [
        name for _, _, name in resegment_unopened(dataset, list(truth), weights, PredictSettings()) if name
    ]
    assert written == ["img4", "img5"]
    for name in ("img0", "img1", "img2", "img3"):
        assert index.cells_path(name).read_bytes() == before[name], name
    for name in ("img4", "img5"):
        assert index.cells_path(name).read_bytes() != before[name]
        assert index.entry(name).origin == "model" and index.entry(name).state == "to review"
    assert LearningLog(index).segmented_with() == {"img4": weights, "img5": weights}


KILLED_ROUND = """
import sys
from napari_livecell.io.review import ReviewDataset
from napari_livecell.core.training.learning import run_round

dataset = ReviewDataset.open(sys.argv[1])
def progress(report):
    print("batch", report.batch, flush=True)
run_round(dataset.index, steps=400, imgsz=128, on_progress=progress)
print("finished", flush=True)
"""


def test_a_process_killed_mid_round_leaves_the_last_good_model_in_use(tmp_path):
    from napari_livecell.core.models.model import DEFAULT_MODEL
    from napari_livecell.io.review import ReviewDataset

    dataset, _ = tiny_review(tmp_path)
    index = dataset.index
    good = index.folder / "models" / "round-1.pt"
    good.parent.mkdir()
    shutil.copyfile(DEFAULT_MODEL, good)
    LearningLog(index).record(
        LearningRound(1, SHIPPED, "models/round-1.pt", ["img0", "img1"], 1, 0.5, 0.6, True, 1.0, "t")
    )
    script = tmp_path / "round.py"
    script.write_text(textwrap.dedent(KILLED_ROUND))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "images")],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        deadline = time.monotonic() + 300
        for line in process.stdout:  # the second batch: training is under way
            if line.startswith("batch 2") or time.monotonic() > deadline:
                break
        assert process.poll() is None, "the round ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    reopened = ReviewDataset.open(tmp_path / "images")
    log = LearningLog(reopened.index)
    assert log.current() == "models/round-1.pt" and [r.number for r in log.rounds()] == [1]
    assert not (index.folder / "models" / "round-2.pt").exists()
    assert [e.state for e in reopened.index.entries][:4] == ["done"] * 4
    assert round_due(reopened.index, every=2)  # the cut-short round's images are still to learn from
    assert Path(log.weights(log.current())).is_file()


def test_a_cancelled_round_stops_at_the_next_batch_and_records_nothing(tmp_path):
    from napari_livecell.core.training.train import TrainingCancelled

    dataset, _ = tiny_review(tmp_path)
    batches = []
    with pytest.raises(TrainingCancelled):
        run_round(dataset.index, steps=400, imgsz=128, on_progress=batches.append, should_stop=lambda: True)
    assert len(batches) == 1  # stopped after the first batch
    log = LearningLog(dataset.index)
    assert log.rounds() == [] and log.current() == SHIPPED
    assert not (dataset.index.folder / "models").exists()
    assert round_due(dataset.index, every=4)
