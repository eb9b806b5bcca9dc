"""Writing 100,000 cells to COCO json (goal: under 10 s on a 2-core machine).

Run: ``python benchmarks/bench_coco.py [--cells-per-frame 500] [--frames 200]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_livecell._io import write_labels_coco
from napari_livecell.core.synthetic import synthesize_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells-per-frame", type=int, default=500)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
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
