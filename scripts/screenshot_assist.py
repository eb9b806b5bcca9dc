"""Screenshot for the README: a missed cell added by pointing at it, in Proofread cells.

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot_assist.py [docs/assist.png]

Opens the synthetic sample, segments it with the shipped model at confidence 0.7 (so
that cells are missed), docks Proofread cells and adds, by one point, the largest true
cell the run left unlabelled (as Shift+C over it would): the new cell's outline turns
cyan and the status line gives its score.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def settle(seconds: float = 0.4) -> None:
    """Let Qt paint for a while."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def main(out: str = "docs/assist.png") -> None:
    """Segment the sample, add a missed cell by pointing and save the window to ``out``."""
    import napari
    from qtpy.QtWidgets import QApplication
    from scipy import ndimage as ndi

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 800)  # a laptop screen, as in the README
    viewer.open_sample("napari-livecell", "livecell_image")
    truth_layer = next(layer for layer in viewer.layers if "ground truth" in layer.name)
    truth = np.asarray(truth_layer.data)
    viewer.layers.remove(truth_layer)
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    segment._conf.value = 0.7
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
    labels = np.asarray(cells.data)
    areas = np.bincount(truth.ravel())
    new = None
    for cell in np.argsort(areas)[::-1]:
        mask = truth == cell
        if not cell or (labels[mask] > 0).any():
            continue
        depth = ndi.distance_transform_edt(mask)
        point = np.unravel_index(depth.argmax(), depth.shape)
        new = proofread.add_cell_at(point)
        if new is not None:
            break
    follower = proofread.follower
    follower.highlighted = new
    follower.restyle_outlines()
    rows, cols = np.nonzero(np.asarray(cells.data) == new)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = (float(rows.mean()), float(cols.mean()))
    camera.zoom = 4.0
    viewer.layers.selection.active = cells
    settle()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False, flash=False)
    print(f"wrote {out}: {proofread._status.value}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
