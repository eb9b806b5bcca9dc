"""What a corrected image costs, with and without the model's help (issue 32's measurement).

Held-out synthetic frames (seeds the shipped model never saw: it was trained on
seed 1 and scored on seed 999) of two looks: ``skbr3`` (phase contrast, what the
model knows) and ``bright`` (``synth --look bright``, a cell type it has never
seen). Each frame is segmented by the shipped default model at the default
confidence and at 0.7 (many misses), then corrected by the simulated annotator
(:func:`napari_livecell.core.analysis.annotator.annotate`) brush-only and with a
:class:`~napari_livecell.core.analysis.assist.CellAssistant`. Per frame: true
cells, misses (no predicted cell at IoU >= 0.5), actions, cells drawn by hand and
the final mask AP50; and the share of missed cells that one ``add_cell_at`` at an
interior point brings back at IoU >= 0.7 (:func:`.pointing_recovery`).

Run: ``python benchmarks/bench_annotator.py [--n 3] [--cells 80] [--no-assist]``
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

import numpy as np

from napari_livecell.core.analysis.annotator import annotate, mask_ap50, missed_cells, pointing_recovery
from napari_livecell.core.inference.predict import DEFAULT_CONF, PredictSettings
from napari_livecell.core.inference.recipe import FrameRecipe
from napari_livecell.core.models.model import load_model
from napari_livecell.core.training.synthetic import synthesize_image

FIRST_SEED = 32_000  # far from the training (1), held-out (999) and fine-tuning (11, 12) seeds


def _assistant_class():
    try:
        from napari_livecell.core.analysis.assist import CellAssistant
    except ImportError:
        return None
    return CellAssistant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3, help="frames per look")
    parser.add_argument("--cells", type=int, default=80, help="cells placed per frame")
    parser.add_argument("--looks", nargs="+", default=["skbr3", "bright"])
    parser.add_argument("--conf", nargs="+", type=float, default=[DEFAULT_CONF, 0.7])
    parser.add_argument("--no-assist", action="store_true", help="brush-only correction alone")
    args = parser.parse_args()

    assistant_class = None if args.no_assist else _assistant_class()
    model = load_model(device="cpu")
    rows = []
    totals: dict[tuple[str, float], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    started = time.perf_counter()
    for look in args.looks:
        for index in range(args.n):
            seed = FIRST_SEED + index
            frame = synthesize_image(seed=seed, n_cells=args.cells, look=look)
            truth = frame.labels
            for conf in args.conf:
                recipe = FrameRecipe.plan(model, PredictSettings(conf=conf))
                segmentation = recipe.segment(frame.image).segmentation
                prediction = segmentation.labels
                brush = annotate(prediction, truth)
                total = totals[look, conf]
                row = {
                    "look": look,
                    "seed": seed,
                    "conf": conf,
                    "cells": int(truth.max()),
                    "missed": len(missed_cells(prediction, truth)),
                    "ap50": mask_ap50(prediction, truth),
                    "brush": brush,
                }
                if assistant_class is not None:
                    assistant = assistant_class(frame.image, recipe, segmentation.areas)
                    row["recovered"], row["pointable"], _ = pointing_recovery(prediction, truth, assistant)
                    # the same assistant: add_cell_at keeps no state but the window candidates it caches
                    row["assisted"] = annotate(prediction, truth, assistant)
                    total["recovered"] += row["recovered"]
                    total["pointable"] += row["pointable"]
                    total["assisted_hand"] += row["assisted"].hand_drawn
                    total["assisted_actions"] += row["assisted"].actions
                total["missed"] += row["missed"]
                total["brush_hand"] += brush.hand_drawn
                total["brush_actions"] += brush.actions
                total["frames"] += 1
                rows.append(row)
                print(_row(row), flush=True)
    elapsed = time.perf_counter() - started
    print(f"\n{len(rows)} corrections in {elapsed:.0f} s on {platform.machine()} ({platform.processor()})")
    print(_header(assistant_class is not None))
    for row in rows:
        print(_row(row))
    print(
        "\n| look | conf | missed (empty place) | recovered by one add_cell_at: of missed, of empty "
        "| hand-drawn / frame: brush, assisted |"
    )
    print("|---|---|---|---|---|")
    for (look, conf), total in totals.items():
        frames = total["frames"]
        recovered = (
            f"{total['recovered']:.0f}: {total['recovered'] / max(total['missed'], 1):.0%}, "
            f"{total['recovered'] / max(total['pointable'], 1):.0%}"
            if assistant_class is not None
            else "-"
        )
        hand = f"{total['brush_hand'] / frames:.1f}"
        if assistant_class is not None:
            hand += f", {total['assisted_hand'] / frames:.1f}"
            ratio = total["brush_hand"] / total["assisted_hand"] if total["assisted_hand"] else np.inf
            hand += f" ({ratio:.1f}x fewer)"
        missed = f"{total['missed']:.0f} ({total['pointable']:.0f})"
        print(f"| {look} | {conf} | {missed} | {recovered} | {hand} |")


def _header(assisted: bool) -> str:
    columns = "| look | seed | conf | cells | missed | model AP50 | brush: actions, hand-drawn, AP50 |"
    if assisted:
        columns += " recovered by pointing | assisted: actions (add/cycle/box), hand-drawn, AP50 |"
    return columns + "\n" + "|---" * (columns.count("|") - 1) + "|"


def _row(row: dict) -> str:
    brush = row["brush"]
    text = (
        f"| {row['look']} | {row['seed']} | {row['conf']} | {row['cells']} | {row['missed']} "
        f"| {row['ap50']:.3f} | {brush.actions}, {brush.hand_drawn}, {brush.ap50:.3f} |"
    )
    if "assisted" in row:
        cost = row["assisted"]
        kinds = cost.by_kind
        text += (
            f" {row['recovered']} ({row['pointable']} empty) | {cost.actions} "
            f"({kinds['add']}/{kinds['cycle']}/{kinds['box']}), {cost.hand_drawn}, {cost.ap50:.3f} |"
        )
    return text


if __name__ == "__main__":
    main()
