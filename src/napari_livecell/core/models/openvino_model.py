"""The OpenVINO model: compiled per input shape, with one stream per core for frames side by side.

:class:`StaticShapes` is the OpenVINO engine (:mod:`.runtime`'s table), made
from an ``.onnx`` file (OpenVINO reads it directly) or an IR ``.xml``;
:mod:`.openvino_direct` runs it, so that two frames of a stack can be in the
network at once, each on its own core.

Why streams: on this 2-core CPU one frame's forward pass on both cores takes
69 ms, two frames on one core each 117 ms, i.e. 59 ms a frame (float32,
704 x 544; benchmarks/README.md): two cores working on one small convolution
at a time wait for each other, and the post-processing, which cannot start
before its frame's forward pass ends, leaves the cores idle in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class StaticShapes:
    """An OpenVINO model compiled for each input shape it meets (the last few kept).

    Called as a compiled model is (``compiled(array).values()``), or through
    :meth:`infer` from any number of threads. The IR has a dynamic input
    shape, so that frames of any size run at their own size as with PyTorch;
    compiled for one fixed shape, its forward pass is ~15 % faster
    (benchmarks/README.md), and a stack's frames share one shape.

    Parameters
    ----------
    xml : Path
        An ``.onnx`` file, or an IR's ``.xml`` file (its ``.bin`` beside it).
    threads : int
        Cores the forward pass may use.
    """

    KEEP = 4  # shapes x stream counts: a stack's frames, tiles, and a few odd sizes

    def __init__(self, xml: Path, threads: int) -> None:
        import openvino

        self._core = openvino.Core()
        self._xml = xml
        self.threads = threads
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            # f32: on CPUs with AMX or AVX512-BF16 the default is bfloat16, whose masks differ
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": threads,
        }
        network = self._core.read_model(*self._files())
        height, width = network.inputs[0].get_partial_shape()[2:4]
        fixed = height.is_static and width.is_static
        self.input_shape = (height.get_length(), width.get_length()) if fixed else None
        self.n_outputs = len(network.outputs)
        # (shape, streams) -> the compiled model and its idle infer requests, least recently used first
        self._compiled: dict[tuple, tuple[Any, list]] = {}
        self._lock = threading.Lock()

    def _files(self) -> tuple[str, ...]:
        if self._xml.suffix.lower() == ".xml":
            return str(self._xml), str(self._xml.with_suffix(".bin"))
        return (str(self._xml),)

    def compiled(self, shape: tuple[int, ...], streams: int = 1) -> Any:
        """The model compiled for ``shape`` and ``streams`` frames at once (compiled now when new)."""
        return self._entry(shape, streams)[0]

    def _entry(self, shape: tuple[int, ...], streams: int) -> tuple[Any, list]:
        key = (tuple(shape), streams)
        with self._lock:  # compiling twice at once would only waste the time; a thread waits instead
            if key in self._compiled:
                self._compiled[key] = self._compiled.pop(key)  # most recently used last
                return self._compiled[key]
            network = self._core.read_model(*self._files())
            network.reshape(list(shape))
            config = dict(self.config)
            if streams > 1:
                config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
            self._compiled[key] = (self._core.compile_model(network, "CPU", config), [])
            while len(self._compiled) > self.KEEP:
                self._compiled.pop(next(iter(self._compiled)))
            return self._compiled[key]

    def infer(self, tensor: np.ndarray, streams: int = 1) -> list[np.ndarray]:
        """The forward pass on a float32 ``(1, 3, H, W)`` array: the outputs in port order (copies).

        Thread-safe: each call takes an idle infer request of its own. With
        ``streams > 1`` the model runs as that many streams on the cores
        (each call on one stream), for callers that segment frames side by side.
        """
        with self.outputs_held(tensor, streams) as outputs:
            return [output.copy() for output in outputs]

    @contextmanager
    def outputs_held(self, tensor: np.ndarray, streams: int = 1) -> Iterator[list[np.ndarray]]:
        """:meth:`infer`, its outputs the infer request's own memory, valid inside the block.

        The request serves no other call until the block ends, so a caller
        that reads the outputs there (the prototypes, 3 MB a 704 x 544 frame)
        needs no copy of them.
        """
        compiled, idle = self._entry(tensor.shape, streams)
        with self._lock:
            request = idle.pop() if idle else None
        if request is None:
            request = compiled.create_infer_request()
        try:
            # the input is only read
            outputs = request.infer({0: np.ascontiguousarray(tensor)}, share_inputs=True, share_outputs=True)
            yield list(outputs.values())
        finally:
            with self._lock:
                idle.append(request)  # an evicted model's list goes with it
