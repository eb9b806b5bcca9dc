"""Writing COCO json: 100,000 cells (goal: under 10 s), and cells/s against frame size.

Run: ``python benchmarks/bench_coco.py [--cells-per-frame 500] [--frames 200]``, and
``python benchmarks/bench_coco.py --frame-sizes 1000 4000 8000``: crops of one synthetic
mosaic (crowded frames side by side, a quarter of the cells with a hole, written as RLE);
the json time per cell must not grow with the frame.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_livecell.core.training.synthetic import synthesize_image
from napari_livecell.io.write import write_labels_coco


def mosaic(size: int, seed: int = 0) -> np.ndarray:
    """A ``size`` x ``size`` label image of synthetic 704 x 520 frames side by side.

    Every fourth cell gets a one-pixel hole at its centre, so that its json is RLE.
    """
    from scipy import ndimage as ndi

    tiles = [synthesize_image(seed=seed + i, n_cells=500).labels for i in range(4)]
    tile_height, tile_width = tiles[0].shape
    labels = np.zeros((size, size), np.int32)
    offset, index = 0, 0
    for top in range(0, size, tile_height):
        for left in range(0, size, tile_width):
            tile = tiles[index % 4][: size - top, : size - left]
            index += 1
            window = labels[top : top + tile.shape[0], left : left + tile.shape[1]]
            window[:] = np.where(tile > 0, tile + offset, 0)
            offset += int(tile.max())
    holed = np.arange(1, offset + 1, 4)
    centres = ndi.center_of_mass(labels > 0, labels, holed)
    for label, (row, col) in zip(holed, centres, strict=True):
        if not np.isfinite(row):  # a label cropped away at the mosaic's edge
            continue
        row, col = round(row), round(col)
        around = labels[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
        if min(row, col) > 0 and (around == label).all():
            labels[row, col] = 0
    return labels


def frame_sizes(sizes: list[int]) -> None:
    """Print COCO json cells/s for crops of one mosaic (largest first in memory)."""
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.segmentation import Segmentation

    full = mosaic(max(sizes))
    build_coco([CocoImage(1, "warm-up.tif", Segmentation.from_labels(full[:200, :200]))])  # imports
    for size in sizes:
        segmentation = Segmentation.from_labels(full[:size, :size])
        started = time.perf_counter()
        coco = build_coco([CocoImage(1, "mosaic.tif", segmentation)], with_scores=True)
        seconds = time.perf_counter() - started
        n_rle = sum(isinstance(a["segmentation"], dict) for a in coco["annotations"])
        print(
            f"{size} x {size}: cells {segmentation.n_cells:,} ({n_rle:,} RLE), "
            f"seconds {seconds:.2f}, cells/s {segmentation.n_cells / seconds:,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells-per-frame", type=int, default=500)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--frame-sizes", type=int, nargs="+", default=None)
    args = parser.parse_args()
    if args.frame_sizes:
        frame_sizes(args.frame_sizes)
        return
    # a few distinct crowded frames, repeated: generation is not what is measured
    distinct = [synthesize_image(seed=i, n_cells=args.cells_per_frame).labels for i in range(4)]
    stack = np.stack([distinct[i % 4] for i in range(args.frames)])
    n_cells = sum(len(np.unique(frame)) - 1 for frame in stack)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.json"
        started = time.perf_counter()
        write_labels_coco(str(path), stack, {"name": "bench"})
        seconds = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
    print(
        f"cells: {n_cells}, frames: {args.frames}, seconds: {seconds:.2f}, "
        f"cells/s: {n_cells / seconds:,.0f}, json: {size_mb:.1f} MB"
    )


if __name__ == "__main__":
    main()
