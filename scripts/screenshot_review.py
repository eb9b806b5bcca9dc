"""Screenshot for the README: "next cell to review" on a segmented time-lapse, in Proofread cells.

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot_review.py [docs/review.png]

Opens the synthetic time-lapse sample, segments it with the shipped model in
Segment cells, docks Proofread cells, accepts the first two cells offered and
shows the third: the time slider moves to its frame, the view zooms to it and
its outline turns cyan.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def settle(seconds: float = 0.4) -> None:
    """Let Qt paint for a while."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def main(out: str = "docs/review.png") -> None:
    """Segment the sample time-lapse, step to a cell to review and save the window to ``out``."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 800)  # a laptop screen, as in the README
    viewer.open_sample("napari-livecell", "livecell_timelapse")
    for layer in list(viewer.layers):
        if "ground truth" in layer.name:
            viewer.layers.remove(layer)
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    segment.run()
    deadline = time.monotonic() + 300
    while segment.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    cells = next(layer for layer in viewer.layers if layer.name.endswith(" cells"))
    proofread._layer.value = cells
    cells.opacity = 0.35
    viewer.window.resize(1280, 800)  # docking can widen the window
    for _ in range(2):
        proofread.accept(proofread.next_to_review())
    cell = proofread.next_to_review()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.zoom /= 3  # the cell in its neighbours: a small cell fills a laptop-sized canvas
    viewer.layers.selection.active = cells
    settle()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False, flash=False)
    print(f"wrote {out}: reviewing cell {cell}; {proofread._status.value}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
