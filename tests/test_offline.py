"""Nothing reaches the network: inference, training and export with sockets blocked."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_inference_training_and_export_never_touch_the_network(tmp_path):
    environment = {
        **os.environ,
        "NAPARI_LIVECELL_HOME": str(tmp_path / "home"),  # a fresh config: no font cached yet
        "HOME": str(tmp_path),
    }
    environment.pop("YOLO_CONFIG_DIR", None)
    probe = Path(__file__).with_name("offline_probe.py")
    result = subprocess.run(
        [sys.executable, str(probe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=600,
    )
    report_lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert report_lines, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads(report_lines[-1])
    assert report["attempts"] == []
    assert report["onnx"] is True
    assert report["cells"] > 0
    assert result.returncode == 0, result.stderr[-4000:]
