"""An int8 OpenVINO model, calibrated on the user's own frames (runtime ``openvino-int8``).

Post-training quantisation with NNCF, OpenVINO's own compression library:
the float32 IR that runtime ``openvino`` runs is quantised with activation
ranges measured on letterboxed frames exactly as inference prepares them
(same polarity decision, same padding). As in Ultralytics' own int8
export, every sigmoid and the head's box decoding stay in float32; the
convolutions (backbone, neck, and the head's branches and mask prototypes)
run in int8.

Measured (benchmarks/README.md, "int8"): forward pass 1.76x the float32
OpenVINO one (2.47x PyTorch's) on this CPU, mask mAP 0.47 point below
float32 on the held-out synthetic set. Masks are not identical to PyTorch's, so ``auto``
never picks it: it is a choice, made after calibrating.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_livecell.core.errors import ModelError

MAX_CALIBRATION_FRAMES = 30
# frames larger than this (either side) are calibrated on their central crop: inference tiles them
CALIBRATION_CROP = 1024


@dataclass
class Calibration:
    """What :func:`quantize_int8` made."""

    folder: Path
    n_frames: int
    seconds: float


def _import_nncf():
    import logging
    import sys

    # nncf sends usage telemetry through openvino-telemetry when that is installed: never here
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None
    try:
        import nncf
    except ImportError:
        raise ModelError(
            "int8 calibration needs the nncf package, which is not installed: "
            "pip install 'napari-livecell[int8]'"
        ) from None
    logging.getLogger("nncf").setLevel(logging.WARNING)  # one INFO line per operation otherwise
    return nncf


def _crop(frame: np.ndarray) -> np.ndarray:
    rows, cols = frame.shape[:2]
    top = max(0, (rows - CALIBRATION_CROP) // 2)
    left = max(0, (cols - CALIBRATION_CROP) // 2)
    return frame[top : top + CALIBRATION_CROP, left : left + CALIBRATION_CROP]


def calibration_tensors(model, frames: Iterable[np.ndarray], limit: int) -> Iterator[np.ndarray]:
    """Network inputs for ``frames``, made as inference makes them (polarity, 8-bit scale, letterbox)."""
    from .frame_input import frame_polarity, invert, to_bgr
    from .network_input import network_tensor
    from .openvino_direct import network_window
    from .predict import PredictSettings

    settings = PredictSettings()
    count = 0
    for frame in frames:
        if count >= limit:
            return
        frame = _crop(np.asarray(frame))
        bgr = to_bgr(frame)
        if bgr.min() == bgr.max():
            continue  # a blank frame: the network would see one gray level, nothing to calibrate on
        if frame_polarity(frame, settings, model.modality).inverted:
            bgr = invert(bgr)
        count += 1
        yield network_tensor(network_window(bgr, model, settings)[0])


def head_scope(network) -> list[str]:
    """Operations kept in float32: every sigmoid, and the head's box decoding after its convolutions.

    The head's convolutions (box, score and mask-coefficient branches and the
    mask prototypes, a large share of the arithmetic at 1/4 resolution) run
    in int8; what follows them (the distribution-focal box decoding, anchors,
    strides) and every sigmoid stay in float32.
    """
    operations = network.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in operations if op.get_type_name() == "Sigmoid"]
    head = sigmoids[-1].lstrip("/").split("/", 1)[0] if sigmoids else None  # e.g. "model.22"
    branches = tuple(f"/{head}/{branch}" for branch in ("cv2.", "cv3.", "cv4.", "proto/"))
    kept = []
    for op in operations:
        name = op.get_friendly_name()
        in_head = head is not None and name.lstrip("/").startswith((f"{head}/", f"{head}."))
        if op.get_type_name() == "Sigmoid" or (in_head and not name.startswith(branches)):
            kept.append(name)
    return kept


def quantize_int8(
    weights: str | os.PathLike | None,
    frames: Iterable[np.ndarray],
    max_frames: int = MAX_CALIBRATION_FRAMES,
    sources: list[str] | None = None,
) -> Calibration:
    """Calibrate and save the int8 model of ``weights`` on ``frames`` (up to ``max_frames``).

    Parameters
    ----------
    weights : path, optional
        A ``.pt`` or ``.onnx`` YOLO-seg model; ``None``: the shipped one.
    frames : iterable of numpy.ndarray
        The user's own 2-D frames (grey or RGB), as they will be segmented.
    max_frames : int
        How many frames are used (20-30 cover a look; more cost time only).
    sources : list of str, optional
        Where the frames came from, recorded beside the model.

    Returns
    -------
    Calibration
        The int8 model's folder (replacing an earlier calibration of the same
        weights atomically), frames used and seconds taken.

    Raises
    ------
    ModelError
        nncf or OpenVINO missing, no frames, or a model that cannot be exported.
    """
    import time

    started = time.perf_counter()
    nncf = _import_nncf()
    import openvino

    from napari_livecell.core.models.model import _load_runtime, load_model
    from napari_livecell.core.models.runtime import int8_folder, openvino_export

    model = load_model(weights, device="cpu", runtime="openvino")
    tensors = list(calibration_tensors(model, frames, max_frames))
    if not tensors:
        raise ModelError(
            "no frames to calibrate the int8 model on (blank frames, one gray level, are left out)"
        )
    float_folder = openvino_export(model.path)
    network = openvino.Core().read_model(str(next(float_folder.glob("*.xml"))))
    quantized = nncf.quantize(
        network,
        nncf.Dataset(tensors),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(tensors),
        ignored_scope=nncf.IgnoredScope(names=head_scope(network)),
    )
    target = int8_folder(model.path)
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        built.mkdir()
        openvino.save_model(quantized, str(built / "model.xml"), compress_to_fp16=False)
        shutil.copyfile(float_folder / "metadata.yaml", built / "metadata.yaml")
        record = {"frames": len(tensors), "sources": list(sources or [])[:100], "nncf": nncf.__version__}
        (built / "calibration.json").write_text(json.dumps(record, indent=1))
        old = Path(scratch) / "replaced"
        if target.exists():
            os.replace(target, old)  # a rename each way: a reader never meets a half-written model
        os.replace(built, target)
    _load_runtime.cache_clear()  # the next run loads the new calibration
    return Calibration(target, len(tensors), time.perf_counter() - started)
