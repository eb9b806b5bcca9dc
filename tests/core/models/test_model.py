import pytest

from napari_livecell.core.models.model import (
    DEFAULT_MODEL,
    ModelError,
    load_model,
    resolve_device,
)


def test_default_model_is_shipped_small_and_segments(default_model):
    assert DEFAULT_MODEL.exists()
    assert DEFAULT_MODEL.stat().st_size < 10 * 1024 * 1024
    assert default_model.yolo.task == "segment"
    assert default_model.class_names == {0: "cell"}


def test_default_model_records_how_to_rebuild_it(default_model):
    recipe = default_model.metadata
    assert "napari-livecell train" in recipe["command"]
    assert recipe["data"]["synth"]["seed"] is not None


def test_load_is_cached():
    # not the session fixture: other tests load more models than the cache keeps
    first = load_model(device="cpu")
    assert load_model(device="cpu") is first


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "nope.pt")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch checkpoint at all" * 10)
    with pytest.raises(ModelError, match="broken.pt.*corrupt"):
        load_model(bad)


def test_unsupported_format(tmp_path):
    weights = tmp_path / "model.h5"
    weights.write_bytes(b"x")
    with pytest.raises(ModelError, match="unsupported model format '.h5'"):
        load_model(weights)


def test_detection_only_model_is_refused_by_name(tmp_path):
    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    detector = tmp_path / "detector.pt"
    YOLO("yolov8n.yaml").save(detector)
    with pytest.raises(ModelError, match="detector.pt is a detection-only model"):
        load_model(detector)


def test_devices():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda:0", "mps"}
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")
