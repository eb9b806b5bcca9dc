"""How long opening each of the plugin's docks blocks napari's GUI thread (target: < 0.3 s each).

Run under a display: ``xvfb-run -a python benchmarks/bench_dock_creation.py``.
Each measurement is a fresh process with a shown 1280 x 800 viewer and the
sample image, so the dock is the first of the plugin opened (its modules'
imports count, as they do for a user); "model loaded" first loads the shipped
model (torch, Ultralytics) as an earlier run would have. The time is
``add_plugin_dock_widget`` plus the event-loop turns until the dock is tabbed
and laid out. ``--repeat`` processes per dock and setting; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

DOCKS = (
    "Segment cells",
    "Proofread cells",
    "Compare to ground truth",
    "Review dataset",
    "Train on corrections",
    "Track cells",
    "Measure cells",
)

CHILD = """
import json, sys, time
import napari
from qtpy.QtWidgets import QApplication
name, model_loaded = sys.argv[1], sys.argv[2] == "1"
viewer = napari.Viewer(show=True)
viewer.window._qt_window.resize(1280, 800)
viewer.open_sample("napari-livecell", "livecell_image")
if model_loaded:
    from napari_livecell.core.inference.predict import import_inference_modules
    from napari_livecell.core.models.model import load_model
    import_inference_modules()
    load_model(device="cpu")
for _ in range(20):
    QApplication.processEvents()
start = time.perf_counter()
viewer.window.add_plugin_dock_widget("napari-livecell", name)
QApplication.processEvents()  # the dock is tabbed, scrolls and is laid out in the next turns
QApplication.processEvents()
seconds = time.perf_counter() - start
heavy = sorted(m for m in ("torch", "ultralytics") if m in sys.modules)
print(json.dumps({"seconds": seconds, "imported": heavy}))
viewer.close()
"""


def measure(name: str, model_loaded: bool) -> dict:
    """One fresh process: seconds to open dock ``name``, and whether torch/Ultralytics were imported."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, name, "1" if model_loaded else "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print a markdown table: each dock's median opening time without and with a model loaded before."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per dock and setting")
    parser.add_argument("--dock", action="append", choices=DOCKS, help="only this dock (repeatable)")
    args = parser.parse_args()
    print("| dock | no model loaded | model loaded before | torch imported by the dock |")
    print("|---|---|---|---|")
    for name in args.dock or DOCKS:
        cold = [measure(name, False) for _ in range(args.repeat)]
        warm = [measure(name, True) for _ in range(args.repeat)]
        imported = "yes" if any(run["imported"] for run in cold) else "no"
        print(
            f"| {name} | {statistics.median(r['seconds'] for r in cold):.3f} s "
            f"| {statistics.median(r['seconds'] for r in warm):.3f} s | {imported} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
