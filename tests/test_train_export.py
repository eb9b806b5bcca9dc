"""Fine-tuning the shipped model on a tiny synthetic set, and exporting it."""

import json

import numpy as np
import pytest

from napari_livecell.cli import main


def test_finetune_default_model_then_segment(tmp_path, small_frame):
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import segment_frame
    from napari_livecell.core.synthetic_dataset import write_synthetic_dataset

    json_path = write_synthetic_dataset(tmp_path / "data", 3, seed=9, n_cells=50)
    out = tmp_path / "tuned"
    code = main(
        [
            "train",
            "--data",
            str(json_path),
            "--images",
            str(tmp_path / "data" / "images"),
            "--model",
            "default",
            "--epochs",
            "1",
            "--imgsz",
            "320",
            "--crop",
            "320",
            "--batch",
            "4",
            "--workers",
            "0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "metrics/mAP50-95(M)" in metrics["metrics"]
    tuned = load_model(out / "best.pt", device="cpu")
    assert tuned.metadata["settings"]["epochs"] == 1
    assert "napari-livecell" in tuned.metadata["command"]
    n_true = int(small_frame.labels.max())
    assert abs(segment_frame(small_frame.image, tuned).n_cells - n_true) <= 0.2 * n_true


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda d: (d / "empty.json").write_text(json.dumps({"images": [], "annotations": []})),
            "lists no images",
        ),
        (
            lambda d: (d / "missing.json").write_text(
                json.dumps(
                    {
                        "images": [{"id": 1, "file_name": "gone.tif", "width": 64, "height": 64}],
                        "annotations": [],
                    }
                )
            ),
            "gone.tif not found",
        ),
    ],
    ids=["empty", "missing-image"],
)
def test_bad_training_data_gives_a_clear_error(tmp_path, capsys, setup, message):
    setup(tmp_path)
    data = next(tmp_path.glob("*.json"))
    assert main(["train", "--data", str(data), "--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "best.pt").exists()


def test_export_onnx_and_triton_repository(tmp_path, small_frame):
    from napari_livecell.core.matching import match_cells
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import segment_frame

    assert (
        main(["export", "default", "--out", str(tmp_path / "m.onnx"), "--triton", str(tmp_path / "repo")])
        == 0
    )
    config = (tmp_path / "repo" / "livecell" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "dims: [ 1, 3, 544, 704 ]" in config
    assert (tmp_path / "repo" / "livecell" / "1" / "model.onnx").exists()
    exported = segment_frame(small_frame.image, load_model(tmp_path / "m.onnx", device="cpu"))
    reference = segment_frame(small_frame.image, load_model(device="cpu"))
    match = match_cells(reference.labels, exported.labels)
    assert match.n_matched >= 0.95 * reference.n_cells and np.median(match.ious) >= 0.95
