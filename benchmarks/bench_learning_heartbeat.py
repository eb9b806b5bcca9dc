"""GUI heartbeat while the Review dataset dock runs a learning round and segments unopened images again.

Run under a display: ``xvfb-run -a python benchmarks/bench_learning_heartbeat.py [--steps 6]``.
Eight 256 x 256 frames of the ``bright`` look; four corrected (their truth)
and marked done, the fifth opened and marked done in the dock, which starts a
round ("learn as I go", every 4). A 10 ms QTimer beats on the GUI thread
from that click until the round and the re-segmentation are over; meanwhile
the person keeps stepping through images (one step every 2 s). Goal: no gap >= 0.2 s.
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
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps of the round")
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import synthesize_image
    from napari_livecell.io.review import ReviewDataset

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "plate"
        folder.mkdir()
        truth = {}
        for number in range(8):
            sample = synthesize_image(seed=700 + number, n_cells=25, shape=(256, 256), look="bright")
            tifffile.imwrite(folder / f"well{number}.tif", sample.image)
            truth[f"well{number}"] = sample.labels
        dataset = ReviewDataset.open(folder)
        for name, labels in truth.items():
            dataset.save_prediction(name, Segmentation.from_labels(np.where(labels % 3 == 0, 0, labels)))
        for name in list(truth)[:3]:
            dataset.save_cells(name, truth[name], {})
            dataset.set_state(name, "done")
        dataset.index.close()
        app = QApplication.instance() or QApplication([])
        viewer = napari.Viewer(show=True)
        _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
        widget.open(str(folder))
        panel = widget.learning
        panel.steps = args.steps
        panel.every.value = 4
        panel.learn.value = True
        settle(app, 1.0)
        beats: list[float] = []
        timer = QTimer()
        timer.timeout.connect(lambda: beats.append(time.perf_counter()))
        timer.start(10)
        clicked = time.perf_counter()
        widget.mark_done()
        next_step = clicked + 2.0
        while panel.busy:
            app.processEvents()
            if time.perf_counter() > next_step:  # the person goes on reviewing
                widget.step(1)
                next_step = time.perf_counter() + 2.0
            time.sleep(0.001)
        ended = time.perf_counter()
        settle(app, 0.3)
        timer.stop()
        learned = panel.last_round
        viewer.close()
    times = np.asarray([clicked, *beats])
    gaps = np.diff(times)
    worst = np.argsort(gaps)[::-1][:3]
    print(
        "longest gaps (s after the click: s):",
        ", ".join(f"{times[i] - clicked:.2f}: {gaps[i]:.3f}" for i in worst),
    )
    print(f"round and re-segmentation in {ended - clicked:.1f} s; round: {learned}")
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
