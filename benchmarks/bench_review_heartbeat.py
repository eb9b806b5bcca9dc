"""GUI heartbeat while the Review dataset dock segments a folder of images in the background.

Run under a display: ``xvfb-run -a python benchmarks/bench_review_heartbeat.py [--images 100]``.
A 10 ms QTimer beats on the GUI thread from the *Segment all* click until the
last image is saved; the longest gaps are what a user would feel as a freeze
(goal, issue 17: < 0.2 s throughout). The viewer is shown, so paints count,
and the first image is open, so its cells appear (a Labels and a Shapes layer
inserted) when the worker reaches it, as for a user waiting on it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--cells", type=int, default=150, help="cells per 704 x 520 image")
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.training.synthetic import synthesize_image

    load_model(device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "plate"
        folder.mkdir()
        frames = [synthesize_image(seed=seed, n_cells=args.cells).image for seed in range(5)]
        for index in range(args.images):
            tifffile.imwrite(folder / f"well{index:03d}.tif", frames[index % len(frames)])
        app = QApplication.instance() or QApplication([])
        viewer = napari.Viewer(show=True)
        _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
        widget.open(str(folder))
        settle(app, 1.0)
        beats: list[float] = []
        timer = QTimer()
        timer.timeout.connect(lambda: beats.append(time.perf_counter()))
        timer.start(10)
        clicked = time.perf_counter()
        widget.segment_all()
        while widget.busy:
            app.processEvents()
            time.sleep(0.001)
        ended = time.perf_counter()
        settle(app, 0.3)
        timer.stop()
        segmented = sum(entry.segmented for entry in widget.dataset.index.entries)
        viewer.close()
    times = np.asarray([clicked, *beats])
    gaps = np.diff(times)
    worst = np.argsort(gaps)[::-1][:3]
    print(
        "longest gaps (s after the click: s):",
        ", ".join(f"{times[i] - clicked:.2f}: {gaps[i]:.3f}" for i in worst),
    )
    seconds = ended - clicked
    size = f"704 x 520, ~{args.cells} cells"
    print(f"{segmented} of {args.images} images ({size}) segmented in {seconds:.1f} s")
    print(
        f"heartbeat gaps over {len(gaps)} beats: median {np.median(gaps) * 1000:.1f} ms, "
        f"99th percentile {np.percentile(gaps, 99) * 1000:.1f} ms, longest {gaps.max():.3f} s, "
        f"gaps >= 0.2 s: {int((gaps >= 0.2).sum())}"
    )


def settle(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


if __name__ == "__main__":
    main()
