"""Which library runs the network's forward pass: ONNX Runtime, OpenVINO, or PyTorch through Ultralytics.

Runtimes are defined once, in :data:`RUNTIME_TABLE`: a name, the package it
imports, the extra that installs it, and how it opens a model file into an
engine (:mod:`.engines`). Adding a runtime is one entry there.

ONNX Runtime and OpenVINO run an ``.onnx`` file (the shipped default model
is one) with no PyTorch and no Ultralytics: what a base install runs. A
``.pt`` runs with PyTorch as trained, or is exported to ONNX once (which
needs Ultralytics, the ``train`` extra) and kept in the plugin's cache folder.
Each engine is set up so the masks stay PyTorch's: float32 arithmetic,
every core, no busy-waiting threads that would slow the post-processing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from napari_livecell.core.errors import ModelError


@dataclass(frozen=True)
class Runtime:
    """One way to run the network.

    Attributes
    ----------
    name : str
        What the user types (``--runtime``, the dock's picker).
    package : str
        The module it imports (``ultralytics`` for ``torch``).
    extra : str
        The ``pip install 'napari-livecell[EXTRA]'`` that installs it.
    auto : bool
        Whether ``auto`` may pick it (in table order, on the CPU).
    engine : callable or None
        ``engine(model_file, threads)``: an engine (:mod:`.engines`) for an
        ``.onnx`` file or OpenVINO ``.xml``; ``None``: Ultralytics' predictor runs it.
    gpu : bool
        Whether it runs on a GPU too.
    """

    name: str
    package: str
    extra: str
    auto: bool
    engine: Callable[[Path, int], Any] | None
    gpu: bool = False


def _onnxruntime_engine(model_file: Path, threads: int) -> Any:
    from .engines import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model_file, threads)


def _openvino_engine(model_file: Path, threads: int) -> Any:
    from .openvino_model import StaticShapes

    return StaticShapes(model_file, threads)


# fastest first: auto takes the first installed (docs/runtime.md has the measurements)
RUNTIME_TABLE: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        Runtime("onnxruntime", "onnxruntime", "onnx", auto=True, engine=_onnxruntime_engine),
        Runtime("openvino", "openvino", "openvino", auto=True, engine=_openvino_engine),
        # runs with OpenVINO alone; calibrating it (core.inference.quantize) needs nncf too
        Runtime("openvino-int8", "openvino", "int8", auto=False, engine=_openvino_engine),
        Runtime("torch", "ultralytics", "train", auto=False, engine=None, gpu=True),
    )
}
RUNTIMES = ("auto", *RUNTIME_TABLE)
OPENVINO_RUNTIMES = ("openvino", "openvino-int8")
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


def package_installed(package: str) -> bool:
    """Whether ``package`` can be imported, found without importing it (a picker runs on the GUI thread)."""
    if package in sys.modules:  # imported already, or blocked (None)
        return sys.modules[package] is not None
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def runtime_installed(runtime: str) -> bool:
    """Whether the package that ``runtime`` needs can be imported."""
    return package_installed(RUNTIME_TABLE[runtime].package)


def available_runtimes() -> list[str]:
    """Runtime choices for a picker: ``auto``, then every installed runtime in table order."""
    return ["auto", *[name for name in RUNTIME_TABLE if runtime_installed(name)]]


def torch_missing_message(weights: Path) -> str:
    """The one line for a ``.pt`` (or ``.torchscript``) on an install without PyTorch and Ultralytics."""
    return (
        f"{weights.name} is a PyTorch model, and this install runs ONNX models only: "
        "pip install 'napari-livecell[train]' to run it, or convert it once on a machine that has "
        f"that extra (napari-livecell export {weights.name} --out {weights.stem}.onnx) and use the .onnx"
    )


def choose_runtime(runtime: str | None, weights: Path, device: str) -> str:
    """The runtime that will run ``weights`` on ``device``: ``auto`` made concrete, others checked.

    Parameters
    ----------
    runtime : str
        ``auto`` or a name of :data:`RUNTIME_TABLE`.
    weights : Path
        The model file (``.pt``, ``.onnx``, ``.torchscript``).
    device : str
        The device the model would run on (:func:`.model.resolve_device`).

    Returns
    -------
    str
        ``auto`` picks the first installed runtime of the table that may be
        picked (ONNX Runtime, then OpenVINO) on a CPU for ``.pt`` and
        ``.onnx`` files (a ``.pt`` only where Ultralytics can export it);
        PyTorch otherwise. For an ``.onnx`` file ``torch`` means Ultralytics'
        own ONNX Runtime session. ``openvino-int8`` is never picked by
        ``auto`` (its masks are close, not equal: see :mod:`.quantize`).

    Raises
    ------
    ModelError
        A runtime whose package is missing, one asked to run on a GPU, or one
        that cannot read this kind of file.
    """
    name = check_runtime_name(runtime)
    suffix = weights.suffix.lower()
    torch_ok = runtime_installed("torch")
    if name == "auto":
        engines = [r.name for r in RUNTIME_TABLE.values() if r.auto and runtime_installed(r.name)]
        exportable = suffix == ".onnx" or (suffix == ".pt" and torch_ok)
        if device == "cpu" and exportable and engines:
            return engines[0]
        name = "torch"
    spec = RUNTIME_TABLE[name]
    if not runtime_installed(name):
        if name == "torch" and suffix != ".onnx":
            raise ModelError(torch_missing_message(weights))
        raise ModelError(
            f"runtime {name!r} needs the {spec.package} package, which is not installed: "
            f"pip install 'napari-livecell[{spec.extra}]'"
            + (" (or choose runtime torch)" if spec.engine is not None and torch_ok else "")
        )
    if spec.engine is None:
        return name
    if device != "cpu" and not spec.gpu:
        raise ModelError(f"runtime {name!r} runs on the CPU, not {device}: use device cpu or runtime torch")
    if suffix not in EXPORTABLE_SUFFIXES:
        raise ModelError(f"runtime {name!r} runs .pt and .onnx models, not {weights.name}: use runtime torch")
    if suffix == ".pt" and not torch_ok:
        raise ModelError(torch_missing_message(weights))
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
    stat = weights.stat()
    content = _content_hash(weights, stat.st_mtime_ns, stat.st_size)
    key = f"{weights.stem}-{content}"
    if weights.suffix.lower() == ".pt":  # Ultralytics makes the ONNX file of a .pt
        from .offline import import_ultralytics

        ultralytics = import_ultralytics()  # never a bare import: it would go online
        key += f"-ultralytics{ultralytics.__version__}"
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
        _add_provenance(temporary, weights)
        os.replace(temporary, out)
    return out


def _add_provenance(onnx_path: Path, weights: Path) -> None:
    """Keep a checkpoint's ``napari_livecell`` provenance (pixel size, modality) in its ONNX export."""
    import onnx

    from .safe_load import load_checkpoint

    checkpoint = load_checkpoint(weights)
    provenance = checkpoint.get("napari_livecell") if isinstance(checkpoint, dict) else None
    if not isinstance(provenance, dict) or not provenance:
        return
    network = onnx.load(str(onnx_path))
    entry = network.metadata_props.add()
    entry.key, entry.value = "napari_livecell", repr(dict(provenance))
    onnx.save(network, str(onnx_path))


def write_openvino(onnx_path: Path, folder: Path) -> Path:
    """Convert a YOLO-seg ONNX export to an OpenVINO IR folder Ultralytics can load.

    The folder holds ``model.xml``, ``model.bin`` (float32 weights: OpenVINO's
    default of float16 weights would change the masks) and the ONNX file's
    Ultralytics metadata as ``metadata.yaml``. OpenVINO's own ONNX reader is
    used: Ultralytics' OpenVINO export checks for (and may try to install)
    packages, and ``openvino.convert_model`` may send usage telemetry.
    """
    import openvino
    import yaml

    from .engines import onnx_model_info

    info = onnx_model_info(onnx_path)
    folder.mkdir(parents=True, exist_ok=True)
    network = openvino.Core().read_model(str(onnx_path))
    openvino.save_model(network, str(folder / "model.xml"), compress_to_fp16=False)
    metadata = {"task": info.task or "segment", "stride": info.stride, "names": info.names, "batch": 1}
    if info.imgsz:
        metadata["imgsz"] = list(info.imgsz)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
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


def engine_file(weights: Path, runtime: str) -> Path:
    """The file ``runtime``'s engine opens for ``weights``: the ``.onnx`` itself, or an export made once.

    A ``.pt`` is exported to ONNX (needs Ultralytics); ``openvino-int8``
    reads the calibrated model (:func:`.quantize.quantize_int8`). OpenVINO
    reads an ``.onnx`` file directly.
    """
    if runtime == "openvino-int8":
        folder = int8_folder(weights)
        if not folder.is_dir():
            raise ModelError(
                f"{weights.name} has no int8 calibration yet: run napari-livecell quantize "
                f"--model {weights} IMAGE... on a few of your own frames (or choose runtime openvino)"
            )
        return next(folder.glob("*.xml"))
    return onnx_export(weights) if weights.suffix.lower() == ".pt" else weights


def open_engine(weights: Path, runtime: str) -> tuple[Any, Path]:
    """The engine that runs ``weights`` with ``runtime`` (a table entry with an engine), and its file."""
    model_file = engine_file(weights, runtime)
    engine = RUNTIME_TABLE[runtime].engine
    assert engine is not None, runtime
    return engine(model_file, runtime_threads()), model_file
