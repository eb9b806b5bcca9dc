"""Fine-tuning the shipped model on a tiny synthetic set, and exporting it."""

import json

import numpy as np
import pytest

from napari_livecell.cli import main


def test_finetune_default_model_then_segment(tmp_path, small_frame):
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset

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


def _tiny_yolo_dataset(root, labels_text: str):
    from napari_livecell.core.formats.yolo import YoloSample, write_yolo_dataset
    from napari_livecell.core.training.synthetic import synthesize_image

    sample = synthesize_image(5, n_cells=20, shape=(96, 128))
    data_yaml = write_yolo_dataset(root, [YoloSample("a", sample.image, sample.labels)], {0: "cell"})
    if labels_text is not None:
        (root / "labels" / "train" / "a.txt").write_text(labels_text)
    return data_yaml


@pytest.mark.parametrize(
    ("labels_text", "message"),
    [
        ("3 0.1 0.1 0.2 0.1 0.2 0.2\n", "class 3 is not in the dataset's 1 class name(s)"),
        ("0 0.1 0.1 0.2\n", "odd number of coordinates"),
        ("", "no labelled cells"),
    ],
    ids=["unknown-class", "malformed", "no-cells"],
)
def test_bad_yolo_dataset_is_refused_before_training(tmp_path, capsys, labels_text, message):
    data_yaml = _tiny_yolo_dataset(tmp_path / "ds", labels_text)
    assert (
        main(["train", "--data", str(data_yaml.parent), "--model", "default", "--out", str(tmp_path / "o")])
        == 2
    )
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "o" / "best.pt").exists()


def test_coco_annotation_with_unknown_category_is_refused(tmp_path):
    from napari_livecell.core.training.data import DatasetError, coco_to_yolo_dataset

    json_path = write_synthetic_dataset_small(tmp_path)
    coco = json.loads(json_path.read_text())
    coco["annotations"][0]["category_id"] = 7
    json_path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="category_id 7, not among the categories"):
        coco_to_yolo_dataset(json_path, json_path.parent / "images", tmp_path / "ds")


def write_synthetic_dataset_small(root):
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset

    return write_synthetic_dataset(root / "data", 2, seed=4, n_cells=40)


def test_cancel_stops_within_an_epoch_and_resume_finishes_the_run(tmp_path, small_frame):
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import DEFAULT_MODEL, load_model
    from napari_livecell.core.training.data import coco_to_yolo_dataset
    from napari_livecell.core.training.train import TrainingCancelled, TrainSettings, saved_run, train_model

    json_path = write_synthetic_dataset_small(tmp_path)
    data_yaml = coco_to_yolo_dataset(json_path, json_path.parent / "images", tmp_path / "ds", crop=320)
    settings = TrainSettings.for_base(str(data_yaml), str(DEFAULT_MODEL), epochs=2, batch=4, workers=0)
    out = tmp_path / "run"
    reports = []

    def cancel_in_second_epoch() -> bool:
        return bool(reports) and reports[-1].epoch == 2

    with pytest.raises(TrainingCancelled):
        train_model(settings, out, on_progress=reports.append, should_stop=cancel_in_second_epoch)
    finished_epochs = [r.epoch for r in reports if r.epoch_done]
    assert finished_epochs == [1]
    assert [(r.epoch, r.batch) for r in reports][-1] == (2, 1), "stops after the first batch of epoch 2"
    assert reports[0].loss is not None and finished_epochs and reports[1].batches >= 1
    assert not (out / "best.pt").exists(), "a cancelled run offers no model"
    load_model(out / "run" / "weights" / "last.pt", device="cpu")  # what is on disk is whole

    saved_settings, _ = saved_run(out)
    resumed = []
    result = train_model(saved_settings, out, on_progress=resumed.append, resume=True)
    assert {r.epoch for r in resumed} == {2}, "the finished epoch is not trained again"
    tuned = load_model(result.weights, device="cpu")
    n_true = int(small_frame.labels.max())
    assert abs(segment_frame(small_frame.image, tuned).n_cells - n_true) <= 0.25 * n_true


def test_export_onnx_and_triton_repository(tmp_path, small_frame):
    from napari_livecell.core.analysis.matching import match_cells
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import DEFAULT_MODEL, load_model

    shipped = sorted(DEFAULT_MODEL.parent.iterdir())
    assert (
        main(["export", "default", "--out", str(tmp_path / "m.onnx"), "--triton", str(tmp_path / "repo")])
        == 0
    )
    assert sorted(DEFAULT_MODEL.parent.iterdir()) == shipped  # nothing written beside the shipped model
    # the repository: a dynamic export run by Triton's Python backend (tests/test_triton.py serves it)
    config = (tmp_path / "repo" / "livecell" / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "dims: [3, -1, -1]" in config and "dynamic_batching" in config
    assert "'task': 'segment'" in config  # what Ultralytics' Triton client reads the task from
    assert {p.name for p in (tmp_path / "repo" / "livecell" / "1").iterdir()} == {"model.onnx", "model.py"}
    # the GPU variant for NVIDIA's containers, from the static export: Triton's ONNX Runtime backend
    from napari_livecell.core.models.export import export_triton

    gpu = export_triton(tmp_path / "m.onnx", tmp_path / "gpu-repo", "cells", backend="onnxruntime")
    config = (gpu / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "dims: [1, 3, 544, 704]" in config
    assert "max_batch_size: 0" in config and "KIND_GPU" in config and 'name: "cells"' in config
    assert not (gpu / "1" / "model.py").exists()
    # a repository that holds the model already: refused unless overwrite, replaced whole with it
    from napari_livecell.core.models.model import ModelError

    with pytest.raises(ModelError, match="already holds a model 'cells'"):
        export_triton(tmp_path / "m.onnx", tmp_path / "gpu-repo", "cells", backend="python")
    assert 'platform: "onnxruntime_onnx"' in (gpu / "config.pbtxt").read_text()
    for name in ("../escaped", str(tmp_path / "absolute"), "..", "AUX"):
        with pytest.raises(ModelError, match="cannot name a file"):
            export_triton(tmp_path / "m.onnx", tmp_path / "gpu-repo", name)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "absolute").exists()
    again = export_triton(
        tmp_path / "m.onnx", tmp_path / "gpu-repo", "cells", backend="python", overwrite=True
    )
    assert 'backend: "python"' in (again / "config.pbtxt").read_text()
    assert {p.name for p in (again / "1").iterdir()} == {"model.onnx", "model.py"}
    assert [p.name for p in (tmp_path / "gpu-repo").iterdir()] == ["cells"], "no staging folder left"
    exported = segment_frame(small_frame.image, load_model(tmp_path / "m.onnx", device="cpu"))
    reference = segment_frame(small_frame.image, load_model(device="cpu"))
    match = match_cells(reference.labels, exported.labels)
    assert match.n_matched >= 0.95 * reference.n_cells and np.median(match.ious) >= 0.95
