"""Learning while reviewing: actions per image of a simulated review, learning on against off.

A held-out synthetic dataset of a look the shipped model does not know is
reviewed twice in dock order by the simulated annotator
(``napari-livecell review-sim``): learning off, then on (a round every
``--every`` done images). The acceptance compares the mean actions over
images 13-24; the time of each round is printed too.

    python benchmarks/bench_learning.py --look bright --work /tmp/bench-learning
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from napari_livecell.cli.review_sim import simulate_review


def write_dataset(out: Path, look: str, n: int, size: int | None, cells: int | None, seed: int) -> Path:
    """The dataset's COCO json (``size`` None: LIVECell's 704 x 520 frames)."""
    import tifffile

    from napari_livecell.core.formats.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import LIVECELL_SHAPE, synthesize_image

    (out / "images").mkdir(parents=True)
    shape = LIVECELL_SHAPE if size is None else (size, size)
    entries = []
    for number in range(n):
        sample = synthesize_image(seed=seed + number, n_cells=cells, shape=shape, look=look)
        name = f"{look}{number:02d}.tif"
        tifffile.imwrite(out / "images" / name, sample.image)
        segmentation = Segmentation.from_labels(sample.labels)
        entries.append(CocoImage(image_id=number + 1, file_name=name, segmentation=segmentation))
    return write_coco(out / "gt.json", build_coco(entries, class_names={0: "cell"}))


def main() -> None:
    """Run both reviews; print the table row and the JSON of both runs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--look", default="bright", choices=["bright", "fluorescence"])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--size", type=int, default=None, help="square frames (default 704 x 520)")
    parser.add_argument("--cells", type=int, default=None, help="cells per frame (default random)")
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="steps per round (default: the plan)")
    parser.add_argument("--seed", type=int, default=9000, help="held out: the shipped model never saw it")
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    gt = write_dataset(work / "data", args.look, args.n, args.size, args.cells, args.seed)
    runs = {}
    for learn in (False, True):
        started = time.perf_counter()
        name = "on" if learn else "off"
        result = simulate_review(
            gt,
            gt.parent / "images",
            work / f"learn-{name}",
            learn,
            args.every,
            args.steps,
            on_image=lambda row, name=name: print(name, row, flush=True),
        )
        result["seconds"] = round(time.perf_counter() - started, 1)
        runs[name] = result
        print(name, json.dumps(result), flush=True)
    late = slice(12, 24)

    def late_mean(run: dict) -> float:
        actions = run["actions"][late]
        return sum(actions) / max(len(actions), 1)

    off, on = late_mean(runs["off"]), late_mean(runs["on"])
    rounds = runs["on"]["rounds"]
    kept = sum(r["accepted"] for r in rounds)
    per_round = sorted(r["seconds"] for r in rounds)
    median = per_round[len(per_round) // 2] if per_round else float("nan")
    print(
        f"| {args.look} | {args.n} x {args.size or '704 x 520'} | {args.every} | {args.steps or 'plan'} | "
        f"{off:.1f} | {on:.1f} | {on / off if off else float('nan'):.2f} | {len(rounds)} ({kept} kept) | "
        f"{median:.0f} s |"
    )


if __name__ == "__main__":
    main()
