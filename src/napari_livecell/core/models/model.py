"""Loading YOLO-seg models: the shipped default or the user's weights.

This is the only module that turns a path into an Ultralytics model. It checks
what Ultralytics would otherwise "fix" by going online (a missing ``.pt`` is
downloaded from GitHub by name) and turns every failure into a
:class:`ModelError` whose message names the file and the problem.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from napari_livecell.core.errors import ModelError

# the shipped weights are package data of napari_livecell (a plain folder on disk once installed)
MODELS_DIR = Path(str(files("napari_livecell") / "models"))
DEFAULT_MODEL = MODELS_DIR / "livecell-synth-yolov8n-seg.pt"
# micrometres per pixel of the shipped model's training frames: core.synthetic draws cells
# at LIVECell's size in pixels, and LIVECell is imaged at 1.24 um/px (docs/pixel_size.md)
DEFAULT_MODEL_PIXEL_SIZE_UM = 1.24
SUPPORTED_SUFFIXES = {".pt": "PyTorch", ".onnx": "ONNX", ".torchscript": "TorchScript"}


@dataclass
class LoadedModel:
    """A YOLO-seg model ready for inference.

    Attributes
    ----------
    yolo : ultralytics.YOLO
        The Ultralytics model object.
    path : Path
        Weights file.
    class_names : dict
        Class id -> name, as stored in the weights.
    device : str
        Torch device string the model runs on.
    imgsz : int
        Image size the model was trained at (a hint; inference may differ).
    metadata : dict
        Provenance stored by ``napari-livecell train`` (empty for other weights).
    runtime : str
        What runs the forward pass: ``torch`` (Ultralytics' own loader, which
        also covers ``.onnx`` and ``.torchscript`` files), ``onnxruntime`` or
        ``openvino`` (:mod:`.runtime`; ``path`` stays the weights the user chose).
    """

    yolo: Any
    path: Path
    class_names: dict[int, str]
    device: str
    imgsz: int | None = None
    metadata: dict = field(default_factory=dict)
    runtime: str = "torch"
    # fixed (height, width) input of a static export, None when flexible;
    # found on first use by napari_livecell.core.inference.predict.model_input_shape
    input_shape: tuple[int, int] | None = None
    input_shape_found: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        """File name of the weights."""
        return self.path.name

    @property
    def modality(self) -> str:
        """What the model was trained on: ``"phase"`` or ``"fluorescence"``.

        Read from ``checkpoint["napari_livecell"]["modality"]``; weights that do
        not say (the shipped model, ONNX exports, other YOLO models) are taken
        as phase contrast, what this plugin's models learn from.
        """
        value = self.metadata.get("modality", "phase")
        return value if value in ("phase", "fluorescence") else "phase"

    @property
    def pixel_size_um(self) -> float | None:
        """Micrometres per pixel of the model's training frames (``None``: the model does not say).

        See :func:`checkpoint_pixel_size`.
        """
        return checkpoint_pixel_size(self.metadata, self.path)


def checkpoint_pixel_size(metadata: dict, path: str | os.PathLike | None = None) -> float | None:
    """The training pixel size that a model's ``napari_livecell`` metadata states, in micrometres.

    Read from ``metadata["pixel_size_um"]``; the shipped default model, whose
    checkpoint predates the key, is documented as
    :data:`DEFAULT_MODEL_PIXEL_SIZE_UM`. Other weights that do not say (ONNX
    exports, other YOLO models) give ``None``: their frames are not resampled.

    Parameters
    ----------
    metadata : dict
        ``checkpoint["napari_livecell"]`` (may be empty).
    path : path, optional
        The weights file, to recognise the shipped model.
    """
    value = metadata.get("pixel_size_um") if isinstance(metadata, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    if path is not None and Path(path).resolve() == DEFAULT_MODEL.resolve():
        return DEFAULT_MODEL_PIXEL_SIZE_UM
    return None


def resolve_device(device: str | None = None) -> str:
    """Turn ``None``/``"auto"`` into the best available device.

    Parameters
    ----------
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.

    Returns
    -------
    str
        A torch device string.
    """
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda:0"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    device = str(device).strip().lower()
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} requested but CUDA is not available")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
        return f"cuda:{index}"
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError("device 'mps' requested but it is not available")
        return "mps"
    raise ModelError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")


def available_devices() -> list[str]:
    """Device choices for a picker: ``auto``, ``cpu``, then every GPU torch can use here."""
    import torch

    devices = ["auto", "cpu"]
    devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_weights_path(weights: str | os.PathLike | None) -> Path:
    """Validate a weights path before Ultralytics sees it (``None`` is the default model).

    Checks that the file exists and has a supported suffix; a ``.pt`` is also
    read with the restricted unpickler of :mod:`napari_livecell.core.models.safe_load`,
    so that a file carrying a pickle payload is refused here, before any
    other loader touches it.

    Raises
    ------
    ModelError
        Missing, empty or unsupported files; a ``.pt`` that needs a type a
        model checkpoint does not hold (named in the message) or cannot be read.
    """
    path = DEFAULT_MODEL if weights is None else Path(weights).expanduser()
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"model path is a folder, not a weights file: {path}")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ModelError(
            f"unsupported model format {path.suffix or '(no suffix)'!r} for {path.name}: "
            "use a YOLO segmentation model as .pt, .onnx or .torchscript"
        )
    if path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")
    path = path.resolve()
    if path.suffix.lower() == ".pt":
        stat = path.stat()
        _check_pickle(path, stat.st_mtime_ns, stat.st_size)
    return path


@lru_cache(maxsize=16)
def _check_pickle(path: Path, mtime_ns: int, size: int) -> None:
    """Load a ``.pt`` with the restricted unpickler once per file version (see core.safe_load).

    A ``.pt`` is a pickle that could run code when opened; every entry point
    (CLI, widget, service) validates its path here before anything else opens it.
    """
    from napari_livecell.core.models.safe_load import check_checkpoint

    check_checkpoint(path)


def _describe_task(task: str | None) -> str:
    return {
        "detect": "a detection-only model (boxes, no masks)",
        "classify": "a classification model",
        "pose": "a pose model",
        "obb": "an oriented-box detection model",
        "semantic": "a semantic segmentation model",
    }.get(task or "", f"a {task!r} model")


@lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int, device: str) -> LoadedModel:
    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    from napari_livecell.core.models.safe_load import use_in_ultralytics

    use_in_ultralytics()
    try:
        yolo = YOLO(str(path))
    except ModelError:
        raise
    except Exception as error:  # Ultralytics raises many types for bad files
        kind = SUPPORTED_SUFFIXES[path.suffix.lower()]
        raise ModelError(
            f"cannot read {path.name} as a {kind} YOLO model (corrupt or not a YOLO "
            f"file): {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    if yolo.task != "segment":
        raise ModelError(
            f"{path.name} is {_describe_task(yolo.task)}; a segmentation (YOLO-seg) model is needed"
        )
    checkpoint = getattr(yolo, "ckpt", None) or {}
    metadata = checkpoint.get("napari_livecell", {}) if isinstance(checkpoint, dict) else {}
    train_args = checkpoint.get("train_args", {}) if isinstance(checkpoint, dict) else {}
    imgsz = train_args.get("imgsz") if isinstance(train_args, dict) else None
    if path.suffix.lower() == ".pt":
        yolo.to(device)
    names = {int(k): str(v) for k, v in (yolo.names or {0: "cell"}).items()}
    return LoadedModel(
        yolo=yolo,
        path=path,
        class_names=names,
        device=device,
        imgsz=imgsz if isinstance(imgsz, int) else None,
        metadata=dict(metadata),
    )


@lru_cache(maxsize=4)
def _load_triton(spec: str) -> LoadedModel:
    """A model whose network runs on a Triton server: its client is made once per spec."""
    from .triton import connect_triton_model

    yolo, names, imgsz, dynamic = connect_triton_model(spec)
    name = Path(spec.rpartition("/")[2])
    # device: where the host's side of it (tensors sent and received) lives
    loaded = LoadedModel(yolo=yolo, path=name, class_names=names, device="cpu", imgsz=imgsz)
    if dynamic:
        # any stride-32 frame, as for a PyTorch model
        loaded.input_shape, loaded.input_shape_found = None, True
    return loaded


@lru_cache(maxsize=4)
def _load_runtime(path: Path, mtime_ns: int, runtime: str) -> LoadedModel:
    """``path`` exported for ``runtime`` (cached on disk), with the original weights' names and metadata."""
    from .runtime import load_for_runtime

    original = _load_cached(path, mtime_ns, "cpu")
    try:
        yolo, _ = load_for_runtime(path, runtime)
    except ModelError:
        raise
    except Exception as error:  # export and conversion raise many types
        message = str(error).splitlines()[0] if str(error) else ""
        problem = f"{type(error).__name__}: {message}"
        raise ModelError(f"cannot prepare {path.name} for {runtime}: {problem}") from None
    return LoadedModel(
        yolo=yolo,
        path=original.path,
        class_names=dict(original.class_names),
        device="cpu",
        imgsz=original.imgsz,
        metadata=dict(original.metadata),
        runtime=runtime,
    )


