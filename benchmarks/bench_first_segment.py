"""The first Segment cells run in a fresh napari: time from the Run click to the cells on screen.

Each repeat is a fresh process: a shown viewer with the plugin's sample image,
the Segment cells dock opened, then Run clicked and the event loop turned
until the result layers are in (the run's imports, the model's load, numba's
cached kernels and napari's first Labels and Shapes layers all count). With
``--base``, PyTorch, torchvision, Ultralytics and OpenCV are blocked as in a
base install (``tests/core/models/test_base_install.py``'s import hook).

    xvfb-run -a python benchmarks/bench_first_segment.py [--base] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

BLOCK = r"""
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "ultralytics", "cv2"):
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Blocked())
"""

CHILD = r"""
import json, sys, time
import napari
from qtpy.QtWidgets import QApplication

app = QApplication.instance() or QApplication([])
viewer = napari.Viewer(show=True)
viewer.open_sample("napari-livecell", "livecell_image")
_, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
end = time.perf_counter() + 0.5
while time.perf_counter() < end:
    app.processEvents()
name = viewer.layers[0].name
clicked = time.perf_counter()
widget.run()
while widget.busy or f"{name} outlines" not in viewer.layers:
    app.processEvents()
    time.sleep(0.001)
app.processEvents()
shown = time.perf_counter()
cells = int(viewer.layers[f"{name} cells"].data.max())
loaded = sorted(m for m in ("torch", "ultralytics", "cv2") if m in sys.modules)
print(json.dumps({"click_to_cells_s": shown - clicked, "cells": cells, "loaded": loaded}))
viewer.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", action="store_true", help="block PyTorch, Ultralytics and OpenCV")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    code = (BLOCK if args.base else "") + CHILD
    runs = []
    for _ in range(args.repeat):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    times = [run["click_to_cells_s"] for run in runs]
    print(
        f"{'base' if args.base else 'all'}: median {statistics.median(times):.2f} s click to cells "
        f"({', '.join(f'{t:.2f}' for t in times)}), {runs[0]['cells']} cells, loaded {runs[0]['loaded']}"
    )


if __name__ == "__main__":
    main()
