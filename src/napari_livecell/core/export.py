"""Exporting trained models to ONNX (offline: no auto-installed simplifier)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from napari_livecell.core.model import ModelError, load_model

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

    # a fresh model object: export mutates the one it runs on
    exported = YOLO(str(model.path)).export(
        format="onnx",
        imgsz=list(imgsz) if isinstance(imgsz, tuple) else imgsz,
        dynamic=dynamic,
        simplify=False,
        device="cpu",
        verbose=False,
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".onnx.tmp")
    shutil.move(str(exported), temporary)
    os.replace(temporary, target)
    return target
