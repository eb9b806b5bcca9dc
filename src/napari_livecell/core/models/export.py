"""Exporting trained models to ONNX and OpenVINO (offline: no auto-installed simplifier)."""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from napari_livecell.core.atomic import write_text_atomic

from .model import ModelError, load_model
from .runtime import DEFAULT_EXPORT_SIZE, write_onnx, write_openvino

TRITON_MAX_BATCH = 8  # requests Triton's dynamic batcher may put in one forward pass
TRITON_QUEUE_DELAY_US = 2000  # how long it waits for more requests to batch with


def export_onnx(
    weights: str | os.PathLike | None,
    out: str | os.PathLike,
    imgsz: int | tuple[int, int] = DEFAULT_EXPORT_SIZE,
    dynamic: bool = False,
) -> Path:
    """Export a YOLO-seg ``.pt`` model to ONNX.

    Parameters
    ----------
    weights : path, optional
        ``.pt`` weights; the shipped default model when omitted.
    out : path
        Target ``.onnx`` file.
    imgsz : int or tuple of int
        Input ``(height, width)`` of a static export.
    dynamic : bool
        Export dynamic input shapes instead.

    Returns
    -------
    Path
        The written ONNX file.
    """
    model = load_model(weights, device="cpu", runtime="torch")
    if model.path.suffix.lower() != ".pt":
        raise ModelError(f"only .pt models can be exported, got {model.path.name}")
    return write_onnx(model.path, Path(out), imgsz, dynamic)


def export_openvino(
    weights: str | os.PathLike | None,
    out: str | os.PathLike,
    imgsz: int | tuple[int, int] = DEFAULT_EXPORT_SIZE,
    dynamic: bool = True,
) -> Path:
    """Export a YOLO-seg ``.pt`` or ``.onnx`` model to an OpenVINO IR folder.

    Parameters
    ----------
    weights : path, optional
        ``.pt`` or ``.onnx`` weights; the shipped default model when omitted.
    out : path
        Target folder; Ultralytics recognises it when its name ends in ``_openvino_model``.
    imgsz : int or tuple of int
        Input ``(height, width)`` of a static export of a ``.pt`` (ignored for ``.onnx``).
    dynamic : bool
        Dynamic input shapes (default), for any frame size.

    Returns
    -------
    Path
        The folder, holding ``model.xml``, ``model.bin`` and ``metadata.yaml``.

    Raises
    ------
    ModelError
        OpenVINO is not installed, or the weights cannot be exported.
    """
    from .model import check_weights_path
    from .runtime import choose_runtime

    path = check_weights_path(weights, "openvino")
    if path.suffix.lower() == ".pt":
        path = load_model(path, device="cpu", runtime="torch").path  # a YOLO-seg checkpoint, checked
    choose_runtime("openvino", path, "cpu")  # a one-line error when OpenVINO is missing
    with tempfile.TemporaryDirectory(prefix="napari-livecell-export-") as scratch:
        source = path
        if source.suffix.lower() == ".pt":
            source = write_onnx(path, Path(scratch) / "model.onnx", imgsz, dynamic)
        target = Path(out)
        built = write_openvino(source, Path(scratch) / "openvino")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), target)
    return target


TRITON_BACKENDS = ("python", "onnxruntime")
TRITON_MODEL_CODE = Path(str(files("napari_livecell.deploy") / "triton_model.py"))
# what travels: the letterboxed float32 frame in, the raw head outputs back
TRITON_CONFIG = """name: "{name}"
{runtime}
max_batch_size: {max_batch_size}
input [
  {{
    name: "images"
    data_type: TYPE_FP32
    dims: {input}
  }}
]
output [
  {{
    name: "output0"
    data_type: TYPE_FP32
    dims: {output0}
  }},
  {{
    name: "output1"
    data_type: TYPE_FP32
    dims: {output1}
  }}
]
{batching}instance_group [ {{ kind: {kind}, count: 1 }} ]
parameters {{ key: "metadata" value: {{ string_value: "{metadata}" }} }}
"""


