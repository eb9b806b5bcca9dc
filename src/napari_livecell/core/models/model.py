"""Loading YOLO-seg models: the shipped default or the user's weights.

This is the only module that turns a model choice (a :class:`.source.ModelSource`)
into a model. An ``.onnx`` file runs with ONNX Runtime or OpenVINO and its own
metadata (:mod:`.engines`), without PyTorch or Ultralytics; a ``.pt`` goes
through Ultralytics (the ``train`` extra), checked first for what Ultralytics
would otherwise "fix" by going online (a missing ``.pt`` is downloaded from
GitHub by name). Every failure is a :class:`ModelError` whose message names
the file and the problem.
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
# the PyTorch checkpoint training starts from, and its ONNX export that inference runs by default
DEFAULT_MODEL = MODELS_DIR / "livecell-synth-yolov8n-seg.pt"
DEFAULT_ONNX = DEFAULT_MODEL.with_suffix(".onnx")
# micrometres per pixel of the shipped model's training frames: core.synthetic draws cells
# at LIVECell's size in pixels, and LIVECell is imaged at 1.24 um/px (docs/pixel_size.md)
DEFAULT_MODEL_PIXEL_SIZE_UM = 1.24
SUPPORTED_SUFFIXES = {".pt": "PyTorch", ".onnx": "ONNX", ".torchscript": "TorchScript"}


@dataclass
class LoadedModel:
    """A YOLO-seg model ready for inference.

    Attributes
    ----------
    yolo : ultralytics.YOLO or None
        The Ultralytics model object (``None`` when an engine runs it).
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
    engine : object or None
        What runs the forward pass without Ultralytics (:mod:`.engines`),
        ``None`` when Ultralytics' predictor runs it (``runtime`` torch).
    stride : int
        The network's largest stride: inputs are multiples of it.
    input_shape : tuple of int or None
        The fixed ``(height, width)`` input of a static export, ``None`` when
        flexible (see ``input_shape_found``).
    input_shape_found : bool
        Whether ``input_shape`` is known: an engine's is at load, a PyTorch
        model's once it has run.
    """

    yolo: Any
    path: Path
    class_names: dict[int, str]
    device: str
    imgsz: int | None = None
    metadata: dict = field(default_factory=dict)
    runtime: str = "torch"
    engine: Any = None
    stride: int = 32
    # an engine's is known at load; a PyTorch model's is found on first use
    # (napari_livecell.core.inference.predict.model_input_shape)
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
    if path is not None and Path(path).resolve() in (DEFAULT_MODEL.resolve(), DEFAULT_ONNX.resolve()):
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
        A torch device string (``"cpu"`` where PyTorch is not installed).
    """
    from .runtime import package_installed

    if str(device).strip().lower() == "cpu":
        return "cpu"  # without importing torch (2 s)
    if not package_installed("torch"):
        if device in (None, "", "auto"):
            return "cpu"
        raise ModelError(
            f"device {device!r} needs PyTorch, which this install lacks: "
            "pip install 'napari-livecell[train]' (or use device cpu)"
        )
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
    from .runtime import package_installed

    devices = ["auto", "cpu"]
    if not package_installed("torch"):
        return devices
    import torch

    devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def default_weights(runtime: str | None = "auto") -> Path:
    """The shipped model for ``runtime``: its ``.onnx``, or its ``.pt`` where PyTorch runs it.

    The ``.pt`` for ``torch``, and for ``auto`` where no ONNX runtime is
    installed but PyTorch is.
    """
    from .runtime import RUNTIME_TABLE, runtime_installed

    name = (runtime or "auto").strip().lower()
    if not runtime_installed("torch"):
        return DEFAULT_ONNX
    engines = any(entry.auto and runtime_installed(entry.name) for entry in RUNTIME_TABLE.values())
    return DEFAULT_MODEL if name == "torch" or (name == "auto" and not engines) else DEFAULT_ONNX


