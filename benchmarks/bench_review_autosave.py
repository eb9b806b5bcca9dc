"""Autosave of a review dataset: one edit saved, with 100 images x ~500 cells in the dataset.

Run: ``python benchmarks/bench_review_autosave.py [--images 100] [--cells 500] [--repeats 10]``.
Goal (issue 17): < 0.2 s per edit, because an edit rewrites one image's cells
file and the small index, not the dataset.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import synthesize_image
    from napari_livecell.io.review import ReviewDataset
    from napari_livecell.layers import result_layer_data

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "plate"
        folder.mkdir()
        frames = [synthesize_image(seed=seed, n_cells=args.cells) for seed in range(4)]
        for index in range(args.images):
            tifffile.imwrite(folder / f"image{index:03d}.tif", frames[index % 4].image)
        dataset = ReviewDataset.open(folder)
        started = time.perf_counter()
        for index in range(args.images):
            dataset.save_prediction(f"image{index:03d}", Segmentation.from_labels(frames[index % 4].labels))
        setup = time.perf_counter() - started
        (labels, kwargs, _), _ = result_layer_data(
            Segmentation.from_labels(frames[0].labels), f"image{args.images // 2:03d}"
        )
        kwargs["metadata"]["napari_livecell"]["baseline"] = labels.copy()
        times = []
        for repeat in range(args.repeats):
            labels[labels == repeat + 1] = 0  # an edit: one cell deleted
            started = time.perf_counter()
            dataset.save_cells(f"image{args.images // 2:03d}", labels, kwargs)
            times.append(time.perf_counter() - started)
        cells = int(np.unique(labels).size - 1)
        print(
            f"{args.images} images x ~{cells} cells (dataset written in {setup:.1f} s): "
            f"one edit saved in median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) over {args.repeats} edits"
        )


if __name__ == "__main__":
    main()
