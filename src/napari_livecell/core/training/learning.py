"""Learn while a dataset is reviewed: each round fine-tunes on the images marked done.

A round starts from the model in use, trains on every image a person marked
done (the small-data plan of :func:`~napari_livecell.core.training.pipeline.run_training`:
optimizer steps, quarter turns), holds a quarter of those images out, and
keeps the new model only when its mask AP50 on them beats the model it
started from. The round (model, images used, AP50 before and after) is
recorded in the review index (``learning_rounds``), after the new model file
is in place: a crash mid-round leaves the previous model in use and no trace
of the round but its work folder, cleared by the next round.

Which model segmented each image is kept beside (``segmented_with``); the
images to segment again after an accepted round are the ones nobody opened
(state "to review", cells made by a model, no edit): a person's cells file is
never replaced (:meth:`~napari_livecell.core.training.review.ReviewIndex.write_cells`
checks it again inside its write transaction).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .review import ReviewError, ReviewIndex, combined_coco

# Images marked done between rounds. docs/review.md, "Learning as you go", gives the measurement:
# with 2 done images the one held out is too few cells to tell a better model from a worse one,
# and a round on this 2-core machine costs minutes, so rounds every 4 images keep one running
# while a person reviews the next four (about as long) without rounds queueing up.
LEARN_EVERY = 4
MIN_ROUND_IMAGES = 2  # one to train on, one held out to judge the new model by
HELD_OUT_FRACTION = 0.25  # of the done images: judged on, not trained on
MODELS_FOLDER = "models"
WORK_FOLDER = "learning"
SHIPPED = ""  # the model label of the shipped default model
LEARNING_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS learning_rounds (
    number INTEGER PRIMARY KEY, base TEXT NOT NULL, model TEXT NOT NULL, images TEXT NOT NULL,
    held_out INTEGER NOT NULL, ap50_before REAL, ap50_after REAL, accepted INTEGER NOT NULL,
    seconds REAL NOT NULL, finished TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segmented_with (name TEXT PRIMARY KEY, model TEXT NOT NULL);
"""


class LearningError(ReviewError):
    """A learning round that cannot start (too few done images, images in several folders)."""


@dataclass(frozen=True)
class LearningRound:
    """One fine-tune on the done images, as recorded.

    Attributes
    ----------
    number : int
        1, 2, ... in the order the rounds finished.
    base : str
        Model label it started from (:data:`SHIPPED` for the shipped model).
    model : str
        The new model's label (a path under the review folder); kept even when not accepted.
    images : list of str
        The done images it used (trained on and held out).
    held_out : int
        How many of them were held out to judge it.
    ap50_before, ap50_after : float
        Mask AP50 on the held-out images of ``base`` and of the new model.
    accepted : bool
        Whether the new model replaced ``base`` (``ap50_after > ap50_before``).
    seconds : float
        Wall time of the round.
    finished : str
        When it finished (UTC, ISO 8601).
    """

    number: int
    base: str
    model: str
    images: list[str]
    held_out: int
    ap50_before: float
    ap50_after: float
    accepted: bool
    seconds: float
    finished: str


def model_label(index: ReviewIndex, weights: str | os.PathLike | None) -> str:
    """How the index names a model: relative to the review folder when inside it; ``""`` = shipped."""
    if weights is None or str(weights) in ("", "default"):
        return SHIPPED
    path = Path(weights)
    try:
        return path.resolve().relative_to(index.folder.resolve()).as_posix()
    except ValueError:
        return str(path)


def describe_model(label: str) -> str:
    """A model label for a person: the file name, or "shipped model"."""
    return "shipped model" if label == SHIPPED else Path(label).name


