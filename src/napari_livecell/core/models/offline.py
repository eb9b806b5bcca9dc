"""Keep Ultralytics offline: the one place that configures it before import.

Ultralytics reaches the network in several places even when nothing needs it
(observed with 8.4; docs/ultralytics.md has the whole list):

* ``import ultralytics`` makes a DNS "online" check unless ``YOLO_OFFLINE`` is
  set *before* the import; the same flag gates analytics and update checks;
* every train/val calls ``check_font("Arial.ttf")``, which downloads the font
  unless it already sits in ``$YOLO_CONFIG_DIR/Ultralytics``;
* ONNX export pip-installs ``onnxslim`` unless auto-install is off;
* ``YOLO("name.pt")`` downloads weights when the file is missing.

:func:`import_ultralytics` is the only way the package imports Ultralytics.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from types import ModuleType

_ENVIRONMENT = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "false",
}


def config_dir() -> Path:
    """Folder the plugin gives Ultralytics for its settings and font.

    ``NAPARI_LIVECELL_HOME`` overrides the default ``~/.cache/napari-livecell``;
    an unwritable home falls back to the temporary folder.
    """
    home = os.environ.get("NAPARI_LIVECELL_HOME")
    candidates = [Path(home)] if home else []
    candidates.append(Path.home() / ".cache" / "napari-livecell")
    candidates.append(Path(tempfile.gettempdir()) / "napari-livecell")
    for candidate in candidates:
        try:
            folder = candidate / "ultralytics"
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".write-test"
            probe.touch()
            probe.unlink()
            return folder
        except OSError:
            continue
    raise OSError("no writable folder for Ultralytics settings was found")


def _install_font(folder: Path) -> None:
    """Give Ultralytics its Arial.ttf so that train/val never fetch it.

    Matplotlib (an Ultralytics dependency) ships DejaVu Sans, a free font that
    serves the same purpose: labels on training plots.
    """
    target = folder / "Ultralytics" / "Arial.ttf"
    if target.exists():
        return
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def configure_environment() -> Path:
    """Set Ultralytics' environment (idempotent); return its config folder.

    Values the user has set explicitly are kept, except ``YOLO_OFFLINE`` and
    ``YOLO_AUTOINSTALL``, which this plugin never lets go online.
    """
    for key, value in _ENVIRONMENT.items():
        if key == "YOLO_VERBOSE":
            os.environ.setdefault(key, value)
        else:
            os.environ[key] = value
    folder = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir())))
    folder.mkdir(parents=True, exist_ok=True)
    _install_font(folder)
    return folder


def _keep_triton_out() -> None:
    """Stop torch from importing triton, which this plugin never uses.

    The first prediction imports ``torch._dynamo``, which imports triton if it
    is installed (CUDA builds of torch bring it). triton's bundled LLVM clashes
    with the LLVM inside Mesa's OpenGL driver that napari loads: the process
    dies with a segmentation fault (measured with torch 2.14, triton 3.8,
    Mesa llvmpipe under Xvfb). Without triton torch simply reports that it has
    none. ``NAPARI_LIVECELL_ALLOW_TRITON=1`` turns this off.
    """
    if os.environ.get("NAPARI_LIVECELL_ALLOW_TRITON") == "1":
        return
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]


@lru_cache(maxsize=1)
def import_ultralytics() -> ModuleType:
    """Import Ultralytics with every network path closed.

    Returns
    -------
    types.ModuleType
        The ``ultralytics`` module.
    """
    configure_environment()
    _keep_triton_out()
    import ultralytics
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    # Ultralytics pins torch to cpu_count - 1 threads (1 on a 2-core machine,
    # nearly twice as slow there); use every core.
    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = max(1, os.cpu_count() or 1)
    return ultralytics
