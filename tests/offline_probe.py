"""Run inference, a 1-epoch training and an ONNX export with the network blocked.

Executed in a fresh interpreter by test_offline.py: the audit hook must be in
place before anything imports Ultralytics. Prints one JSON line and exits 1 if
anything tried to reach a host other than loopback.
"""

import json
import socket
import sys
import tempfile
from pathlib import Path

attempts: list[str] = []
LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return host in LOOPBACK or (isinstance(host, str) and host.startswith("127."))


def block_network(event: str, args: tuple) -> None:
    if event == "socket.connect":
        sock, address = args
        if sock.family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            attempts.append(f"connect {address}")
            raise ConnectionRefusedError(f"network blocked by test: {address}")
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        host = args[0]
        if not _is_loopback(host):
            attempts.append(f"{event} {host}")
            raise socket.gaierror(f"DNS blocked by test: {host}")


sys.addaudithook(block_network)

# the block itself must work, or this probe proves nothing
try:
    socket.create_connection(("github.com", 443), timeout=2)
except OSError:
    pass
assert attempts == ["socket.getaddrinfo github.com"], attempts
attempts.clear()

from napari_livecell.core.inference.predict import segment  # noqa: E402
from napari_livecell.core.models.export import export_onnx  # noqa: E402
from napari_livecell.core.models.model import load_model  # noqa: E402
from napari_livecell.core.training.data import coco_to_yolo_dataset  # noqa: E402
from napari_livecell.core.training.synthetic import synthesize_image  # noqa: E402
from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset  # noqa: E402
from napari_livecell.core.training.train import TrainSettings, train_model  # noqa: E402

work = Path(tempfile.mkdtemp())
image = synthesize_image(seed=11, n_cells=40).image
n_cells = segment(image[:256, :320], load_model()).n_cells

coco_json = write_synthetic_dataset(work / "synth", 2, seed=3, n_cells=40)
data = coco_to_yolo_dataset(coco_json, work / "synth" / "images", work / "yolo", crop=160)
result = train_model(TrainSettings(data=str(data), epochs=1, imgsz=160, batch=4, workers=0), work / "train")
onnx_path = export_onnx(result.weights, work / "model.onnx", imgsz=(160, 160))
print(json.dumps({"cells": n_cells, "onnx": onnx_path.exists(), "attempts": attempts}))
sys.exit(1 if attempts else 0)
