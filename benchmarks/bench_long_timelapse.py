"""A long lazily read time-lapse through the Segment cells widget: memory, per-frame cost, first result.

Run under a display: ``xvfb-run -a python benchmarks/bench_long_timelapse.py [--frames 1000]``.

Issue 19, item 4, measured as a user meets it (viewer shown, widget defaults,
runtime auto): a ``--frames``-long dask stack of 704 x 520 frames (made
lazily: each frame is one of 10 synthesized scenes, rolled) is segmented
from the Run click to the result layers.

* RSS growth: the process's resident memory sampled every 50 ms on the GUI
  thread, highest value minus the value before the click (goal < 1 GiB).
* Per-frame cost: (last frame done - first frame done) / (frames - 1),
  against one frame segmented alone through the same model (the median of
  10, measured before and after the run) (goal <= 1.15x).
* First result: from the click until frame 0's cells are in the shown
  layer, against the network's forward pass alone (goal <= forward + 0.3 s),
  with the model loaded by an earlier (2-frame) run, as after any first run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=50, help="cells per frame")
    args = parser.parse_args()

    import dask
    import dask.array as da
    import napari
    from bench_inference import forward_pass
    from bench_review_heartbeat import settle
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_livecell.core.inference.frame_input import to_bgr
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.training.synthetic import synthesize_image

    scenes = [synthesize_image(seed=seed, n_cells=args.cells).image for seed in range(10)]

    @dask.delayed
    def make(index: int) -> np.ndarray:
        return np.roll(scenes[index % len(scenes)], 3 * index, axis=1)

    shape, dtype = scenes[0].shape, scenes[0].dtype
    stack = da.stack([da.from_delayed(make(i), shape, dtype) for i in range(args.frames)])

    model = load_model(device="cpu", runtime="auto")
    runtime = getattr(model, "runtime", "auto")
    segment_frame(scenes[0], model)
    forward, _ = forward_pass(model, to_bgr(scenes[0]))

    def single_frame_and_forward() -> tuple[list[float], list[float]]:
        alone, forwards = [], []
        for index in range(10):
            started = time.perf_counter()
            segment_frame(scenes[index], model).polygons  # noqa: B018  (outlines, as the widget makes)
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            forward()
            forwards.append(time.perf_counter() - started)
        return alone, forwards

    alone, forwards = single_frame_and_forward()

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    # a first short run loads the widget's model (and compiles it for the frame size), as any
    # earlier run in the session would have: the long run is then timed with the model ready
    viewer.add_image(np.stack(scenes[:2]), name="warm-up")
    widget.run()
    while widget.busy:
        app.processEvents()
        time.sleep(0.001)
    for layer in viewer.layers:
        layer.visible = False  # kept: removing them before adding the stack crashed llvmpipe here (SIGSEGV)
    viewer.add_image(stack, name="movie")
    widget._image.value = viewer.layers["movie"]
    settle(app, 1.0)

    rss: list[int] = []
    sampler = QTimer()
    sampler.timeout.connect(lambda: rss.append(rss_bytes()))
    frame_done: list[float] = []
    first_shown: list[float] = []

    def on_progress(progress) -> None:
        from napari_livecell._qt.segment_worker import FrameReady

        if isinstance(progress, FrameReady):
            frame_done.append(time.perf_counter())
            if not first_shown and "movie cells" in viewer.layers:
                layer = viewer.layers["movie cells"]
                if np.asarray(layer.data[0]).any():
                    first_shown.append(time.perf_counter())

    widget_saw = widget._on_progress

    def seen(progress) -> None:
        widget_saw(progress)  # the widget's own slot first: the frame is in the layer
        on_progress(progress)

    widget._on_progress = seen  # connected before the worker starts (frame 0 may come before run returns)
    before = rss_bytes()
    sampler.start(50)
    clicked = time.perf_counter()
    widget.run()
    click_returned = time.perf_counter()
    while widget.busy:
        app.processEvents()
        time.sleep(0.001)
    ended = time.perf_counter()
    sampler.stop()
    cells = viewer.layers["movie cells"]
    kind = type(cells.data).__module__.split(".")[0]
    n_cells = len(cells.features)
    viewer.close()
    alone_after, forwards_after = single_frame_and_forward()

    per_frame = (frame_done[-1] - frame_done[0]) / (len(frame_done) - 1)
    single = statistics.median(alone + alone_after)
    t_forward = statistics.median(forwards + forwards_after)
    growth = max(rss) - before
    print(f"runtime {runtime}; {args.frames} frames of 704 x 520, ~{args.cells} cells; labels kept as {kind}")
    print(f"{n_cells} cells; run {ended - clicked:.1f} s from the click to the result layers")
    gib = 2**30
    print(f"RSS before {before / gib:.2f} GiB, highest {max(rss) / gib:.2f} GiB: +{growth / gib:.2f} GiB")
    print(
        f"per frame in the stack {per_frame * 1000:.0f} ms, one frame alone {single * 1000:.0f} ms: "
        f"{per_frame / single:.2f}x"
    )
    print(
        f"first frame's cells shown {first_shown[0] - clicked:.2f} s after the click; forward pass "
        f"{t_forward * 1000:.0f} ms: forward + {first_shown[0] - clicked - t_forward:.2f} s "
        f"(the click itself {click_returned - clicked:.2f} s)"
    )


if __name__ == "__main__":
    main()
