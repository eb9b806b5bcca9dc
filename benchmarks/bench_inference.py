"""Inference speed, agreement and memory, as ratios measured in one process run.

Run: ``python benchmarks/bench_inference.py [--frames 3] [--repeats 5] [--stack 200]``
(``--stack 0 --skip-memory``: the densities only).

* ``density_*``: at ~50, ~500 and ~2000 cells per frame, plain Ultralytics
  predict, ours with each runtime (torch, ONNX Runtime, OpenVINO) and each
  runtime's forward pass alone, timed frame by frame with every contender in
  turn on the same frame (the machine is shared: its speed drifts); medians
  per frame, and the faster runtimes' cells against torch's (counts, per-cell
  mask IoU), and each runtime's end to end over its forward pass
  (``ours_over_forward_*``: what post-processing adds; the median of the
  ratios of each end to end and the forward pass timed right after it).
* ``stack``: a lazily generated dask stack segmented as the plugin does
  (:func:`napari_livecell.core.inference.run.iter_segment`), frame by frame and (OpenVINO)
  frames side by side, one stream per core, as frames per second over
  1 / forward time.
* ``memory_2000_cells``: peak numpy memory of a 2000-cell frame.

Prints Markdown-ready lines; numbers from this machine go into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import tracemalloc

import numpy as np

from napari_livecell.core.analysis.matching import match_cells
from napari_livecell.core.inference import run
from napari_livecell.core.inference.frame_input import to_bgr
from napari_livecell.core.inference.network_input import network_tensor
from napari_livecell.core.inference.predict import (
    STRIDE,
    PredictSettings,
    _pad_with_background,
    segment_frame,
)
from napari_livecell.core.inference.run import FrameResult
from napari_livecell.core.models.model import DEFAULT_MODEL, load_model
from napari_livecell.core.models.offline import import_ultralytics
from napari_livecell.core.training.synthetic import synthesize_image

RUNTIMES = ("torch", "onnxruntime", "openvino")
# cells per frame -> frame shape and network size that runs the frame whole (no tiles)
DENSITIES = {50: ((520, 704), 704), 500: ((520, 704), 704), 2000: ((1040, 1408), 1408)}


def seconds(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def forward_pass(model, bgr: np.ndarray):
    """The network alone on one frame as segment_frame gives it, through the runtime's Ultralytics backend.

    The frame is padded to the stride as :func:`segment_frame` pads it (not
    through the predictor, whose letterbox size is whatever its last call set).
    """
    import torch

    predictor = model.yolo.predictor
    padded = [STRIDE * math.ceil(side / STRIDE) for side in bgr.shape[:2]]
    tensor = torch.from_numpy(network_tensor(_pad_with_background(bgr, tuple(padded))))

    def forward() -> None:
        with torch.inference_mode():
            predictor.model(tensor)

    return forward, tuple(tensor.shape)


def agreement(reference, other) -> tuple[float, float, float]:
    """Cell count difference (fraction), smallest and median mask IoU of matched cells, matched fraction."""
    match = match_cells(reference.labels, other.labels)
    count = abs(other.n_cells - reference.n_cells) / max(1, reference.n_cells)
    ious = match.ious if match.n_matched else np.zeros(1)
    return count, float(np.min(ious)), match.n_matched / max(1, reference.n_cells)


def bench_density(n_cells: int, n_frames: int, repeats: int) -> dict:
    """Plain Ultralytics, ours per runtime and forward alone per runtime, interleaved."""
    from ultralytics import YOLO

    shape, imgsz = DENSITIES[n_cells]
    settings = PredictSettings(imgsz=imgsz)
    frames = [
        synthesize_image(seed=2000 + n_cells + i, n_cells=n_cells, shape=shape).image for i in range(n_frames)
    ]
    bgr_frames = [to_bgr(frame) for frame in frames]
    models = {name: load_model(device="cpu", runtime=name) for name in RUNTIMES}
    plain = YOLO(str(DEFAULT_MODEL))

    def ours(model):
        def segment_one(index: int) -> None:
            result = segment_frame(frames[index], model, settings)
            result.polygons  # noqa: B018  (outlines are part of the result users get)

        return segment_one

    def plain_predict(index: int) -> None:
        plain.predict(bgr_frames[index], retina_masks=True, imgsz=imgsz, verbose=False)

    results = {name: [segment_frame(f, model, settings) for f in frames] for name, model in models.items()}
    forwards, input_shape = {}, None
    for name, model in models.items():
        passes = [forward_pass(model, bgr) for bgr in bgr_frames]
        input_shape = passes[0][1]
        forwards[name] = lambda index, passes=passes: passes[index][0]()
    contenders = {"plain": plain_predict}
    for name, model in models.items():
        contenders[f"ours_{name}"] = ours(model)
        contenders[f"forward_{name}"] = forwards[name]
    for function in contenders.values():
        for index in range(n_frames):
            function(index)  # warm-up: first calls at a new shape compile kernels
    # frame by frame, every contender in turn on the same frame: the machine's speed drifts over
    # seconds, so each runtime's end to end is compared with its forward pass timed right after it
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for index in range(n_frames):
            for name, function in contenders.items():
                times[name].append(seconds(lambda function=function, index=index: function(index)))
    ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
    report = {
        "frame": f"{shape[1]}x{shape[0]}",
        "network_input": input_shape,
        "cells_torch": statistics.mean(r.n_cells for r in results["torch"]),
    }
    report.update({f"{name}_ms": value for name, value in ms.items()})
    for name in RUNTIMES[1:]:
        report[f"forward_torch_over_{name}"] = ms["forward_torch"] / ms[f"forward_{name}"]
        report[f"ours_torch_over_{name}"] = ms["ours_torch"] / ms[f"ours_{name}"]
        checks = [agreement(a, b) for a, b in zip(results["torch"], results[name])]
        report[f"{name}_count_diff_max"] = max(c[0] for c in checks)
        report[f"{name}_min_cell_iou"] = min(c[1] for c in checks)
        report[f"{name}_matched_min"] = min(c[2] for c in checks)
    for name in RUNTIMES:  # issue 19: end to end within 1.15x (~500 cells) / 1.3x (~2000) of the forward
        # the median of paired ratios (each end to end over the forward pass timed right after it)
        pairs = zip(times[f"ours_{name}"], times[f"forward_{name}"], strict=True)
        report[f"ours_over_forward_{name}"] = statistics.median(ours / forward for ours, forward in pairs)
    best = min(RUNTIMES, key=lambda name: ms[f"ours_{name}"])
    report["plain_over_ours_best"] = ms["plain"] / ms[f"ours_{best}"]
    report["ours_best"] = best
    report["ours_best_over_its_forward"] = ms[f"ours_{best}"] / ms[f"forward_{best}"]
    return report


def bench_pipeline(n_frames: int, runtime: str, n_cells: int = 50) -> dict:
    """A lazy dask stack through :func:`core.run.iter_segment` (as the plugin runs it) vs the forward pass.

    Two ways, interleaved: frames side by side (OpenVINO: one stream per
    core, :mod:`napari_livecell.core.inference.openvino_direct`; what runs by default)
    and frame by frame (``openvino_direct.STREAMS = 1``; torch always runs so).
    """
    import dask
    import dask.array as da

    from napari_livecell.core.inference import openvino_direct

    frame = synthesize_image(seed=5, n_cells=n_cells).image
    model = load_model(device="cpu", runtime=runtime)
    segment_frame(frame, model)
    forward, _ = forward_pass(model, to_bgr(frame))

    @dask.delayed
    def make(index: int) -> np.ndarray:
        return np.roll(frame, 7 * index, axis=1)

    stack = da.stack([da.from_delayed(make(i), frame.shape, frame.dtype) for i in range(n_frames)])
    backend = run.Backend(device="cpu", runtime=runtime)
    labels: dict[int, list[np.ndarray]] = {}

    def run_stack(streams: int) -> None:
        openvino_direct.STREAMS = streams
        try:
            events = run.iter_segment(stack, backend)
            labels[streams] = [e.segmentation.labels for e in events if isinstance(e, FrameResult)]
        finally:
            openvino_direct.STREAMS = 2

    per_frame: dict[int, list[float]] = {1: [], 2: []}
    forward_times: list[float] = []
    for streams in (2, 1, 1, 2):  # interleaved, each twice
        forward_times += [seconds(forward) for _ in range(10)]
        per_frame[streams].append(seconds(lambda streams=streams: run_stack(streams)) / n_frames)
    forward_times += [seconds(forward) for _ in range(10)]
    t_forward = statistics.median(forward_times)
    t_serial, t_side = (statistics.median(per_frame[s]) for s in (1, 2))
    return {
        "runtime": runtime,
        "frames": n_frames,
        "forward_ms": 1000 * t_forward,
        "frame_by_frame_ms": 1000 * t_serial,
        "side_by_side_ms": 1000 * t_side,
        "side_by_side_fps_over_1_per_forward": t_forward / t_side,
        "frame_by_frame_fps_over_1_per_forward": t_forward / t_serial,
        "side_by_side_speedup": t_serial / t_side,
        "same_labels": all(np.array_equal(a, b) for a, b in zip(labels[1], labels[2])),
        "peak_rss_mib": peak_rss_mib(),
    }


def bench_memory(n_cells: int = 2000) -> dict:
    """Peak numpy memory while segmenting a frame with thousands of cells."""
    sample = synthesize_image(seed=77, n_cells=n_cells, shape=(1040, 1408))
    model = load_model(device="cpu")
    segment_frame(sample.image[:256, :256], model)  # warm up outside the measurement
    tracemalloc.start()
    result = segment_frame(sample.image, model)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    label_bytes = result.labels.nbytes
    return {
        "cells_true": int(sample.labels.max()),
        "cells_found": result.n_cells,
        "peak_numpy_mib": peak / 2**20,
        "peak_over_labels": peak / label_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3, help="frames per density")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--stack", type=int, default=200, help="frames of the pipelined stack (0: skip it)")
    parser.add_argument(
        "--densities", type=int, nargs="+", default=sorted(DENSITIES), choices=sorted(DENSITIES)
    )
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    import_ultralytics()
    import onnxruntime
    import openvino
    import torch
    import ultralytics

    print(
        f"cores: {os.cpu_count()} (every runtime uses all), torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, "
        f"ultralytics {ultralytics.__version__}"
    )
    benches = [
        (f"density_{n}_cells", lambda n=n: bench_density(n, args.frames, args.repeats))
        for n in args.densities
    ]
    if args.stack:
        benches += [
            (f"stack_{name}", lambda name=name: bench_pipeline(args.stack, name))
            for name in ("openvino", "torch")
        ]
    if not args.skip_memory:
        benches.append(("memory_2000_cells", bench_memory))
    for name, bench in benches:
        result = bench()
        print(f"\n## {name}")
        for key, value in result.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"- {key}: {shown}", flush=True)


if __name__ == "__main__":
    main()