class LearningLog:
    """The learning history, the model in use and which model segmented each image, in ``review.db``."""

    def __init__(self, index: ReviewIndex) -> None:
        self.index = index
        with index._db(write=True) as db:  # the tables come with the first use (the migration)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('learning_version', ?)", (str(LEARNING_VERSION),))

    def weights(self, label: str) -> str | None:
        """The file of a model label (``None``: the shipped model)."""
        if label == SHIPPED:
            return None
        path = Path(label)
        return str(path if path.is_absolute() else self.index.folder / path)

    def current(self) -> str:
        """The label of the model in use: the last accepted round's, or the one chosen back."""
        return self.index._meta("learning_model", SHIPPED)

    def use(self, label: str) -> None:
        """Put a model back in use (an earlier round's, or the shipped one)."""
        rounds = self.rounds()
        known = {SHIPPED, *(r.base for r in rounds), *(r.model for r in rounds if r.accepted)}
        if label not in known:
            raise LearningError(f"{describe_model(label)} is no model of this review's learning history")
        with self.index._db(write=True) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('learning_model', ?)", (label,))

    def rounds(self) -> list[LearningRound]:
        """Every recorded round, oldest first."""
        with self.index._db() as db:
            rows = db.execute(
                "SELECT number, base, model, images, held_out, ap50_before, ap50_after, accepted, "
                "seconds, finished FROM learning_rounds ORDER BY number"
            ).fetchall()
        return [
            LearningRound(
                number=int(row[0]),
                base=str(row[1]),
                model=str(row[2]),
                images=list(json.loads(row[3])),
                held_out=int(row[4]),
                ap50_before=float("nan") if row[5] is None else float(row[5]),
                ap50_after=float("nan") if row[6] is None else float(row[6]),
                accepted=bool(row[7]),
                seconds=float(row[8]),
                finished=str(row[9]),
            )
            for row in rows
        ]

    def next_number(self) -> int:
        """The number the next round will have."""
        with self.index._db() as db:
            row = db.execute("SELECT MAX(number) FROM learning_rounds").fetchone()
        return int(row[0] or 0) + 1

    def record(self, learned: LearningRound) -> None:
        """Record a finished round; an accepted one's model is in use from now on (one transaction)."""
        with self.index._db(write=True) as db:
            db.execute(
                "INSERT INTO learning_rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    learned.number,
                    learned.base,
                    learned.model,
                    json.dumps(learned.images),
                    learned.held_out,
                    None if math.isnan(learned.ap50_before) else learned.ap50_before,
                    None if math.isnan(learned.ap50_after) else learned.ap50_after,
                    int(learned.accepted),
                    learned.seconds,
                    learned.finished,
                ),
            )
            if learned.accepted:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('learning_model', ?)", (learned.model,))

    def segmented_with(self) -> dict[str, str]:
        """Image name -> label of the model that made its cells (images segmented before learning: absent)."""
        with self.index._db() as db:
            return {str(n): str(m) for n, m in db.execute("SELECT name, model FROM segmented_with")}

    def record_segmented(self, name: str, label: str) -> None:
        """Remember which model made an image's cells."""
        with self.index._db(write=True) as db:
            db.execute("INSERT OR REPLACE INTO segmented_with VALUES (?, ?)", (name, label))

    def used_images(self) -> set[str]:
        """The done images some round has trained on already."""
        return {name for learned in self.rounds() for name in learned.images}


def done_images(index: ReviewIndex) -> list[str]:
    """Images marked done that have cells, in the dataset's order."""
    return [
        e.name
        for e in index.entries
        if e.state == "done" and e.segmented and index.cells_path(e.name).is_file()
    ]


def round_due(index: ReviewIndex, every: int = LEARN_EVERY) -> bool:
    """Whether ``every`` images were marked done since the last round (and enough to hold one out)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    done = done_images(index)
    fresh = [name for name in done if name not in LearningLog(index).used_images()]
    return len(done) >= MIN_ROUND_IMAGES and len(fresh) >= every


def to_resegment(index: ReviewIndex) -> list[str]:
    """Images nobody opened whose cells a model made: the ones a better model segments again."""
    return [
        e.name for e in index.entries if e.state == "to review" and (e.origin == "model" or not e.segmented)
    ]


def _done_coco(index: ReviewIndex, names: list[str]) -> tuple[dict, Path]:
    """The done images' cells as one COCO dict, and the one folder their images lie in."""
    entries = {e.name: e for e in index.entries}
    wanted = {Path(entries[name].image).name for name in names}
    combined = combined_coco(index)
    images = [image for image in combined["images"] if image["file_name"] in wanted]
    ids = {image["id"] for image in images}
    combined["images"] = images
    combined["annotations"] = [a for a in combined["annotations"] if a["image_id"] in ids]
    parents = {Path(entries[name].image).parent for name in names}
    if len(parents) != 1:
        raise LearningError(f"the done images lie in {len(parents)} folders; learning needs them in one")
    return combined, parents.pop()


