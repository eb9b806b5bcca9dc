"""What a corrected image costs, with and without the model's help (issue 32's measurement).

Held-out synthetic frames (seeds the shipped model never saw: it was trained on
seed 1 and scored on seed 999) of two looks: ``skbr3`` (phase contrast, what the
model knows) and ``bright`` (``synth --look bright``, a cell type it has never
seen). Each frame is segmented by the shipped default model (ONNX Runtime) at the default
confidence and at 0.7 (many misses), then corrected by the simulated annotator
(:func:`napari_livecell.core.analysis.annotator.annotate`) brush-only and with a
:class:`~napari_livecell.core.analysis.assist.CellAssistant`. Per frame: true
cells, misses (no predicted cell at IoU >= 0.5), actions, cells drawn by hand and
the final mask AP50; and the share of missed cells that one ``add_cell_at`` at an
interior point brings back at IoU >= 0.7 (:func:`.pointing_recovery`).

Run: ``python benchmarks/bench_annotator.py [--n 4] [--cells 150] [--bright-n 2] [--no-assist]``
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

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
    parser.add_argument("--n", type=int, default=4, help="phase contrast (skbr3) frames")
    parser.add_argument("--cells", type=int, default=150, help="cells placed per phase contrast frame")
    # the model finds almost none of the large bright cells: each is a window pass or three, so fewer
    parser.add_argument("--bright-n", type=int, default=2, help="frames of the bright look")
    parser.add_argument("--bright-cells", type=int, default=30, help="cells placed per bright frame")
    parser.add_argument("--conf", nargs="+", type=float, default=[DEFAULT_CONF, 0.7])
    parser.add_argument("--no-assist", action="store_true", help="brush-only correction alone")
    args = parser.parse_args()

    assistant_class = None if args.no_assist else _assistant_class()
    model = load_model(device="cpu", runtime="auto")  # ONNX Runtime, the Segment dock's default
    rows = []
    started = time.perf_counter()
    plan = [("skbr3", args.n, args.cells), ("bright", args.bright_n, args.bright_cells)]
    for look, n_frames, n_cells in plan:
        for index in range(n_frames):
            seed = FIRST_SEED + index
            frame = synthesize_image(seed=seed, n_cells=n_cells, look=look)
            truth = frame.labels
            for conf in args.conf:
                recipe = FrameRecipe.plan(model, PredictSettings(conf=conf))
                segmentation = recipe.segment(frame.image).segmentation
                prediction = segmentation.labels
                brush = annotate(prediction, truth)
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
                rows.append(row)
                print(_row(row), flush=True)
    elapsed = time.perf_counter() - started
    print(f"\n{len(rows)} corrections in {elapsed:.0f} s on {platform.machine()} ({platform.processor()})")
    print(_header(assistant_class is not None))
    for row in rows:
        print(_row(row))
    print(_summary(rows, assistant_class is not None))


def _summary(rows: list[dict], assisted: bool) -> str:
    """One line per look and confidence: totals, and costs per frame."""
    lines = [
        "| look | conf | frames, true cells | missed (empty place) | recovered by one add_cell_at: "
        "of missed, of empty | actions / frame: brush, assisted | hand-drawn / frame: brush, assisted "
        "| final AP50 (lowest) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["look"], row["conf"]].append(row)
    for (look, conf), group in groups.items():
        frames = len(group)

        def total(key: str, kind: str | None = None, group: list[dict] = group) -> float:
            return float(sum(getattr(row[key], kind) if kind else row[key] for row in group))

        finals = [row["brush"].ap50 for row in group] + [row["assisted"].ap50 for row in group if assisted]
        missed = f"{total('missed'):.0f}"
        recovered = "-"
        actions = f"{total('brush', 'actions') / frames:.1f}"
        hand = f"{total('brush', 'hand_drawn') / frames:.1f}"
        if assisted:
            missed += f" ({total('pointable'):.0f})"
            recovered = (
                f"{total('recovered'):.0f}: {total('recovered') / max(total('missed'), 1):.0%}, "
                f"{total('recovered') / max(total('pointable'), 1):.0%}"
            )
            actions += f", {total('assisted', 'actions') / frames:.1f}"
            fewer = total("brush", "hand_drawn") / max(total("assisted", "hand_drawn"), 1e-9)
            hand += f", {total('assisted', 'hand_drawn') / frames:.1f} ({fewer:.1f}x fewer)"
        lines.append(
            f"| {look} | {conf} | {frames}, {total('cells'):.0f} | {missed} | {recovered} | {actions} "
            f"| {hand} | {min(finals):.3f} |"
        )
    return "\n".join(lines)


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
