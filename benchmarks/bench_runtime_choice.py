"""ONNX Runtime vs OpenVINO on the shipped ONNX model: time to the first result and the forward pass.

Each runtime runs in a fresh process (imports, model load, first frame, then the
median of 10 forward passes of one 704 x 520 frame's 704 x 544 tensor).

    python benchmarks/bench_runtime_choice.py
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
started = time.perf_counter()
from napari_livecell.core.inference.network_input import network_tensor
from napari_livecell.core.inference.predict import segment_frame
from napari_livecell.core.models.model import load_model
from napari_livecell.core.training.synthetic import synthesize_image
frame = synthesize_image(seed=3, n_cells=60, shape=(520, 704)).image
imported = time.perf_counter()
model = load_model(runtime=sys.argv[1], device="cpu")
loaded = time.perf_counter()
cells = segment_frame(frame, model).n_cells
first = time.perf_counter()
import numpy as np
tensor = np.zeros((1, 3, 544, 704), np.float32)
times = []
for _ in range(10):
    t = time.perf_counter()
    with model.engine.outputs_held(tensor) as outputs:
        pass
    times.append(time.perf_counter() - t)
forward_ms = 1000 * float(np.median(times))
print(json.dumps({"imports_s": imported - started, "load_s": loaded - imported,
                  "first_frame_s": first - loaded, "forward_ms": forward_ms, "cells": cells}))
"""


def main() -> None:
    for runtime in ("onnxruntime", "openvino"):
        result = subprocess.run(
            [sys.executable, "-c", CHILD, runtime], capture_output=True, text=True, check=True
        )
        print(runtime, json.loads(result.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