def run_round(
    index: ReviewIndex,
    first_base: str | None = None,
    steps: int | None = None,
    imgsz: int = 320,
    device: str = "cpu",
    seed: int = 0,
    on_progress: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LearningRound:
    """Fine-tune the model in use on every done image; keep it only when the held-out AP50 improves.

    Parameters
    ----------
    index : ReviewIndex
        The review.
    first_base : str, optional
        The model the first round starts from (the one the review was
        segmented with; ``None``: the shipped model); later rounds start from
        the model in use (:meth:`LearningLog.current`).
    steps : int, optional
        Optimizer steps of the plan (``MIN_FINETUNE_STEPS`` by default; tests use a few).
    imgsz, device, seed
        As for :class:`~napari_livecell.core.training.pipeline.TrainingOptions`.
    on_progress : callable, optional
        Called with each :class:`~napari_livecell.core.training.train.TrainProgress`.
    should_stop : callable, optional
        Polled after every batch: :class:`~napari_livecell.core.training.train.TrainingCancelled`
        is raised at the next batch, and nothing is recorded.

    Returns
    -------
    LearningRound
        The recorded round.

    Raises
    ------
    LearningError
        Fewer than :data:`MIN_ROUND_IMAGES` done images, or their images in several folders.
    """
    from napari_livecell.core.formats.coco import write_coco
    from napari_livecell.core.models.model import DEFAULT_MODEL

    from .data import coco_to_yolo_dataset
    from .pipeline import TrainingOptions, run_training
    from .train import base_modality

    started = time.perf_counter()
    log = LearningLog(index)
    names = done_images(index)
    if len(names) < MIN_ROUND_IMAGES:
        raise LearningError(
            f"{len(names)} image(s) marked done: a learning round needs {MIN_ROUND_IMAGES} "
            "(one to learn from, one to judge the new model by)"
        )
    base = log.current()
    if base == SHIPPED and not log.rounds():
        base = model_label(index, first_base)
    base_weights = log.weights(base) or str(DEFAULT_MODEL)
    number = log.next_number()
    work = index.folder / WORK_FOLDER / f"round-{number}"
    shutil.rmtree(work, ignore_errors=True)  # what a round cut short left
    work.mkdir(parents=True)
    coco, images_dir = _done_coco(index, names)
    coco_path = write_coco(work / "done.json", coco)
    # native-resolution crops, as the shipped model was trained: a whole frame squeezed into
    # imgsz would show the cells smaller than inference does
    largest = max(max(int(i["height"]), int(i["width"])) for i in coco["images"])
    crop = imgsz if largest > imgsz else None
    data_yaml = coco_to_yolo_dataset(
        coco_path, images_dir, work / "dataset", crop, HELD_OUT_FRACTION, seed, base_modality(base_weights)
    )
    options = TrainingOptions(steps=steps, imgsz=imgsz, device=device, workers=0, seed=seed)
    metadata = {"learning": {"round": number, "images": names}}
    result = run_training(
        data_yaml,
        base_weights,
        work / "train",
        options,
        metadata=metadata,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    scores = result.before_after or {}
    before = float((scores.get("base") or {}).get("AP50", float("nan")))
    after = float((scores.get("tuned") or {}).get("AP50", float("nan")))
    accepted = scores.get("on") == "val" and after > before  # nan compares False: not accepted
    target = index.folder / MODELS_FOLDER / f"round-{number}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".pt.tmp")
    shutil.copyfile(result.weights, temporary)
    os.replace(temporary, target)  # in place whole before the round that names it is recorded
    learned = LearningRound(
        number=number,
        base=base,
        model=model_label(index, target),
        images=names,
        held_out=int(scores.get("frames", 0)),
        ap50_before=before,
        ap50_after=after,
        accepted=bool(accepted),
        seconds=round(time.perf_counter() - started, 1),
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    log.record(learned)
    shutil.rmtree(work, ignore_errors=True)
    return learned


def describe_round(learned: LearningRound) -> str:
    """One line of the history: model, images, held-out AP50 before -> after, kept or not."""
    verdict = "in use" if learned.accepted else "not better: kept the model before"
    return (
        f"round {learned.number}: {describe_model(learned.model)} from {len(learned.images)} image(s), "
        f"held-out AP50 {learned.ap50_before:.2f} -> {learned.ap50_after:.2f} ({verdict}, "
        f"{learned.seconds:.0f} s)"
    )