def check_weights_path(weights: str | os.PathLike | None, runtime: str | None = "auto") -> Path:
    """Validate a weights path before any loader reads it (``None``: :func:`default_weights`).

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
    path = default_weights(runtime) if weights is None else Path(weights).expanduser()
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
    from .runtime import runtime_installed

    if path.suffix.lower() == ".pt" and runtime_installed("torch"):
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


def _describe_error(error: BaseException) -> str:
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}"


def _onnx_description(path: Path) -> tuple[dict[int, str], int | None, int, dict]:
    """Class names, image size, stride and provenance that an ``.onnx`` file carries; refuses other tasks."""
    from .engines import onnx_model_info

    info = onnx_model_info(path)
    if info.task not in (None, "segment"):
        task = _describe_task(info.task)
        raise ModelError(f"{path.name} is {task}; a segmentation (YOLO-seg) model is needed")
    imgsz = max(info.imgsz) if info.imgsz else None
    return info.names, imgsz, info.stride, info.metadata


@lru_cache(maxsize=4)
def _load_runtime(path: Path, mtime_ns: int, runtime: str) -> LoadedModel:
    """``path`` run by ``runtime``'s engine: an ``.onnx`` directly, a ``.pt`` through its cached export."""
    from .runtime import open_engine

    if path.suffix.lower() == ".onnx":
        names, imgsz, stride, metadata = _onnx_description(path)
    else:
        original = _load_cached(path, mtime_ns, "cpu")  # the checkpoint's names and provenance
        names, imgsz, metadata = dict(original.class_names), original.imgsz, dict(original.metadata)
        stride = 32
    try:
        engine, _ = open_engine(path, runtime)
    except ModelError:
        raise
    except Exception as error:  # export, conversion and the runtimes' readers raise many types
        raise ModelError(f"cannot prepare {path.name} for {runtime}: {_describe_error(error)}") from None
    if engine.n_outputs != 2:
        raise ModelError(
            f"{path.name} has {engine.n_outputs} output(s), not a YOLO-seg model's 2 (boxes and mask "
            "prototypes): a detection-only model? A segmentation (YOLO-seg) model is needed"
        )
    return LoadedModel(
        yolo=None,
        path=path,
        class_names=names,
        device="cpu",
        imgsz=imgsz,
        metadata=metadata,
        runtime=runtime,
        engine=engine,
        stride=stride,
        input_shape=engine.input_shape,
        input_shape_found=True,
    )


def _plan_load(source: Any, device: str | None, runtime: str | None) -> tuple[str, Path, str, str]:
    """The runtime asked, the weights file, the device and the runtime that will run it (a file source)."""
    from .runtime import check_runtime_name, choose_runtime, runtime_installed

    if runtime is None:
        runtime = "torch" if runtime_installed("torch") else "auto"
    asked = check_runtime_name(runtime)
    path = check_weights_path(source.path, asked)
    cpu_only = asked not in ("auto", "torch") or (asked == "auto" and path.suffix.lower() == ".onnx")
    if cpu_only and device in (None, "", "auto"):
        device = "cpu"  # the runtime decides: ONNX Runtime and OpenVINO run on the CPU
    device = resolve_device(device)
    return asked, path, device, choose_runtime(asked, path, device)


def runs_through_ultralytics(
    weights: str | os.PathLike | None = None, runtime: str | None = None, device: str | None = None
) -> bool:
    """Whether running ``weights`` needs PyTorch and Ultralytics imported first.

    An ONNX model that ONNX Runtime or OpenVINO runs needs neither (importing
    them cost ~10 s of a first run in napari on an install that has them), a
    service segments elsewhere; a ``.pt`` (its export may be made now), the
    torch runtime and Triton do. Where the choice fails (a missing file, a bad
    name), the answer is ``True``: the load then reports the problem as before.
    """
    from .runtime import RUNTIME_TABLE
    from .source import ModelSource

    source = ModelSource.parse(weights)
    if source.kind != "file":
        return source.kind == "triton"
    try:
        _asked, path, _device, chosen = _plan_load(source, device, runtime)
    except (ModelError, ValueError, OSError):
        return True
    return RUNTIME_TABLE[chosen].engine is None or path.suffix.lower() != ".onnx"


def load_model(
    weights: str | os.PathLike | LoadedModel | None = None,
    device: str | None = None,
    runtime: str | None = None,
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
        What runs the forward pass (:data:`.runtime.RUNTIME_TABLE`):
        ``"torch"`` (Ultralytics' predictor), ``"onnxruntime"``, ``"openvino"``
        (CPU only; a ``.pt`` is exported once and cached; an ``.onnx`` runs
        as it is), or ``"auto"``: the first installed of ONNX Runtime and
        OpenVINO on the CPU, else PyTorch. ``auto`` falls back to PyTorch
        (with a log warning) when the export fails. ``None`` (default):
        ``torch`` where it is installed, else ``auto``.

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
    from .source import ModelSource

    source = ModelSource.parse(weights)
    if source.kind == "triton":  # the network runs on that server
        from .triton import check_triton_model

        check_triton_model(str(source.location))  # every time: a one-line error while the server is down
        return _load_triton(str(source.location))
    if source.kind == "service":
        raise ModelError(f"{source} is a napari-livecell service, not a model file: segment through it")
    asked, path, device, chosen = _plan_load(source, device, runtime)
    mtime_ns = path.stat().st_mtime_ns
    if chosen == "torch":
        return _load_cached(path, mtime_ns, device)
    try:
        return _load_runtime(path, mtime_ns, chosen)
    except ModelError as error:
        from .runtime import runtime_installed

        if asked != "auto" or not runtime_installed("torch"):
            raise
        logging.getLogger(__name__).warning("%s; running it with torch instead", error)
        return _load_cached(path, mtime_ns, device)
