"""Running an ONNX YOLO-seg model without PyTorch or Ultralytics: its metadata and an ONNX Runtime engine.

An ONNX file exported by Ultralytics carries what a loader needs in the
model's ``metadata_props`` (class names, input size, stride, task, as
Python literals in strings). :func:`read_onnx_metadata` reads them from the
file's protobuf directly: no ``onnx`` package, no Ultralytics, and only the
model's top-level fields are parsed (the 13 MB of weights are skipped).

An engine is what :mod:`napari_livecell.core.inference.openvino_direct`
runs: ``threads``, ``input_shape`` (a fixed ``(height, width)`` or ``None``)
and ``outputs_held(tensor, streams)``, a context manager giving the outputs
of the forward pass on a float32 ``(1, 3, H, W)`` tensor in port order.
:class:`OnnxRuntimeEngine` is ONNX Runtime's;
:class:`.openvino_model.StaticShapes` is OpenVINO's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.errors import ModelError

METADATA_FIELD = 14  # ModelProto.metadata_props (onnx.proto)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of a protobuf message; length-delimited values as bytes."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"wire type {wire} is not protobuf 3")
        if at > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as strings (empty when it has none).

    Raises
    ------
    ModelError
        The file is not an ONNX model (not a protobuf message).
    """
    data = Path(path).read_bytes()
    props: dict[str, str] = {}
    try:
        for number, wire, value in _fields(data):
            if number == METADATA_FIELD and wire == 2:
                entry = {n: v for n, w, v in _fields(value) if w == 2}
                props[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read {Path(path).name} as an ONNX model (corrupt?): {error}") from None
    return props


def _literal(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an Ultralytics ONNX export says of itself.

    Attributes
    ----------
    task : str or None
        ``segment``, ``detect``...; ``None``: no Ultralytics metadata.
    names : dict
        Class id -> name.
    imgsz : tuple of int or None
        ``(height, width)`` it was exported at.
    stride : int
        The network's largest stride (32 for YOLOv8).
    metadata : dict
        The ``napari_livecell`` provenance a checkpoint carried, when the
        export kept it (the pixel size and modality of its training frames).
    """

    task: str | None
    names: dict[int, str]
    imgsz: tuple[int, int] | None
    stride: int = 32
    metadata: dict = field(default_factory=dict)


def onnx_model_info(path: Path) -> OnnxModelInfo:
    """Read an ONNX file's Ultralytics metadata (:func:`read_onnx_metadata`) into typed values."""
    props = read_onnx_metadata(path)
    names = _literal(props.get("names"))
    if not isinstance(names, dict) or not names:
        names = {0: "cell"}
    imgsz = _literal(props.get("imgsz"))
    if isinstance(imgsz, int):
        imgsz = (imgsz, imgsz)
    size = (int(imgsz[0]), int(imgsz[1])) if isinstance(imgsz, list | tuple) and len(imgsz) == 2 else None
    stride = _literal(props.get("stride"))
    livecell = _literal(props.get("napari_livecell"))
    return OnnxModelInfo(
        task=props.get("task"),
        names={int(k): str(v) for k, v in names.items()},
        imgsz=size,
        stride=int(stride) if isinstance(stride, int | float) else 32,
        metadata=dict(livecell) if isinstance(livecell, dict) else {},
    )


class OnnxRuntimeEngine:
    """An ONNX Runtime session set up for equal masks and post-processing beside it.

    Float32 as exported, every core for one frame, and no spinning threads:
    ONNX Runtime's default threads busy-wait between calls, starving the
    mask painting that runs beside the forward pass. ``run`` is thread-safe.

    Parameters
    ----------
    model_file : Path
        The ``.onnx`` file.
    threads : int
        Cores the forward pass may use.
    """

    def __init__(self, model_file: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self.threads = threads
        (network_input,) = self.session.get_inputs()
        self._input = network_input.name
        height, width = network_input.shape[2:4]
        fixed = isinstance(height, int) and isinstance(width, int)
        self.input_shape: tuple[int, int] | None = (height, width) if fixed else None
        self.n_outputs = len(self.session.get_outputs())

    def infer(self, tensor: np.ndarray, streams: int = 1) -> list[np.ndarray]:
        """The forward pass on a float32 ``(1, 3, H, W)`` tensor: the outputs in port order."""
        return self.session.run(None, {self._input: np.ascontiguousarray(tensor)})

    @contextmanager
    def outputs_held(self, tensor: np.ndarray, streams: int = 1) -> Iterator[list[np.ndarray]]:
        """:meth:`infer` as the context manager every engine offers (the outputs are the caller's)."""
        yield self.infer(tensor, streams)
