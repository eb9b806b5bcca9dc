"""A YOLO-seg ONNX export behind Triton's Python backend, run with ONNX Runtime.

Copied by ``napari-livecell export --triton`` to ``<repository>/<name>/1/model.py``
beside ``model.onnx``. Triton's Python backend imports it in the server's
environment, so it needs only numpy and onnxruntime (and Triton's
``triton_python_backend_utils``). The network's raw outputs travel back to
the caller, which letterboxes before and post-processes after (NMS, masks),
exactly as for a local model.

Requests that Triton's dynamic batcher hands over together are stacked into
one batch when their frames have the same size, and run one by one otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime  # noqa: TID253  (runs inside Triton, where nothing else is loaded)
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton's entry point: ``initialize`` once, ``execute`` per group of requests."""

    def initialize(self, args: dict) -> None:
        """Open the ONNX export beside this file with ONNX Runtime's full graph optimisations."""
        config = json.loads(args["model_config"])
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = int(os.environ.get("LIVECELL_TRITON_THREADS", "0"))  # 0: ONNX Runtime decides
        options.intra_op_num_threads = threads
        onnx_path = Path(__file__).with_name("model.onnx")
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = config["input"][0]["name"]
        self.output_names = [output["name"] for output in config["output"]]

    def execute(self, requests: list) -> list:
        """One response per request, in order."""
        images = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        if len({image.shape[1:] for image in images}) == 1 and len(images) > 1:
            outputs = self.session.run(self.output_names, {self.input_name: np.concatenate(images)})
            sizes = np.cumsum([len(image) for image in images])[:-1]
            per_request: Iterable[Any] = zip(*(np.split(output, sizes) for output in outputs))
        else:
            per_request = (self.session.run(self.output_names, {self.input_name: image}) for image in images)
        responses = []
        for values in per_request:
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(self.output_names, values)]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
