"""Fine-tuning on corrections of a cell type the shipped model has never seen.

The "bright" synthetic look (large, flat, elongated cells brighter than the
background) stands for a new cell type. Twenty corrected images of it (exact
synthetic labels play the corrected masks) fine-tune the shipped model through
the same ``napari-livecell train`` command a user runs; held-out images of the
same type are scored before and after with the LIVECell protocol.

Run: ``python benchmarks/finetune_new_cell_type.py --work /tmp/new-type [--epochs 30]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from napari_livecell.core.analysis.evaluate import evaluate, predict_dataset
from napari_livecell.core.inference.predict import PredictSettings
from napari_livecell.core.models.model import load_model
from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "napari_livecell.cli", *args], check=True)


def _score(model_path: str | None, gt: Path, images: Path, conf: float) -> dict:
    model = load_model(model_path, device="cpu")
    predictions = predict_dataset(gt, images, model, PredictSettings(conf=conf))
    return evaluate(gt, predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True, help="scratch folder")
    parser.add_argument("--train-images", type=int, default=20)
    parser.add_argument("--heldout-images", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    work = Path(args.work)
    train_json = write_synthetic_dataset(work / "train", args.train_images, seed=11, look="bright")
    heldout_json = write_synthetic_dataset(work / "heldout", args.heldout_images, seed=12, look="bright")
    heldout_images = heldout_json.parent / "images"

    started = time.perf_counter()
    _cli(
        "train",
        "--data", str(train_json),
        "--images", str(train_json.parent / "images"),
        "--model", "default",
        "--crop", "320",
        "--epochs", str(args.epochs),
        "--out", str(work / "finetuned"),
    )  # fmt: skip
    train_minutes = (time.perf_counter() - started) / 60

    rows = []
    for conf in (0.001, 0.4):
        before = _score(None, heldout_json, heldout_images, conf)
        after = _score(str(work / "finetuned" / "best.pt"), heldout_json, heldout_images, conf)
        rows.append({"conf": conf, "before": before, "after": after})
    summary = {"epochs": args.epochs, "train_minutes": round(train_minutes, 1), "rows": rows}
    print(json.dumps(summary, indent=1))
    print("\n| conf | model | mask mAP50-95 | mask AP50 | box mAP50-95 |")
    print("|---|---|---|---|---|")
    for row in rows:
        for name in ("before", "after"):
            segm, bbox = row[name]["segm"], row[name]["bbox"]
            label = "shipped default" if name == "before" else f"fine-tuned ({args.epochs} epochs)"
            print(f"| {row['conf']} | {label} | {segm['AP']:.3f} | {segm['AP50']:.3f} | {bbox['AP']:.3f} |")
    print(f"\ntraining took {train_minutes:.1f} min on this machine")


if __name__ == "__main__":
    main()