def export_triton(
    onnx_path: str | os.PathLike,
    repository: str | os.PathLike,
    name: str = "livecell",
    backend: str = "python",
    overwrite: bool = False,
) -> Path:
    """Lay out a Triton Inference Server model repository around a YOLO-seg ONNX export.

    Parameters
    ----------
    onnx_path : path
        The ONNX export (:func:`export_onnx`; a dynamic one lets Triton batch
        requests and take any frame size).
    repository : path
        The model repository; ``<repository>/<name>/`` is written.
    name : str
        The model's name on the server.
    backend : str
        ``"python"`` (default): Triton's Python backend runs the export with
        ONNX Runtime (``model.py`` beside ``model.onnx``); what the CPU-only
        server bundled in the ``nvidia-pytriton`` wheel can load.
        ``"onnxruntime"``: Triton's ONNX Runtime backend on a GPU, for
        NVIDIA's Triton containers (docs/triton.md).
    overwrite : bool
        Replace a model folder of that name (refused without it). The new
        folder is laid out beside it and swapped in whole.

    Returns
    -------
    Path
        ``<repository>/<name>``.

    Raises
    ------
    ModelError
        Not a YOLO-seg ONNX export, an unknown backend, a name that is not a
        folder name, or a model of that name already in the repository.
    """
    import onnx

    folder = _triton_model_folder(repository, name, overwrite)
    if backend not in TRITON_BACKENDS:
        raise ModelError(f"unknown Triton backend {backend!r}: use {' or '.join(TRITON_BACKENDS)}")
    model = onnx.load(str(onnx_path), load_external_data=False)

    def dims(value) -> list[int]:
        return [d.dim_value if d.dim_value > 0 else -1 for d in value.type.tensor_type.shape.dim]

    (image,) = [i for i in model.graph.input]
    outputs = {o.name: dims(o) for o in model.graph.output}
    if set(outputs) != {"output0", "output1"}:
        raise ModelError(f"{Path(onnx_path).name} is not a YOLO-seg ONNX export (outputs {sorted(outputs)})")
    input_dims = dims(image)
    batches = input_dims[0] == -1  # a dynamic export: Triton may put several requests in one batch
    if batches:  # Triton's dims then leave the batch axis out
        input_dims, outputs = input_dims[1:], {key: value[1:] for key, value in outputs.items()}
    config = TRITON_CONFIG.format(
        name=name,
        runtime='backend: "python"' if backend == "python" else 'platform: "onnxruntime_onnx"',
        max_batch_size=TRITON_MAX_BATCH if batches else 0,
        input=input_dims,
        output0=outputs["output0"],
        output1=outputs["output1"],
        batching=f"dynamic_batching {{ max_queue_delay_microseconds: {TRITON_QUEUE_DELAY_US} }}\n"
        if batches
        else "",
        kind="KIND_CPU" if backend == "python" else "KIND_GPU",
        metadata=repr(_ultralytics_metadata(model)).replace("\\", "\\\\").replace('"', '\\"'),
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        (staging / "1").mkdir()
        shutil.copyfile(onnx_path, staging / "1" / "model.onnx")
        if backend == "python":
            shutil.copyfile(TRITON_MODEL_CODE, staging / "1" / "model.py")
        write_text_atomic(staging / "config.pbtxt", config)
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _triton_model_folder(repository: str | os.PathLike, name: str, overwrite: bool) -> Path:
    """``<repository>/<name>`` for a name that is one folder name; an existing one needs ``overwrite``."""
    from napari_livecell.core.atomic import UnsafeNameError, child_path

    try:
        folder = child_path(repository, name, what="Triton model name")
    except UnsafeNameError as error:
        raise ModelError(str(error)) from None
    if folder.exists() and not overwrite:
        raise ModelError(
            f"{folder} exists: the repository already holds a model {name!r} "
            "(overwrite it, or pick another name)"
        )
    return folder


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the finished ``staging`` folder at ``folder``; the old one goes only once the new one is whole."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
    os.replace(folder, retired / folder.name)
    try:
        os.replace(staging, folder)
    except OSError:
        os.replace(retired / folder.name, folder)
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


def export_triton_repository(
    weights: str | os.PathLike | None,
    repository: str | os.PathLike,
    name: str = "livecell",
    backend: str = "python",
    overwrite: bool = False,
) -> Path:
    """Export ``weights`` (dynamic shapes, so Triton can batch) into a Triton model repository.

    A model of that name already in the repository is refused (before the
    export) unless ``overwrite``.
    """
    _triton_model_folder(repository, name, overwrite)
    with tempfile.TemporaryDirectory(prefix="napari-livecell-triton-") as scratch:
        onnx_path = export_onnx(weights, Path(scratch) / "model.onnx", dynamic=True)
        return export_triton(onnx_path, repository, name, backend, overwrite)


def _ultralytics_metadata(model) -> dict:
    """The export's own metadata (task, class names, stride...), as Ultralytics' Triton client reads it."""
    import ast

    metadata = {}
    for prop in model.metadata_props:
        try:
            metadata[prop.key] = ast.literal_eval(prop.value)
        except (ValueError, SyntaxError):
            metadata[prop.key] = prop.value
    # "args" holds the export's settings: "dynamic" there makes Ultralytics letterbox frames
    # to their own stride-32 size, as for a local model, instead of padding them to imgsz
    wanted = ("task", "names", "stride", "imgsz", "batch", "channels", "args", "end2end", "description")
    return {key: metadata[key] for key in wanted if key in metadata}
