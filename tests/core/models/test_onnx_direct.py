"""An Ultralytics ONNX export runs from its own metadata, with no PyTorch: the cells of the PyTorch path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_livecell.core.analysis.matching import match_cells
from napari_livecell.core.inference.predict import model_input_shape, segment_frame
from napari_livecell.core.models.engines import onnx_model_info, read_onnx_metadata
from napari_livecell.core.models.model import DEFAULT_MODEL, DEFAULT_ONNX, ModelError, load_model
from napari_livecell.core.models.source import ModelSource

pytest.importorskip("onnxruntime")


def test_the_shipped_model_ships_as_onnx_beside_its_pt():
    assert DEFAULT_ONNX.exists() and DEFAULT_MODEL.exists()
    for weights in (DEFAULT_ONNX, DEFAULT_MODEL):
        assert weights.stat().st_size < 15 * 1024 * 1024


def test_metadata_is_read_from_the_file_without_onnx_or_ultralytics():
    import onnx

    expected = {entry.key: entry.value for entry in onnx.load(str(DEFAULT_ONNX)).metadata_props}
    assert read_onnx_metadata(DEFAULT_ONNX) == expected
    info = onnx_model_info(DEFAULT_ONNX)
    assert (info.task, info.names, info.imgsz, info.stride) == ("segment", {0: "cell"}, (544, 704), 32)
    assert info.metadata["machine"]  # the checkpoint's provenance travels with the export


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_onnx_model_finds_the_cells_of_the_pt(runtime, default_model, synthetic_frame, small_frame):
    model = load_model(DEFAULT_ONNX, device="cpu", runtime=runtime)
    assert model.yolo is None and model.engine is not None
    assert model.class_names == default_model.class_names
    assert model.pixel_size_um == default_model.pixel_size_um and model.modality == default_model.modality
    for frame in (synthetic_frame.image, small_frame.image):
        reference = segment_frame(frame, default_model)
        got = segment_frame(frame, model)
        assert reference.n_cells > 20 and got.n_cells == reference.n_cells
        match = match_cells(reference.labels, got.labels)
        assert match.n_matched == reference.n_cells
        assert np.min(match.ious) >= 0.99


def test_the_input_shape_comes_from_the_model_without_a_forward_pass(tmp_path):
    from napari_livecell.core.models.runtime import write_onnx

    static = write_onnx(DEFAULT_MODEL, tmp_path / "static.onnx", (544, 704), dynamic=False)
    model = load_model(static, device="cpu", runtime="onnxruntime")
    assert model.input_shape == (544, 704)  # read from the graph at load, no prediction made
    assert model_input_shape(model) == (544, 704)
    dynamic = load_model(DEFAULT_ONNX, device="cpu", runtime="onnxruntime")
    assert dynamic.input_shape is None


def test_a_detection_only_onnx_is_refused_in_one_line(tmp_path):
    import onnx

    network = onnx.load(str(DEFAULT_ONNX))
    for entry in network.metadata_props:
        if entry.key == "task":
            entry.value = "detect"  # what Ultralytics writes into a detection model's export
    detect = tmp_path / "yolov8n-detect.onnx"
    onnx.save(network, str(detect))
    for runtime in ("onnxruntime", "openvino", "auto"):
        with pytest.raises(ModelError) as error:
            load_model(detect, device="cpu", runtime=runtime)
        message = str(error.value)
        assert "\n" not in message and "detection-only" in message and "yolov8n-detect.onnx" in message


def test_a_file_that_is_not_onnx_is_refused_in_one_line(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(ModelError) as error:
        load_model(broken, device="cpu", runtime="onnxruntime")
    assert "\n" not in str(error.value) and "broken.onnx" in str(error.value)


def test_an_onnx_file_without_metadata_runs_as_a_one_class_model(tmp_path, small_frame):
    import onnx

    network = onnx.load(str(DEFAULT_ONNX))
    del network.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(network, str(plain))
    model = load_model(plain, device="cpu", runtime="onnxruntime")
    assert model.class_names == {0: "cell"} and model.pixel_size_um is None
    assert segment_frame(small_frame.image, model).n_cells > 10


def test_model_sources_are_parsed_once():
    assert ModelSource.parse(None) == ModelSource("file")
    assert ModelSource.parse("https://lab.example:8000").kind == "service"
    assert ModelSource.parse("triton+http://lab:8001/livecell").kind == "triton"
    source = ModelSource.parse(" ~/models/cells.onnx ")
    assert source.kind == "file" and source.path.name == "cells.onnx" and "~" not in str(source.path)
    assert ModelSource.parse(source) is source
    with pytest.raises(ModelError, match="is a napari-livecell service"):
        load_model("http://127.0.0.1:9/")


def test_an_onnx_copy_elsewhere_keeps_its_names_and_runs(tmp_path, small_frame):
    copy = tmp_path / "mine.onnx"
    shutil.copyfile(DEFAULT_ONNX, copy)
    model = load_model(str(copy), device="cpu", runtime="auto")
    assert model.runtime == "onnxruntime" and model.class_names == {0: "cell"}
    # a copy is not the shipped model: its pixel size is what its metadata says
    assert model.pixel_size_um == load_model(DEFAULT_ONNX, device="cpu", runtime="auto").metadata.get(
        "pixel_size_um"
    )
