"""Inference speed and memory, as ratios measured in one process run.

Run: ``python benchmarks/bench_inference.py [--frames 10] [--stack 200]``.
Prints a Markdown table; numbers from this machine go into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_livecell.core.matching import match_cells
from napari_livecell.core.model import load_model
from napari_livecell.core.offline import import_ultralytics
from napari_livecell.core.predict import PredictSettings, segment, segment_frame
from napari_livecell.core.synthetic import synthesize_image


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_end_to_end(frames: list[np.ndarray], repeats: int) -> dict:
    """Ours vs plain Ultralytics predict (its defaults) vs the forward pass alone."""
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import NUM_THREADS as ULTRALYTICS_THREADS

    model = load_model(device="cpu")
    settings = PredictSettings()
    plain = YOLO(str(model.path))
    bgr_frames = [np.repeat(f[:, :, None], 3, axis=2) for f in frames]

    def plain_predict():
        for bgr in bgr_frames:
            plain.predict(bgr, retina_masks=True, imgsz=704, verbose=False)

    def ours():
        for frame in frames:
            result = segment_frame(frame, model, settings)
            result.polygons  # noqa: B018  (outlines are part of the result users get)
            result.areas  # noqa: B018

    ours()
    predictor = model.yolo.predictor
    tensors = [predictor.preprocess([bgr]) for bgr in bgr_frames]

    def forward():
        with torch.inference_mode():
            for tensor in tensors:
                predictor.model(tensor)

    torch.set_num_threads(ULTRALYTICS_THREADS)
    plain_predict()
    # this machine's speed drifts (shared cores): interleave the three and take medians
    plain_times, ours_times, forward_times, ours_one_thread = [], [], [], []
    for _ in range(repeats):
        torch.set_num_threads(ULTRALYTICS_THREADS)  # what Ultralytics' predictor setup picks here
        plain_times.append(median_seconds(plain_predict, 1))
        ours_one_thread.append(median_seconds(ours, 1))
        torch.set_num_threads(os.cpu_count())
        ours_times.append(median_seconds(ours, 1))
        forward_times.append(median_seconds(forward, 1))
    t_plain = statistics.median(plain_times) / len(frames)
    t_ours = statistics.median(ours_times) / len(frames)
    t_forward = statistics.median(forward_times) / len(frames)
    t_ours_one = statistics.median(ours_one_thread) / len(frames)
    return {
        "threads_plain": ULTRALYTICS_THREADS,
        "threads_ours": os.cpu_count(),
        "plain_ms": 1000 * t_plain,
        "ours_ms": 1000 * t_ours,
        "forward_ms": 1000 * t_forward,
        "ours_1_thread_ms": 1000 * t_ours_one,
        "speedup_vs_plain": t_plain / t_ours,
        "speedup_vs_plain_same_threads": t_plain / t_ours_one,
        "ours_over_forward": t_ours / t_forward,
        "input": tuple(tensors[0].shape),
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
        "frame": sample.image.shape,
        "peak_numpy_mib": peak / 2**20,
        "label_image_mib": label_bytes / 2**20,
        "peak_over_labels": peak / label_bytes,
        "all_masks_float32_mib": result.n_cells * sample.image.size * 4 / 2**20,
    }


def bench_onnx(frames: list[np.ndarray], repeats: int) -> dict:
    """ONNX Runtime vs PyTorch on the same exported model: speed and mask IoU."""
    import torch

    from napari_livecell.core.export import export_onnx

    torch.set_num_threads(os.cpu_count())
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = export_onnx(None, Path(folder) / "model.onnx", imgsz=(544, 704))
        onnx_model = load_model(onnx_path, device="cpu")
        torch_model = load_model(device="cpu")
        ious, matched = [], []
        for frame in frames:
            a = segment_frame(frame, torch_model)
            b = segment_frame(frame, onnx_model)
            match = match_cells(a.labels, b.labels)
            ious.append(float(np.median(match.ious)) if match.n_matched else 0.0)
            matched.append(match.n_matched / max(1, a.n_cells))
        t_onnx = median_seconds(lambda: [segment_frame(f, onnx_model) for f in frames], repeats)
        torch.set_num_threads(os.cpu_count())
        t_torch = median_seconds(lambda: [segment_frame(f, torch_model) for f in frames], repeats)
    return {
        "torch_ms": 1000 * t_torch / len(frames),
        "onnx_ms": 1000 * t_onnx / len(frames),
        "torch_over_onnx": t_torch / t_onnx,
        "median_cell_iou": statistics.median(ious),
        "matched_fraction": statistics.median(matched),
    }


def bench_stack(n_frames: int) -> dict:
    """A lazily generated dask time-lapse: per-frame time and peak RSS vs one frame."""
    import dask
    import dask.array as da

    frame = synthesize_image(seed=5, n_cells=80).image
    model = load_model(device="cpu")
    rss_before = peak_rss_mib()
    t_single = median_seconds(lambda: segment_frame(frame, model), 5)

    @dask.delayed
    def make(index: int) -> np.ndarray:
        return np.roll(frame, index, axis=1)

    stack = da.stack([da.from_delayed(make(i), frame.shape, frame.dtype) for i in range(n_frames)])
    started = time.perf_counter()
    n_cells = 0
    for result in segment(stack, model):
        n_cells += result.n_cells
    per_frame = (time.perf_counter() - started) / n_frames
    return {
        "frames": n_frames,
        "stack_gib_if_loaded": stack.nbytes / 2**30,
        "single_ms": 1000 * t_single,
        "per_frame_ms": 1000 * per_frame,
        "per_frame_over_single": per_frame / t_single,
        "peak_rss_mib_before": rss_before,
        "peak_rss_mib_after": peak_rss_mib(),
        "cells": n_cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stack", type=int, default=200)
    parser.add_argument("--cells", type=int, default=45)
    args = parser.parse_args()
    import_ultralytics()
    frames = [synthesize_image(seed=1000 + i, n_cells=args.cells).image for i in range(args.frames)]
    print(f"cores: {os.cpu_count()}, frames: {args.frames} x 704x520, ~{args.cells} cells each")
    for name, bench in (
        ("end_to_end", lambda: bench_end_to_end(frames, args.repeats)),
        ("memory_2000_cells", bench_memory),
        ("onnx_vs_torch", lambda: bench_onnx(frames[:5], args.repeats)),
        ("dask_stack", lambda: bench_stack(args.stack)),
    ):
        result = bench()
        print(f"\n## {name}")
        for key, value in result.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"- {key}: {shown}")


if __name__ == "__main__":
    main()
