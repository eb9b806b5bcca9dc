"""Model files are pickles: a crafted one must be refused at every entry point, its payload never run."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_livecell.cli import main


class _Payload:
    """Pickles as a call to ``os.system``: a file appears when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_payload(folder: Path) -> tuple[Path, Path]:
    """A ``torch.save`` checkpoint (the format of every real ``.pt``) carrying the payload."""
    import torch

    marker = folder / "PAYLOAD_RAN"
    bad = folder / "innocent.pt"
    torch.save({"model": _Payload(marker), "train_args": {"imgsz": 704}}, bad)
    return bad, marker


def _bare_pickle_payload(folder: Path) -> tuple[Path, Path]:
    """The payload as a plain pickle (protocol 4), not a torch zip archive."""
    marker = folder / "PAYLOAD_RAN"
    bad = folder / "bare.pt"
    bad.write_bytes(pickle.dumps({"model": _Payload(marker)}, protocol=4))
    return bad, marker


def _getattr_payload(folder: Path) -> tuple[Path, Path]:
    """``getattr(PosixPath, "touch")(PosixPath(marker))``: only names that are on the allow-list.

    Only the restricted ``getattr`` stands between this file and the payload.
    """
    marker = folder / "PAYLOAD_RAN"
    text = str(marker).encode()
    data = (
        b"\x80\x02cbuiltins\ngetattr\ncpathlib\nPosixPath\nX\x05\x00\x00\x00touch\x86R"
        + b"cpathlib\nPosixPath\nX"
        + len(text).to_bytes(4, "little")
        + text
        + b"\x85R\x85R."
    )
    bad = folder / "getattr.pt"
    bad.write_bytes(data)
    return bad, marker


PAYLOADS = {"torch-zip": _zip_payload, "bare-pickle": _bare_pickle_payload, "getattr": _getattr_payload}


@pytest.mark.parametrize("make", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_the_payloads_are_live(tmp_path, make):
    """Unpickled the way Ultralytics does by default, each file runs its payload (in a child process)."""
    bad, marker = make(tmp_path)
    code = f"import torch; torch.load({str(bad)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert marker.exists()


@pytest.mark.parametrize(
    ("make", "named"),
    [(_zip_payload, "posix.system"), (_bare_pickle_payload, "posix.system"), (_getattr_payload, "getattr(")],
    ids=list(PAYLOADS),
)
def test_load_model_refuses_a_payload_and_names_the_type(tmp_path, make, named):
    from napari_livecell.core.models.model import ModelError, load_model

    bad, marker = make(tmp_path)
    with pytest.raises(ModelError) as refused:
        load_model(bad, device="cpu")
    message = str(refused.value)
    assert "refused" in message and named in message and "\n" not in message
    assert not marker.exists()


@pytest.fixture
def bad_model(tmp_path):
    bad, marker = _zip_payload(tmp_path)
    yield bad
    assert not marker.exists(), "the payload ran"


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """One synthetic image with COCO annotations (enough for every command to reach the model)."""
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data")
    json_path = write_synthetic_dataset(root, 1, seed=3, n_cells=12)
    return json_path, root / "images"


def _refused(capsys) -> str:
    err = capsys.readouterr().err
    assert "refused innocent.pt" in err and "posix.system" in err, err
    return err


def test_segment_refuses(tmp_path, bad_model, capsys):
    image = tmp_path / "cells.png"
    iio.imwrite(image, np.full((64, 64), 128, np.uint8))
    assert main(["segment", str(image), "--model", str(bad_model), "--out", str(tmp_path / "o")]) == 2
    _refused(capsys)


def test_evaluate_refuses(tmp_path, bad_model, tiny_dataset, capsys):
    gt, images = tiny_dataset
    assert main(["evaluate", "--gt", str(gt), "--images", str(images), "--model", str(bad_model)]) == 2
    _refused(capsys)


def test_curate_refuses(tmp_path, bad_model, tiny_dataset, capsys):
    gt, images = tiny_dataset
    argv = ["curate", "--gt", str(gt), "--images", str(images), "--model", str(bad_model)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    _refused(capsys)


def test_train_refuses(tmp_path, bad_model, tiny_dataset, capsys):
    gt, images = tiny_dataset
    argv = ["train", "--data", str(gt), "--images", str(images), "--model", str(bad_model)]
    assert main([*argv, "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "o")]) == 2
    _refused(capsys)
    assert not (tmp_path / "o" / "best.pt").exists()


def test_export_refuses(tmp_path, bad_model, capsys):
    assert main(["export", str(bad_model), "--out", str(tmp_path / "m.onnx")]) == 2
    _refused(capsys)
    assert not (tmp_path / "m.onnx").exists()


def test_serve_refuses_before_starting_a_server(bad_model, capsys):
    result = {}
    # in a thread with a deadline: a server that starts would block forever
    runner = threading.Thread(
        target=lambda: result.update(code=main(["serve", "--model", str(bad_model), "--port", "0"])),
        daemon=True,
    )
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "a server started with the payload model"
    assert result["code"] == 2
    _refused(capsys)


def test_real_checkpoints_still_load(tmp_path):
    """The shipped model, and yolov8n-seg / yolo11n-seg built from yaml and saved by Ultralytics."""
    from napari_livecell.core.models.model import DEFAULT_MODEL, ModelError, load_model
    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    assert load_model(DEFAULT_MODEL, device="cpu").class_names == {0: "cell"}
    for architecture in ("yolov8n-seg.yaml", "yolo11n-seg.yaml"):
        path = tmp_path / architecture.replace(".yaml", ".pt")
        YOLO(architecture).save(path)
        assert load_model(path, device="cpu").yolo.task == "segment"
    detect = tmp_path / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(detect)
    with pytest.raises(ModelError, match="detection-only"):
        load_model(detect, device="cpu")


def test_a_checkpoint_with_extra_plain_data_loads(tmp_path):
    """Provenance (dicts, strings, numbers, tensors) is what ``train`` adds: all allowed."""
    import torch

    from napari_livecell.core.models.model import DEFAULT_MODEL, load_model
    from napari_livecell.core.models.safe_load import load_checkpoint

    checkpoint = load_checkpoint(DEFAULT_MODEL)
    checkpoint["napari_livecell"] = {"settings": {"epochs": 3}, "metrics": {"m": 0.5}, "note": "ok"}
    checkpoint["extra_tensor"] = torch.zeros(3)
    path = tmp_path / "tuned.pt"
    torch.save(checkpoint, path)
    assert load_model(path, device="cpu").metadata["metrics"] == {"m": 0.5}
    json.dumps(load_model(path, device="cpu").metadata)
