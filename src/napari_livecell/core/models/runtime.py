"""Which library runs the network's forward pass on the CPU: PyTorch, ONNX Runtime or OpenVINO.

A ``.pt`` model runs with PyTorch as trained. On a CPU, the same network
exported to ONNX and run by ONNX Runtime or OpenVINO is faster
(benchmarks/README.md has the numbers), with the same cells. This module
exports a model once per weights file, keeps the export in the plugin's cache
folder, and sets each runtime up the way the masks stay the same as PyTorch's:
float32 arithmetic (OpenVINO would otherwise use bfloat16 on CPUs that have
it), every core, and no busy-waiting threads that would slow the
post-processing running beside the forward pass.

Everything before and after the forward pass (letterboxing, NMS, masks) stays
Ultralytics' and ours: only the network changes hands. (An OpenVINO model runs
native-size windows without Ultralytics' predictor, with the same numbers, so
that a stack's frames can run side by side: :mod:`.openvino_direct`.)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from napari_livecell.core.errors import ModelError

from .openvino_model import StaticShapes

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino", "openvino-int8")
# the package each runtime imports, and the extra that installs it
RUNTIME_PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "openvino"),
    # runs with OpenVINO alone; calibrating it (core.quantize) needs nncf too
    "openvino-int8": ("openvino", "int8"),
}
OPENVINO_RUNTIMES = ("openvino", "openvino-int8")
AUTO_ORDER = ("openvino", "onnxruntime")  # fastest first, as measured in benchmarks/README.md
EXPORTABLE_SUFFIXES = (".pt", ".onnx")
# 520 x 704 LIVECell frames letterbox to 544 x 704 (stride 32); a square
# 704 x 704 static export would pad every frame and run slower
DEFAULT_EXPORT_SIZE = (544, 704)


def check_runtime_name(runtime: str | None) -> str:
    """``runtime`` lower-cased, ``None``/empty as ``"auto"``; a one-line ``ValueError`` for unknown names."""
    name = (runtime or "auto").strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}")
    return name


def runtime_installed(runtime: str) -> bool:
    """Whether the package that ``runtime`` needs can be imported (``torch`` always can)."""
    if runtime == "torch":
        return True
    package = RUNTIME_PACKAGES[runtime][0]
    if package in sys.modules:  # imported already, or blocked (None)
        return sys.modules[package] is not None
    # found without importing it: a picker is built on the GUI thread
    return importlib.util.find_spec(package) is not None


def available_runtimes() -> list[str]:
    """Runtime choices for a picker: ``auto``, ``torch``, then every installed faster runtime."""
    faster = ("onnxruntime", "openvino", "openvino-int8")
    return ["auto", "torch", *[name for name in faster if runtime_installed(name)]]


def choose_runtime(runtime: str | None, weights: Path, device: str) -> str:
    """The runtime that will run ``weights`` on ``device``: ``auto`` made concrete, others checked.

    Parameters
    ----------
    runtime : str
        ``auto``, ``torch``, ``onnxruntime`` or ``openvino``.
    weights : Path
        The model file (``.pt``, ``.onnx``, ``.torchscript``).
    device : str
        The torch device the model would run on (:func:`.model.resolve_device`).

    Returns
    -------
    str
        ``auto`` picks OpenVINO, then ONNX Runtime, on a CPU for ``.pt`` and
        ``.onnx`` files; PyTorch otherwise. For an ``.onnx`` file ``torch``
        means Ultralytics' own ONNX Runtime session. ``openvino-int8`` is
        never picked by ``auto`` (its masks are close, not equal: see
        :mod:`.quantize`).

    Raises
    ------
    ModelError
        A runtime whose package is missing, one asked to run on a GPU, or one
        that cannot read this kind of file.
    """
    name = check_runtime_name(runtime)
    suffix = weights.suffix.lower()
    if name == "auto":
        if device != "cpu" or suffix not in EXPORTABLE_SUFFIXES:
            return "torch"
        return next((choice for choice in AUTO_ORDER if runtime_installed(choice)), "torch")
    if name == "torch":
        return name
    package, extra = RUNTIME_PACKAGES[name]
    if not runtime_installed(name):
        raise ModelError(
            f"runtime {name!r} needs the {package} package, which is not installed: "
            f"pip install 'napari-livecell[{extra}]' (or choose runtime torch)"
        )
    if device != "cpu":
        raise ModelError(f"runtime {name!r} runs on the CPU, not {device}: use device cpu or runtime torch")
    if suffix not in EXPORTABLE_SUFFIXES:
        raise ModelError(f"runtime {name!r} runs .pt and .onnx models, not {weights.name}: use runtime torch")
    return name


def cache_folder() -> Path:
    """Where exports made for a runtime are kept: ``runtimes/`` beside the plugin's Ultralytics settings."""
    from .offline import config_dir

    folder = config_dir().parent / "runtimes"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@lru_cache(maxsize=16)
