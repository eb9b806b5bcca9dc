"""``napari-livecell review-sim``: a review played by the simulated annotator, with or without learning.

The dataset (a COCO json with its images) is copied into a working folder
and reviewed as the Review dataset dock does it: every image segmented first
(shipped model), then image after image in queue order, each corrected by
:func:`~napari_livecell.core.analysis.annotator.annotate` (with the model's
help, :class:`~napari_livecell.core.analysis.assist.CellAssistant`, from the
model that segmented it) into the truth, saved as a person's cells and
marked done. With ``--learn on`` a learning round runs whenever ``--every``
images are done; the simulation waits for it (a person slower than a round),
and a better model segments the unopened images again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from napari_livecell.cli.common import CommandError, int_in


def add_parser(commands) -> None:
    """Register the subcommand."""
    sim = commands.add_parser(
        "review-sim", help="replay a review with the simulated annotator as the person, learning on or off"
    )
    sim.add_argument("--gt", required=True, help="COCO json of the true cells")
    sim.add_argument("--images", required=True, help="its image folder")
    sim.add_argument("--learn", choices=["on", "off"], required=True, help="learn as the images are done")
    sim.add_argument("--every", type=int_in(1, 10_000), default=None, help="images done between rounds")
    sim.add_argument(
        "--steps",
        type=int_in(1, 100_000),
        default=None,
        help="optimizer steps of a round (default: the plan's)",
    )
    sim.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    sim.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    sim.set_defaults(handler=run)


def truth_by_image(gt: Path, images: Path) -> dict[str, tuple[Path, Any]]:
    """Image stem -> (image file, true label image), in the json's order."""
    from napari_livecell.core.formats.coco import (
        annotations_by_image,
        annotations_to_labels,
        check_image_entry,
        load_coco,
    )

    coco = load_coco(gt)
    by_image = annotations_by_image(coco)
    truth = {}
    for entry in coco["images"]:
        path = images / Path(str(entry.get("file_name", ""))).name
        if not path.is_file():
            raise CommandError(f"image {entry.get('file_name')!r} of {gt.name} not found in {images}")
        height, width = check_image_entry(entry, gt.name)
        truth[path.stem] = (path, annotations_to_labels(by_image.get(entry["id"], []), height, width))
    if not truth:
        raise CommandError(f"{gt.name} lists no images")
    return truth


def simulate_review(
    gt: Path,
    images: Path,
    work: Path,
    learn: bool,
    every: int,
    steps: int | None = None,
    on_image: Any = None,
) -> dict:
    """Review the dataset in dock order with the simulated annotator; the per-image costs and the rounds.

    Returns ``{"images", "actions", "hand_drawn", "models", "rounds", "round_seconds"}``, lists in
    review order (``on_image`` is called with each image's row as it is done).
    """
    from napari_livecell.core.analysis.annotator import annotate
    from napari_livecell.core.analysis.assist import CellAssistant
    from napari_livecell.core.images import read_image
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.training.learning import (
        LearningLog,
        describe_model,
        round_due,
        run_round,
        to_resegment,
    )
    from napari_livecell.io.review import ReviewDataset, resegment_unopened

    truth = truth_by_image(gt, images)
    folder = work / "images"
    folder.mkdir(parents=True)
    for path, _ in truth.values():
        shutil.copyfile(path, folder / path.name)
    dataset = ReviewDataset.open(folder)
    log = LearningLog(dataset.index)
    settings = PredictSettings()
    for _ in resegment_unopened(dataset, list(truth), None, settings):
        pass
    recipes: dict[str, Any] = {}
    result: dict = {"images": [], "actions": [], "hand_drawn": [], "models": [], "rounds": []}
    while True:
        waiting = [name for name in dataset.queue() if dataset.index.entry(name).state != "done"]
        if not waiting:
            break
        name = waiting[0]
        dataset.set_state(name, "in progress")  # opened: never segmented again from here on
        label = log.segmented_with().get(name, "")
        if label not in recipes:  # the CPU export (as the Proofread dock runs it): torch is ~25x slower
            recipes[label] = FrameRecipe.plan(load_model(log.weights(label), "cpu", "auto"), settings)
        cells = next(layer for layer in dataset.cell_layers(name) if layer[2] == "labels")
        image = read_image(truth[name][0])
        cost = annotate(cells[0], truth[name][1], CellAssistant(image, recipes[label]))
        dataset.save_cells(name, cost.final, {})
        dataset.set_state(name, "done")
        row = {"image": name, "actions": cost.actions, "hand_drawn": cost.hand_drawn, "model": label}
        for key, value in (("images", name), ("actions", cost.actions), ("hand_drawn", cost.hand_drawn)):
            result[key].append(value)
        result["models"].append(describe_model(label))
        if on_image is not None:
            on_image({**row, "by_kind": cost.by_kind, "model": describe_model(label)})
        if learn and round_due(dataset.index, every):
            learned = run_round(dataset.index, steps=steps)
            result["rounds"].append(
                {
                    key: None if value != value else value for key, value in asdict(learned).items()
                }  # nan: null
            )
            if learned.accepted:
                weights = log.weights(learned.model)
                for _ in resegment_unopened(dataset, to_resegment(dataset.index), weights, settings):
                    pass
    dataset.index.close()
    return result


def run(args: argparse.Namespace) -> int:
    """Replay the review; print each image's actions and model (or one JSON object)."""
    from napari_livecell.core.training.learning import LEARN_EVERY

    gt, images = Path(args.gt), Path(args.images)
    if not gt.is_file():
        raise CommandError(f"--gt {gt}: no such file")
    if not images.is_dir():
        raise CommandError(f"--images {images}: no such folder")
    if args.learn == "off" and args.every is not None:
        raise CommandError("--every needs --learn on")
    every = args.every or LEARN_EVERY

    def say(row: dict) -> None:
        if args.json:
            return
        kinds = ", ".join(f"{kind} {count}" for kind, count in row["by_kind"].items() if count)
        print(
            f"{row['image']}: {row['actions']} action(s) ({kinds or 'none'}), "
            f"{row['hand_drawn']} drawn by hand; segmented with {row['model']}",
            flush=True,
        )

    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="review-sim-")) if temporary else Path(args.work)
    if not temporary and work.exists() and any(work.iterdir()):
        raise CommandError(f"--work {work} is not empty")
    try:
        result = simulate_review(gt, images, work, args.learn == "on", every, args.steps, say)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return 0
    for learned in result["rounds"]:
        verdict = "kept" if learned["accepted"] else "not better"
        before, after = (
            float("nan") if v is None else v for v in (learned["ap50_before"], learned["ap50_after"])
        )
        print(
            f"round {learned['number']}: {len(learned['images'])} image(s), held-out AP50 "
            f"{before:.2f} -> {after:.2f} ({verdict}, {learned['seconds']:.0f} s)"
        )
    actions = result["actions"]
    print(f"{sum(actions)} actions over {len(actions)} images ({sum(actions) / len(actions):.1f} per image)")
    return 0
