"""Screenshot for the README: a tracked synthetic time-lapse, its Tracks layer and the growth-curve dock.

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot_tracking.py [docs/tracking.png]

Opens the synthetic time-lapse sample (per-frame labels, ids restarting every
frame, as a segmentation gives them), tracks them with the Track cells widget,
goes to the last frame and saves the whole window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(out: str = "docs/tracking.png") -> None:
    """Track the sample in the widget and save the window to ``out``."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_livecell.core.training.synthetic import synthesize_timelapse

    lapse = synthesize_timelapse(seed=2021, n_frames=12, n_cells=90)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 800)  # a laptop screen, as in the README
    viewer.add_image(lapse.image, name="time-lapse")
    cells = viewer.add_labels(lapse.labels, name="cells", opacity=0.45)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Track cells")
    widget._layer.value = cells
    viewer.window.resize(1280, 800)  # docking can widen the window
    widget.run()
    deadline = time.monotonic() + 120
    while widget.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.busy:
        raise SystemExit("tracking did not finish in 120 s")
    viewer.dims.set_point(0, lapse.labels.shape[0] - 1)
    viewer.layers.selection.active = viewer.layers["cells tracks"]
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    viewer.reset_view()
    QApplication.processEvents()
    widget.next_review()
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.zoom *= 1.8  # close enough to see the tracks' tails
    widget.canvas.draw()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False, flash=False)
    print(f"wrote {out}: {widget._status.value}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])
