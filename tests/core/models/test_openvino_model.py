"""ONNX Runtime and OpenVINO without Ultralytics' predictor: its numbers; stacks side by side on streams."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_livecell.core._threads import frames_at_once, in_two_threads
from napari_livecell.core.inference.frame_input import percentiles_of_counts, to_bgr
from napari_livecell.core.inference.openvino_direct import direct_instances, model_engine
from napari_livecell.core.inference.predict import (
    PredictSettings,
    _pad_with_background,
    model_input_shape,
    predict_with_ultralytics,
    segment_frame,
)
from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment
from napari_livecell.core.models.model import DEFAULT_ONNX, load_model
from napari_livecell.core.training.synthetic import synthesize_image

pytest.importorskip("openvino")

RAW_FIELDS = ("boxes", "scores", "classes", "coefficients", "protos")


@pytest.fixture(scope="module")
def openvino_model():
    model = load_model(device="cpu", runtime="openvino")
    model_input_shape(model)  # as a run does first
    return model


@pytest.fixture(scope="module")
def ultralytics_onnx():
    """The shipped ONNX file run by Ultralytics' predictor (its own ONNX Runtime session): the reference."""
    return load_model(DEFAULT_ONNX, device="cpu", runtime="torch")


@pytest.fixture(scope="module")
def onnxruntime_model():
    return load_model(DEFAULT_ONNX, device="cpu", runtime="onnxruntime")


def assert_same_raw(got, reference) -> None:
    """Two runtimes on the same network: the same instances, float arithmetic aside."""
    assert got is not None and len(got.boxes) == len(reference.boxes)

    def order(raw):  # nearly equal scores may swap places between runtimes
        return np.lexsort(np.round(raw.boxes, 1).T[::-1])

    mine, theirs = order(got), order(reference)
    np.testing.assert_array_equal(got.classes[mine], reference.classes[theirs])
    for name in ("boxes", "scores", "coefficients"):
        ours, expected = getattr(got, name)[mine], getattr(reference, name)[theirs]
        np.testing.assert_allclose(ours, expected, atol=2e-2, err_msg=name)
    np.testing.assert_allclose(got.protos, reference.protos, atol=2e-2)


@pytest.mark.parametrize(
    ("shape", "window", "imgsz"),
    [((520, 704), (544, 704), 704), ((200, 300), (224, 320), 320), ((160, 160), (160, 160), 160)],
)
def test_a_native_window_gives_the_predictors_numbers(
    onnxruntime_model, openvino_model, ultralytics_onnx, shape, window, imgsz
):
    frame = synthesize_image(seed=sum(shape), n_cells=60, shape=shape).image
    bgr = _pad_with_background(to_bgr(frame), window)  # as segment_frame pads a frame or a tile
    run = PredictSettings(imgsz=imgsz)
    reference = predict_with_ultralytics(bgr, ultralytics_onnx, run)
    assert len(reference.boxes) > 10
    direct = direct_instances(bgr, onnxruntime_model, run)
    for name in RAW_FIELDS:  # the same session, the same tensor: the same numbers
        np.testing.assert_array_equal(getattr(direct, name), getattr(reference, name), err_msg=name)
    assert_same_raw(direct_instances(bgr, openvino_model, run), reference)
    # one stream of two (a frame of a stack side by side) computes OpenVINO's numbers
    alone = direct_instances(bgr, openvino_model, run)
    with frames_at_once(2):
        streamed = direct_instances(bgr, openvino_model, run)
    for name in RAW_FIELDS:
        np.testing.assert_array_equal(getattr(streamed, name), getattr(alone, name), err_msg=name)


def test_a_gray_window_gives_the_numbers_of_its_bgr_copy(onnxruntime_model):
    # segment_frame keeps a gray frame one channel up to the tensor: padding and tensor must give
    # what the BGR copy gives
    frame = synthesize_image(seed=77, n_cells=60, shape=(250, 300)).image  # uint8 gray
    gray = _pad_with_background(frame, (256, 320))
    bgr = _pad_with_background(to_bgr(frame), (256, 320))
    np.testing.assert_array_equal(np.repeat(gray[:, :, None], 3, axis=2), bgr)
    run = PredictSettings(imgsz=320)
    reference = direct_instances(bgr, onnxruntime_model, run)
    got = direct_instances(gray, onnxruntime_model, run)
    assert len(reference.boxes) > 10
    for name in RAW_FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(reference, name), err_msg=name)


@pytest.mark.parametrize(("shape", "imgsz"), [((300, 300), 320), ((320, 320), 704), ((520, 704), 640)])
def test_windows_the_predictor_letterboxes_give_its_numbers(
    onnxruntime_model, ultralytics_onnx, shape, imgsz
):
    # not a multiple of the stride, smaller than imgsz (scaled up), larger (scaled down):
    # this package's letterbox and box scaling give the predictor's instances
    bgr = to_bgr(synthesize_image(seed=11, n_cells=50, shape=shape).image)
    run = PredictSettings(imgsz=imgsz)
    reference = predict_with_ultralytics(bgr, ultralytics_onnx, run)
    assert len(reference.boxes) > 5
    got = direct_instances(bgr, onnxruntime_model, run)
    for name in RAW_FIELDS:
        np.testing.assert_allclose(getattr(got, name), getattr(reference, name), atol=1e-4, err_msg=name)


def test_a_stack_runs_side_by_side_on_streams_with_frame_by_frame_labels(openvino_model):
    stack = np.stack(
        [synthesize_image(seed=90 + i, n_cells=30 + 20 * i, shape=(256, 320)).image for i in range(5)]
    )
    expected = [segment_frame(frame, openvino_model) for frame in stack]
    events = iter_segment(stack, Backend(device="cpu", runtime="openvino"))
    results = [e for e in events if isinstance(e, FrameResult)]
    assert [r.number for r in results] == list(range(len(stack)))
    for result, reference in zip(results, expected):
        np.testing.assert_array_equal(result.segmentation.labels, reference.labels)
        assert len(result.segmentation.polygons) == reference.n_cells
    # the frames after the first ran on a two-stream model, compiled for the frames' shape
    assert ((1, 3, 256, 320), 2) in model_engine(openvino_model)._compiled


def test_a_frame_beside_others_keeps_its_halves_in_its_own_thread():
    threads: list[str] = []

    def half() -> None:
        threads.append(threading.current_thread().name)

    in_two_threads(half, half)
    assert len(set(threads)) == 2  # alone: the second half on the helper thread
    threads.clear()
    with frames_at_once(2):
        in_two_threads(half, half)
    assert set(threads) == {threading.current_thread().name}


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(0, 255), min_size=1, max_size=400),
    percents=st.lists(st.floats(0, 100), min_size=1, max_size=4),
)
def test_percentiles_from_the_histogram_equal_numpys(values, percents):
    values = np.array(values, np.uint8)
    expected = np.percentile(values, tuple(percents))
    found = percentiles_of_counts(np.bincount(values, minlength=256), tuple(percents))
    np.testing.assert_array_equal(found, expected)
