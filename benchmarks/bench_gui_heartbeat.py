"""How long the GUI thread is blocked during a Segment cells run, with and without the collector held.

Run under a display (``xvfb-run -a python benchmarks/bench_gui_heartbeat.py``). A
10 ms QTimer beats while the widget segments a 24-frame 256 x 320 stack; the
longest gaps between beats are reported for three phases: the Run click, the
inference, and finishing (result layers put in place). Each setting runs in a
fresh viewer, shown (so paints count) or hidden (as in the tests), alternating
"collector held" (what the widget does) and "not held" in one process. Whether
an automatic full collection falls inside a run is chance, so the script also
times one directly, with and without the objects from before the run frozen.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np


def one_run(show: bool, hold: bool, frame: np.ndarray) -> tuple[float, float, float]:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    import napari_livecell._qt.run_controls as widget_module  # where the widgets take the hold

    real_hold, real_release = widget_module.hold_collector, widget_module.release_collector
    if not hold:
        widget_module.hold_collector = widget_module.release_collector = lambda: None
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=show)
    try:
        _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
        viewer.add_image(np.stack([frame] * 24), name="beats")
        settle(app, 0.5)
        beats, returned_at = [], []
        timer = QTimer()
        timer.timeout.connect(lambda: beats.append(time.perf_counter()))
        timer.start(10)
        clicked = time.perf_counter()
        worker = widget.run()
        answered = time.perf_counter()
        worker.returned.connect(lambda _: returned_at.append(time.perf_counter()))
        while widget.busy:
            app.processEvents()
            time.sleep(0.001)
        settle(app, 0.2)
        timer.stop()
    finally:
        widget_module.hold_collector, widget_module.release_collector = real_hold, real_release
        viewer.close()
    beats = np.asarray(sorted([clicked, *beats]))
    gaps, ends = np.diff(beats), beats[1:]
    first = np.flatnonzero(ends > answered)[0]
    click = ends[first] - clicked
    # a phase without a beat inside it (a run shorter than the click) counts as no gap
    inference = gaps[(ends > ends[first]) & (ends < returned_at[0])].max(initial=0.0)
    finishing = gaps[ends >= returned_at[0]].max(initial=0.0)
    return click, inference, finishing


def settle(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.training.synthetic import synthesize_image

    frame = synthesize_image(seed=5151, n_cells=40, shape=(256, 320)).image
    load_model(device="cpu")
    results: dict[tuple[bool, bool], list[tuple[float, float, float]]] = {}
    for repeat in range(args.repeats):
        for show in (False, True):
            for hold in (True, False) if repeat % 2 == 0 else (False, True):  # no order effect
                results.setdefault((show, hold), []).append(one_run(show, hold, frame))
    print("| viewer | collector | click | inference | finishing | worst |")
    print("|---|---|---|---|---|---|")
    for (show, hold), runs in sorted(results.items(), key=lambda item: (item[0][0], not item[0][1])):
        medians = [statistics.median(run[i] for run in runs) for i in range(3)]
        worst = max(max(run) for run in runs)
        cells = " | ".join(f"{value:.3f} s" for value in medians)
        viewer, collector = ("shown" if show else "hidden"), ("held" if hold else "not held")
        print(f"| {viewer} | {collector} | {cells} | {worst:.3f} s |")
    print(f"medians of {args.repeats} runs each (max gap per phase per run); worst = longest gap of any run")
    print(
        f"a full garbage collection now ({len(gc.get_objects()):,} objects tracked): "
        f"{full_collection_seconds(frozen=False):.3f} s; "
        f"with the older objects frozen (collector held): {full_collection_seconds(frozen=True):.3f} s"
    )


def full_collection_seconds(frozen: bool, repeats: int = 3) -> float:
    """Median time of ``gc.collect()``: what an automatic full collection stalls every thread for."""
    times = []
    for _ in range(repeats):
        if frozen:
            gc.freeze()
        start = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - start)
        gc.unfreeze()
    return statistics.median(times)


if __name__ == "__main__":
    main()
