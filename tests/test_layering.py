"""The core stays free of GUI code, and heavy frameworks load only when used."""

import ast
import subprocess
import sys
from pathlib import Path

import napari_livecell

CORE = Path(napari_livecell.__file__).parent / "core"
GUI_PACKAGES = {"napari", "qtpy", "magicgui", "PyQt6", "PySide6", "vispy"}


def test_core_never_imports_gui_packages():
    offenders = []
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in GUI_PACKAGES]
    assert offenders == []


def test_importing_the_plugin_loads_no_heavy_framework():
    code = (
        "import sys, napari_livecell.core.predict, napari_livecell.core.coco, "
        "napari_livecell._io, napari_livecell._layers, napari_livecell.cli; "
        "heavy = ('torch', 'ultralytics', 'cv2', 'napari', 'onnxruntime'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
