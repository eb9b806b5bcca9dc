"""Fine-tuning on a handful of corrected frames: does the model learn, and how fast?

Seven corrected 256 x 256 frames (about 20 cells each) of a look the shipped
model has never seen (the synthetic ``bright`` look: large, flat cells brighter
than the background; exact synthetic labels play the corrected masks) fine-tune
the shipped model through the same ``napari-livecell train`` command a user
runs, with no epochs given: the plan chooses them by optimizer steps
(core/training/train.py ``plan_finetune``). Eight other frames of the look are scored
before and after (mask AP50, pycocotools, conf 0.4). The goal (issue 16 item 3):
held-out mask AP50 from near 0 to >= 0.6 within 10 minutes on a 2-core CPU.

Run: ``python benchmarks/finetune_small_data.py --work /tmp/small-ft [--steps 300] [-- extra train args]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from napari_livecell.core.analysis.evaluate import evaluate, predict_dataset
from napari_livecell.core.inference.predict import PredictSettings
from napari_livecell.core.models.model import load_model

SHAPE = (256, 256)
CELLS_PER_FRAME = 20


def write_frames(out: Path, n_frames: int, seed: int, look: str) -> Path:
    """Write ``n_frames`` synthetic frames of ``look`` as images + a COCO json; return the json."""
    import tifffile

    from napari_livecell.core.formats.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import synthesize_image

    (out / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n_frames)):
        sample = synthesize_image(
            np.random.default_rng(child), n_cells=CELLS_PER_FRAME, shape=SHAPE, look=look
        )
        name = f"{look}_{index:02d}.tif"
        tifffile.imwrite(out / "images" / name, sample.image)
        entries.append(CocoImage(index + 1, name, Segmentation.from_labels(sample.labels)))
    return write_coco(out / "annotations.json", build_coco(entries))


def heldout_scores(weights: str | None, truth: Path, conf: float) -> dict:
    """Mask AP50 and AP (mAP50-95) of a model on the held-out frames (LIVECell protocol)."""
    model = load_model(weights, device="cpu")
    predictions = predict_dataset(truth, truth.parent / "images", model, PredictSettings(conf=conf))
    segm = evaluate(truth, predictions)["segm"]
    return {"AP50": round(segm["AP50"], 3), "AP": round(segm["AP"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True, help="scratch folder")
    parser.add_argument("--train-frames", type=int, default=7)
    parser.add_argument("--heldout-frames", type=int, default=8)
    parser.add_argument("--look", default="bright", help="synthetic look the shipped model has not seen")
    parser.add_argument("--conf", type=float, default=0.4)
    parser.add_argument(
        "--steps", type=int, default=None, help="target optimizer steps (default: the plan's)"
    )
    parser.add_argument("train_args", nargs="*", help="extra arguments for napari-livecell train (after --)")
    args = parser.parse_args()
    work = Path(args.work)
    train_json = write_frames(work / "train", args.train_frames, seed=21, look=args.look)
    heldout_json = write_frames(work / "heldout", args.heldout_frames, seed=22, look=args.look)
    out = work / "finetuned"
    command = [
        sys.executable, "-m", "napari_livecell.cli", "train",
        "--data", str(train_json), "--images", str(train_json.parent / "images"),
        "--model", "default", "--imgsz", "256", "--crop", "0", "--workers", "0",
        "--out", str(out),
        *(["--steps", str(args.steps)] if args.steps else []),
        *args.train_args,
    ]  # fmt: skip
    started = time.perf_counter()
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    # CPU seconds of the train command: on a shared machine, wall time measures the neighbours too
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    notes = [line for line in finished.stderr.splitlines() if line.startswith(("plan:", "warning:"))]

    before = heldout_scores(None, heldout_json, args.conf)
    after = heldout_scores(str(out / "best.pt"), heldout_json, args.conf)
    result = {
        "look": args.look,
        "train_frames": args.train_frames,
        "heldout_frames": args.heldout_frames,
        "plan": summary.get("plan"),
        "train_wall_s": round(wall),
        "train_cpu_s": round(cpu),
        "heldout_mask": {"shipped": before, "fine-tuned": after},
        "validation_split": summary.get("before_after"),
        "notes": notes,
    }
    print(json.dumps(result, indent=1))
    print(
        f"\nheld-out mask AP50 (conf {args.conf}, {args.heldout_frames} frames): "
        f"shipped {before['AP50']:.3f} -> fine-tuned {after['AP50']:.3f} "
        f"(mask AP {before['AP']:.3f} -> {after['AP']:.3f}); "
        f"{summary['plan']['steps']} optimizer steps "
        f"({summary['plan']['epochs']} epochs), train command {wall / 60:.1f} min wall, "
        f"{cpu / 60:.1f} min CPU (user + system, both cores)"
    )


if __name__ == "__main__":
    main()
