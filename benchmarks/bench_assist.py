"""The model's help in proofreading: latency of each key, and how many missed cells one point recovers.

Run: ``python benchmarks/bench_assist.py [--runtime auto|torch|openvino] [--look skbr3|bright]
[--repeats 15]``. Latency: a fresh :class:`CellAssistant` for each point (no candidates cached,
as for the first key at a place) on a 704 x 520 frame of ~120 cells, median of ``--repeats``.
Recovery: held-out synthetic frames segmented at the default confidence and at 0.7; for each
true cell the run left mostly unlabelled, one ``add_cell_at`` at its most interior unlabelled
pixel; recovered when the added cell's IoU with the true cell is >= 0.7.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage as ndi

from napari_livecell.core.analysis.assist import CellAssistant
from napari_livecell.core.inference.predict import DEFAULT_CONF, PredictSettings
from napari_livecell.core.inference.recipe import FrameRecipe
from napari_livecell.core.models.model import load_model
from napari_livecell.core.training.synthetic import synthesize_image


def latency(recipe: FrameRecipe, look: str, repeats: int) -> dict[str, float]:
    """Median seconds of each action on a fresh assistant (first key at a place)."""
    truth = synthesize_image(seed=777, n_cells=120, look=look)
    labels = recipe.segment(truth.image).segmentation.labels.astype(np.int32)
    rng = np.random.default_rng(0)
    empty = np.argwhere(labels == 0)
    cells = np.argwhere(labels > 0)
    times: dict[str, list[float]] = {"add": [], "cycle": [], "box": []}
    for _ in range(repeats):
        for action, points in (("add", empty), ("cycle", cells)):
            point = tuple(points[rng.integers(len(points))])
            assistant = CellAssistant(truth.image, recipe)
            start = time.perf_counter()
            if action == "add":
                assistant.add_cell_at(labels, point, int(labels.max()) + 1)
            else:
                assistant.next_candidate_at(labels, point, int(labels.max()) + 1)
            times[action].append(time.perf_counter() - start)
        row, col = rng.integers(0, 520 - 120), rng.integers(0, 704 - 120)
        assistant = CellAssistant(truth.image, recipe)
        start = time.perf_counter()
        assistant.resegment_box(labels, (row, col, row + 120, col + 120), int(labels.max()) + 1)
        times["box"].append(time.perf_counter() - start)
    return {action: statistics.median(values) for action, values in times.items()}


def recovery(model, look: str, conf: float, seeds: range) -> tuple[int, int]:
    """(missed cells, recovered by one add_cell_at) over held-out frames."""
    recipe = FrameRecipe.plan(model, PredictSettings(conf=conf))
    missed = recovered = 0
    for seed in seeds:
        truth = synthesize_image(seed=seed, n_cells=50, shape=(256, 320), look=look)
        labels = recipe.segment(truth.image).segmentation.labels.astype(np.int32)
        assistant = CellAssistant(truth.image, recipe)
        for cell in range(1, int(truth.labels.max()) + 1):
            mask = truth.labels == cell
            if (labels[mask] == 0).mean() < 0.5:
                continue
            depth = ndi.distance_transform_edt(mask & (labels == 0))
            point = np.unravel_index(depth.argmax(), depth.shape)
            missed += 1
            change = assistant.add_cell_at(labels, point, int(labels.max()) + 1)
            if change is None:
                continue
            added = np.zeros(mask.shape, bool)
            added[change.edit.rows, change.edit.cols] = True
            recovered += np.count_nonzero(added & mask) / np.count_nonzero(added | mask) >= 0.7
    return missed, recovered


def main() -> None:
    """Print the latency medians and the recovery fractions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--look", default="skbr3")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    model = load_model(device="cpu", runtime=args.runtime)
    recipe = FrameRecipe.plan(model)
    CellAssistant(np.zeros((64, 64), np.uint8) + 100, recipe).add_cell_at(
        np.zeros((64, 64), np.int32), (32, 32), 1
    )
    medians = latency(recipe, args.look, args.repeats)
    print(f"model {model.name}, runtime {model.runtime}, look {args.look}")
    for action, seconds in medians.items():
        print(f"  {action:5s} median {seconds * 1000:6.0f} ms over {args.repeats}")
    for conf in (DEFAULT_CONF, 0.7):
        missed, recovered = recovery(model, args.look, conf, range(900, 900 + args.frames))
        print(
            f"  conf {conf}: {recovered} of {missed} missed cells recovered "
            f"({recovered / max(missed, 1):.0%})"
        )


if __name__ == "__main__":
    main()