def _content_hash(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def export_key(weights: Path, runtime: str) -> str:
    """A cache name that changes with the weights' content and the versions that made the export."""
    from .offline import import_ultralytics

    ultralytics = import_ultralytics()  # never a bare import: it would go online

    stat = weights.stat()
    content = _content_hash(weights, stat.st_mtime_ns, stat.st_size)
    key = f"{weights.stem}-{content}-ultralytics{ultralytics.__version__}"
    if runtime in OPENVINO_RUNTIMES:
        import openvino

        key += f"-openvino{openvino.__version__.split('-')[0]}"
    return key


def _publish(build, target: Path) -> Path:
    """Build ``target`` (a file or a folder) in a scratch folder beside it, then move it into place.

    A crash or a second process exporting the same model never leaves a half-written
    export under the final name: the rename is atomic, and the first one to finish wins.
    """
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target.parent) as scratch:
        built = build(Path(scratch))
        try:
            os.replace(built, target)
        except OSError:
            if not target.exists():
                raise
    return target


def write_onnx(
    weights: Path, out: Path, imgsz: int | tuple[int, int] = DEFAULT_EXPORT_SIZE, dynamic: bool = True
) -> Path:
    """Export a checked YOLO-seg ``.pt`` file (:func:`.model.check_weights_path`) to ONNX with Ultralytics.

    Offline: no simplifier is installed or run. Ultralytics writes its export
    beside the weights, so it works on a copy: a read-only install (or the
    shipped model's folder) is never written to, even by a failed export.
    ``out`` is replaced atomically.
    """
    from ultralytics import YOLO

    from napari_livecell.core.models.offline import import_ultralytics
    from napari_livecell.core.models.safe_load import use_in_ultralytics

    import_ultralytics()
    use_in_ultralytics()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="napari-livecell-export-") as scratch:
        weights_copy = Path(scratch) / weights.name
        shutil.copyfile(weights, weights_copy)
        # a fresh model object: export mutates the one it runs on
        exported = YOLO(str(weights_copy)).export(
            format="onnx",
            imgsz=list(imgsz) if isinstance(imgsz, tuple) else imgsz,
            dynamic=dynamic,
            simplify=False,
            device="cpu",
            verbose=False,
        )
        temporary = out.with_suffix(".onnx.tmp")
        shutil.move(str(exported), temporary)
        os.replace(temporary, out)
    return out