def load_model(
    weights: str | os.PathLike | LoadedModel | None = None,
    device: str | None = None,
    runtime: str | None = "torch",
) -> LoadedModel:
    """Load (once, then from a cache) a YOLO segmentation model.

    Parameters
    ----------
    weights : path or LoadedModel, optional
        ``.pt``, ``.onnx`` or ``.torchscript`` weights; the shipped default
        model when omitted; ``triton+http://HOST:PORT/MODEL`` for a model on a
        Triton server (:mod:`.triton`). A :class:`LoadedModel` is returned unchanged.
    device : str, optional
        ``"auto"`` (default: CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:N"``...
    runtime : str, optional
        What runs the forward pass (:mod:`.runtime`): ``"torch"`` (default),
        ``"onnxruntime"``, ``"openvino"`` (CPU only; the model is exported
        once and cached), or ``"auto"``: OpenVINO, then ONNX Runtime when
        installed and the device is the CPU, else PyTorch. ``auto`` falls back
        to PyTorch (with a log warning) when the export fails.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        Missing, empty, corrupt or unsupported files, models that do not
        segment (the message says which task the file holds), and a runtime
        whose package is missing or that cannot run this file or device.
    """
    if isinstance(weights, LoadedModel):
        return weights
    from .triton import check_triton_model, is_triton_spec

    if is_triton_spec(weights):  # triton+http://HOST:PORT/MODEL: the network runs on that server
        check_triton_model(str(weights))  # every time: a one-line error while the server is down
        return _load_triton(str(weights))
    from .runtime import check_runtime_name, choose_runtime

    asked = check_runtime_name(runtime)
    path = check_weights_path(weights)
    if asked in ("onnxruntime", "openvino", "openvino-int8") and device in (None, "", "auto"):
        device = "cpu"  # the runtime named decides: it runs on the CPU
    device = resolve_device(device)
    chosen = choose_runtime(asked, path, device)
    mtime_ns = path.stat().st_mtime_ns
    if chosen == "torch":
        return _load_cached(path, mtime_ns, device)
    try:
        return _load_runtime(path, mtime_ns, chosen)
    except ModelError as error:
        if asked != "auto":
            raise
        logging.getLogger(__name__).warning("%s; running it with torch instead", error)
        return _load_cached(path, mtime_ns, device)
