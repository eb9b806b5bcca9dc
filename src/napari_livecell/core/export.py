"""Exporting trained models to ONNX (offline: no auto-installed simplifier)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .model import ModelError, load_model

# 520 x 704 LIVECell frames letterbox to 544 x 704 (stride 32); a square
# 704 x 704 export would pad every frame and run slower
DEFAULT_EXPORT_SIZE = (544, 704)


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
    model = load_model(weights, device="cpu")
    if model.path.suffix.lower() != ".pt":
        raise ModelError(f"only .pt models can be exported, got {model.path.name}")
    from ultralytics import YOLO

    from napari_livecell.core.safe_load import use_in_ultralytics

    use_in_ultralytics()  # load_model did too; the fresh YOLO below must read the file the same way
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Ultralytics writes the export beside the weights: work on a copy, so that a read-only
    # install (or the shipped model's folder) is never written to, even by a failed export
    with tempfile.TemporaryDirectory(prefix="napari-livecell-export-") as scratch:
        weights_copy = Path(scratch) / model.path.name
        shutil.copyfile(model.path, weights_copy)
        # a fresh model object: export mutates the one it runs on
        exported = YOLO(str(weights_copy)).export(
            format="onnx",
            imgsz=list(imgsz) if isinstance(imgsz, tuple) else imgsz,
            dynamic=dynamic,
            simplify=False,
            device="cpu",
            verbose=False,
        )
        temporary = target.with_suffix(".onnx.tmp")
        shutil.move(str(exported), temporary)
        os.replace(temporary, target)
    return target


TRITON_CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [
  {{
    name: "images"
    data_type: TYPE_FP32
    dims: [ 1, 3, {height}, {width} ]
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
instance_group [ {{ kind: KIND_CPU }} ]
"""


def export_triton(
    onnx_path: str | os.PathLike, repository: str | os.PathLike, name: str = "livecell"
) -> Path:
    """Lay out a Triton Inference Server model repository around an ONNX export.

    Writes ``<repository>/<name>/1/model.onnx`` and ``<repository>/<name>/config.pbtxt``
    with the input and output shapes read from the ONNX graph.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)

    def dims(value) -> list[int]:
        return [d.dim_value if d.dim_value > 0 else -1 for d in value.type.tensor_type.shape.dim]

    (image,) = [i for i in model.graph.input]
    outputs = {o.name: dims(o) for o in model.graph.output}
    _, _, height, width = dims(image)
    if set(outputs) != {"output0", "output1"}:
        raise ModelError(f"{Path(onnx_path).name} is not a YOLO-seg ONNX export (outputs {sorted(outputs)})")
    folder = Path(repository) / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "1" / "model.onnx")
    config = TRITON_CONFIG.format(
        name=name, height=height, width=width, output0=outputs["output0"], output1=outputs["output1"]
    )
    (folder / "config.pbtxt").write_text(config)
    return folder
