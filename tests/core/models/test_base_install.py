"""Base-install paths import no PyTorch, torchvision, Ultralytics or OpenCV; a .pt there gets one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

# a meta-path finder that fails every import of the training stack (OpenCV comes with Ultralytics),
# as an install without it would
BLOCK = r"""
import importlib.abc, sys

BLOCKED = ("torch", "torchvision", "ultralytics", "cv2", "ome_zarr")


class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}: not in the base install")
        return None


sys.meta_path.insert(0, Blocked())
"""

BASE_PATHS = (
    BLOCK
    + r"""
import pkgutil, importlib, json
import napari_livecell._qt as qt

from napari_livecell.cli import main
import napari_livecell.cli.segment, napari_livecell.cli.synth, napari_livecell.service  # noqa
import napari_livecell.io.ome_zarr  # noqa  (reading OME-Zarr needs zarr only; writing, the extra)
docks = [m.name for m in pkgutil.iter_modules(qt.__path__)]
for name in docks:
    importlib.import_module(f"napari_livecell._qt.{name}")
out = sys.argv[1]
assert main(["synth", "--out", f"{out}/sample", "--n", "1", "--seed", "0"]) == 0
assert main(["segment", f"{out}/sample/images", "--out", f"{out}/results"]) == 0
# resampled to the model's pixel size, and a frame letterboxed to another network size
assert main(["segment", f"{out}/sample/images", "--pixel-size", "0.5", "--out", f"{out}/resampled"]) == 0
import numpy as np
from napari_livecell.core.inference.network_input import letterbox
assert letterbox(np.zeros((37, 50, 3), np.uint8), (64, 64), 32, False).shape == (64, 64, 3)
# YOLO labels written and read, COCO outlines of a cell in two parts with a hole
from napari_livecell.core.formats.yolo import labels_to_yolo_lines, parse_yolo_lines, yolo_to_labels
from napari_livecell.core.segmentation import mask_rings
labels = np.zeros((40, 40), np.int32)
labels[2:20, 2:20], labels[8:12, 8:12], labels[25:30, 25:35] = 1, 0, 1
lines = labels_to_yolo_lines(labels)
assert yolo_to_labels(parse_yolo_lines("\\n".join(lines)), 40, 40)[0].max() == 1
assert mask_rings(labels == 1)[1] == [False, False, True]
from napari_livecell.core.models.runtime import available_runtimes
print(json.dumps({"docks": docks, "runtimes": available_runtimes(),
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
"""
)


def run_blocked(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_base_paths_import_no_torch_and_segment_the_sample(tmp_path):
    result = run_blocked(BASE_PATHS, str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert {"segment_widget", "proofread_widget", "review_widget", "track_widget"} <= set(report["docks"])
    assert "torch" not in report["runtimes"]
    coco = json.loads((tmp_path / "results" / "predictions.json").read_text())
    assert len(coco["annotations"]) > 20
    assert "runs on cpu with onnxruntime" in result.stderr


def test_the_blocker_blocks(tmp_path):
    result = run_blocked(BLOCK + "import torch\n")
    assert result.returncode != 0 and "blocked import of torch" in result.stderr


def test_a_pt_on_the_base_install_gets_one_line(tmp_path):
    from napari_livecell.core.models.model import DEFAULT_MODEL

    image = tmp_path / "frame.tif"
    code = BLOCK + (
        "import numpy as np, tifffile\n"
        "frame = (np.random.default_rng(0).random((64, 64)) * 255).astype('uint8')\n"
        f"tifffile.imwrite({str(image)!r}, frame)\n"
        "from napari_livecell.cli import main\n"
        f"sys.exit(main(['segment', {str(image)!r}, '--model', {str(DEFAULT_MODEL)!r}, "
        f"'--out', {str(tmp_path / 'out')!r}]))\n"
    )
    result = run_blocked(code)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("napari-livecell: error: ")
    assert (
        "napari-livecell[train]" in lines[0]
        and f"napari-livecell export {Path(DEFAULT_MODEL).name}" in lines[0]
    )