def write_openvino(onnx_path: Path, folder: Path) -> Path:
    """Convert a YOLO-seg ONNX export to an OpenVINO IR folder Ultralytics can load.

    The folder holds ``model.xml``, ``model.bin`` (float32 weights: OpenVINO's
    default of float16 weights would change the masks) and the ONNX file's
    Ultralytics metadata as ``metadata.yaml``. OpenVINO's own ONNX reader is
    used: Ultralytics' OpenVINO export checks for (and may try to install)
    packages, and ``openvino.convert_model`` may send usage telemetry.
    """
    import openvino
    from ultralytics.nn.backends.base import BaseBackend
    from ultralytics.utils import YAML

    folder.mkdir(parents=True, exist_ok=True)
    network = openvino.Core().read_model(str(onnx_path))
    openvino.save_model(network, str(folder / "model.xml"), compress_to_fp16=False)
    YAML.save(folder / "metadata.yaml", BaseBackend.read_metadata(onnx_path))
    return folder


def int8_folder(weights: Path) -> Path:
    """Where the int8 model of ``weights`` is kept (one per weights content; made by :mod:`.quantize`)."""
    return cache_folder() / f"{export_key(weights, 'openvino-int8')}_int8_openvino_model"


def onnx_export(weights: Path) -> Path:
    """A dynamic-shape ONNX export of a ``.pt`` model, made once and cached (:func:`cache_folder`)."""
    target = cache_folder() / f"{export_key(weights, 'onnxruntime')}.onnx"
    return _publish(lambda scratch: write_onnx(weights, scratch / "model.onnx"), target)


def openvino_export(weights: Path) -> Path:
    """An OpenVINO IR folder for a ``.pt`` or ``.onnx`` model, made once and cached (see write_openvino)."""
    source = onnx_export(weights) if weights.suffix.lower() == ".pt" else weights
    target = cache_folder() / f"{export_key(weights, 'openvino')}_openvino_model"
    return _publish(lambda scratch: write_openvino(source, scratch / target.name), target)


def runtime_threads() -> int:
    """Threads for the forward pass: every core, as :mod:`.offline` gives PyTorch."""
    return max(1, os.cpu_count() or 1)


def configure_predictor(predictor: Any, runtime: str, model_file: Path) -> None:
    """Replace the session Ultralytics made for an exported model with one set up for speed and equal masks.

    Runs as the predictor's ``on_predict_start`` callback, once per predictor:
    Ultralytics' ONNX Runtime session keeps its default threads, which busy-wait
    between calls, and its OpenVINO model may compute in bfloat16.
    """
    backend = getattr(predictor.model, "backend", None)
    if backend is None or getattr(backend, "livecell_runtime", None) == runtime:
        return
    threads = runtime_threads()
    if runtime == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # spinning threads keep every core busy after each call, starving the post-processing beside it
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        backend.session = onnxruntime.InferenceSession(str(model_file), options, providers=providers)
    elif runtime in OPENVINO_RUNTIMES:
        xml = next(model_file.glob("*.xml"))
        backend.read_model = None  # Ultralytics' own per-shape recompiling (for int8 on AMX) stays off
        backend.ov_compiled_model = StaticShapes(xml, threads)
    backend.livecell_runtime = runtime


def load_for_runtime(weights: Path, runtime: str) -> tuple[Any, Path]:
    """An Ultralytics ``YOLO`` over ``weights`` exported for ``runtime``, and the file it reads.

    ``runtime`` is ``onnxruntime``, ``openvino`` or ``openvino-int8``
    (:func:`choose_runtime`); the int8 model must have been calibrated
    (:func:`.quantize.quantize_int8`).
    """
    from ultralytics import YOLO

    if runtime == "openvino-int8":
        model_file = int8_folder(weights)
        if not model_file.is_dir():
            raise ModelError(
                f"{weights.name} has no int8 calibration yet: run napari-livecell quantize "
                f"--model {weights} IMAGE... on a few of your own frames (or choose runtime openvino)"
            )
    elif runtime == "openvino":
        model_file = openvino_export(weights)
    else:
        model_file = onnx_export(weights) if weights.suffix.lower() == ".pt" else weights
    yolo = YOLO(str(model_file), task="segment")
    configure = partial(configure_predictor, runtime=runtime, model_file=model_file)
    yolo.add_callback("on_predict_start", configure)
    return yolo, model_file
