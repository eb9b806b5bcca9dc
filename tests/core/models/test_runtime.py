"""The faster CPU runtimes give the same cells as PyTorch; pipelined stacks give the same labels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_livecell.core.analysis.matching import match_cells
from napari_livecell.core.inference.predict import PredictSettings, segment_frame
from napari_livecell.core.inference.run import Backend, FrameResult, TileProgress, iter_segment
from napari_livecell.core.models.model import DEFAULT_MODEL, ModelError, load_model, runs_through_ultralytics
from napari_livecell.core.models.runtime import available_runtimes, choose_runtime
from napari_livecell.core.training.synthetic import synthesize_image


def assert_same_cells(reference, other) -> None:
    """Counts within 1 % and every cell of the reference found again with mask IoU >= 0.95."""
    assert reference.n_cells > 20
    assert abs(other.n_cells - reference.n_cells) <= 0.01 * reference.n_cells
    match = match_cells(reference.labels, other.labels)
    assert match.n_matched >= 0.99 * reference.n_cells
    assert np.min(match.ious) >= 0.95


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_runtime_gives_the_same_cells_as_torch(runtime, default_model, small_frame, synthetic_frame):
    model = load_model(DEFAULT_MODEL, device="cpu", runtime=runtime)  # a .pt, exported once
    assert model.runtime == runtime and model.yolo is None
    # the user's weights, their names and the shipped model's pixel size stay what they were
    assert model.path == default_model.path
    assert model.pixel_size_um == default_model.pixel_size_um
    assert model.class_names == default_model.class_names
    # a dynamic export: frames of any size, not one fixed input
    for frame in (small_frame.image, synthetic_frame.image):
        assert_same_cells(segment_frame(frame, default_model), segment_frame(frame, model))


def test_openvino_computes_in_float32_at_each_frame_size():
    model = load_model(device="cpu", runtime="openvino")
    frame = np.full((64, 96), 9, np.uint8) + np.eye(64, 96, dtype=np.uint8) * 200
    segment_frame(frame, model)
    shapes = model.engine
    compiled = shapes.compiled((1, 3, 128, 128))  # the frame padded to the smallest network side
    assert len(shapes._compiled) <= shapes.KEEP
    assert list(compiled.input().shape) == [1, 3, 128, 128]
    # bfloat16, OpenVINO's default on CPUs with AMX, changes the masks
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"


def test_export_is_made_once_and_reused(tmp_path):
    from napari_livecell.core.models.runtime import cache_folder, onnx_export, openvino_export

    onnx_file = onnx_export(DEFAULT_MODEL)
    folder = openvino_export(DEFAULT_MODEL)
    assert onnx_file.parent == cache_folder() and (folder / "model.xml").exists()
    assert (folder / "metadata.yaml").exists()
    written = onnx_file.stat().st_mtime_ns
    assert onnx_export(DEFAULT_MODEL) == onnx_file and onnx_file.stat().st_mtime_ns == written
    # no half-written exports are left behind
    assert not [p for p in cache_folder().iterdir() if p.name.startswith(".export-")]


@pytest.mark.parametrize(
    ("runtime", "package", "extra"),
    [("openvino", "openvino", "openvino"), ("onnxruntime", "onnxruntime", "onnx")],
)
def test_missing_package_is_refused_in_one_line(monkeypatch, runtime, package, extra):
    monkeypatch.setitem(sys.modules, package, None)  # what an environment without it imports
    with pytest.raises(ModelError) as error:
        load_model(device="cpu", runtime=runtime)
    message = str(error.value)
    assert "\n" not in message
    assert f"needs the {package} package" in message and f"napari-livecell[{extra}]" in message
    assert runtime not in available_runtimes()


def test_runtimes_are_one_table():
    from napari_livecell.core.models.runtime import RUNTIME_TABLE, RUNTIMES

    assert RUNTIMES == ("auto", *RUNTIME_TABLE)
    assert [name for name, entry in RUNTIME_TABLE.items() if entry.auto] == ["onnxruntime", "openvino"]
    assert available_runtimes() == ["auto", "onnxruntime", "openvino", "openvino-int8", "torch"]


def test_auto_picks_the_fastest_installed_and_falls_back(monkeypatch):
    onnx_file = DEFAULT_MODEL.with_suffix(".onnx")
    assert choose_runtime("auto", DEFAULT_MODEL, "cpu") == "onnxruntime"
    assert choose_runtime("auto", onnx_file, "cpu") == "onnxruntime"
    assert choose_runtime("auto", DEFAULT_MODEL, "cuda:0") == "torch"
    assert choose_runtime(None, DEFAULT_MODEL.with_suffix(".torchscript"), "cpu") == "torch"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert choose_runtime("auto", DEFAULT_MODEL, "cpu") == "openvino"
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert choose_runtime("auto", DEFAULT_MODEL, "cpu") == "torch"
    assert load_model(device="cpu", runtime="auto").runtime == "torch"


def test_only_models_run_through_ultralytics_import_it():
    """The first run of the shipped ONNX model skips importing PyTorch and Ultralytics (~10 s in napari)."""
    assert not runs_through_ultralytics(None, "auto", "auto")
    assert not runs_through_ultralytics("http://127.0.0.1:8000", "auto", "auto")
    assert runs_through_ultralytics(str(DEFAULT_MODEL), "auto", "auto")  # a .pt: its export may be made now
    assert runs_through_ultralytics(None, "torch", "cpu")
    assert runs_through_ultralytics("missing.onnx", "auto", "auto")  # the load reports it, as before
    probe = (
        "import sys\n"
        "from napari_livecell.core.inference.predict import import_inference_modules\n"
        "import_inference_modules(ultralytics=False)\n"
        "print('ultralytics' in sys.modules, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_bad_runtime_choices_are_refused_in_one_line():
    with pytest.raises(
        ValueError, match="unknown runtime 'tensorrt': use auto, onnxruntime, openvino, openvino-int8, torch"
    ):
        load_model(device="cpu", runtime="tensorrt")
    with pytest.raises(ModelError, match="runs on the CPU, not cuda:0"):
        choose_runtime("openvino", DEFAULT_MODEL, "cuda:0")
    with pytest.raises(ModelError, match="runs .pt and .onnx models, not m.torchscript"):
        choose_runtime("onnxruntime", DEFAULT_MODEL.with_name("m.torchscript"), "cpu")


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    """Six 256 x 320 frames of varied density."""
    return np.stack(
        [synthesize_image(seed=70 + i, n_cells=20 + 15 * i, shape=(256, 320)).image for i in range(6)]
    )


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_pipelined_stack_gives_frame_by_frame_labels(stack, runtime):
    model = load_model(device="cpu", runtime=runtime)
    expected = [segment_frame(frame, model) for frame in stack]
    events = list(iter_segment(stack, Backend(device="cpu", runtime=runtime)))
    results = [e for e in events if isinstance(e, FrameResult)]
    assert [r.number for r in results] == list(range(len(stack)))
    assert [r.index for r in results] == [(i,) for i in range(len(stack))]
    for result, reference in zip(results, expected):
        np.testing.assert_array_equal(result.segmentation.labels, reference.labels)
        assert len(result.segmentation.polygons) == reference.n_cells


def test_two_frames_in_flight_give_the_frame_by_frame_labels(stack):
    """Depth 2 (a GPU's or a service's runs): frames overlap, results come in order, labels equal."""
    from napari_livecell.core.inference.run import pipeline

    model = load_model(device="cpu", runtime="openvino")
    expected = [segment_frame(frame, model) for frame in stack]
    frames = iter(stack)

    def work(number, frame, report):
        return FrameResult(number, (number,), segment_frame(frame, model))

    results = list(pipeline(lambda: next(frames, None), work, depth=2))
    assert [r.number for r in results] == list(range(len(stack)))
    for result, reference in zip(results, expected):
        np.testing.assert_array_equal(result.segmentation.labels, reference.labels)


def test_pipelined_tiles_report_progress_in_frame_order(stack):
    events = list(iter_segment(stack[:3], Backend(device="cpu", tile=True), PredictSettings(imgsz=160)))
    frames = [e.frame if isinstance(e, TileProgress) else e.number for e in events[1:]]
    assert frames == sorted(frames)  # no frame's progress after a later frame's result
    assert any(isinstance(e, TileProgress) for e in events)


def test_unreadable_frame_fails_after_the_frames_before_it(stack):
    import dask
    import dask.array as da

    @dask.delayed
    def frame(index: int) -> np.ndarray:
        if index == 3:
            raise OSError("frame 3 is on a disk that went away")
        return stack[index]

    lazy = da.stack([da.from_delayed(frame(i), stack.shape[1:], stack.dtype) for i in range(5)])
    events = iter_segment(lazy, Backend(device="cpu"))
    seen = []
    with pytest.raises(OSError, match="went away"):
        for event in events:
            if isinstance(event, FrameResult):
                seen.append(event.number)
    assert seen == [0, 1, 2]


def test_closing_a_run_early_stops_it(stack):
    events = iter_segment(stack, Backend(device="cpu"))
    first = next(e for e in events if isinstance(e, FrameResult))
    events.close()  # Cancel in the GUI: no error, no stray results
    assert first.number == 0


PROBE = """
import socket, sys
attempts = []

def block(event, args):
    if event == "socket.connect" and args[0].family != getattr(socket, "AF_UNIX", None):
        host = args[1][0] if isinstance(args[1], tuple) else args[1]
        if not str(host).startswith("127.") and host not in ("localhost", "::1"):
            attempts.append(f"connect {args[1]}")
            raise ConnectionRefusedError("network blocked")
    elif event.startswith("socket.gethostby") or event == "socket.getaddrinfo":
        if args[0] in ("localhost", "127.0.0.1"):
            return
        attempts.append(f"{event} {args[0]}")
        raise socket.gaierror("DNS blocked")

sys.addaudithook(block)
import numpy as np
from napari_livecell.core.models.model import load_model
from napari_livecell.core.inference.predict import segment_frame

frame = np.zeros((96, 128), np.uint8)
frame[30:60, 40:80] = 200
from napari_livecell.core.models.model import DEFAULT_MODEL
for runtime in ("onnxruntime", "openvino"):
    segment_frame(frame, load_model(DEFAULT_MODEL, device="cpu", runtime=runtime))  # a .pt: exported
print("ATTEMPTS", attempts)
"""


def test_exports_for_runtimes_never_touch_the_network(tmp_path):
    import os
    import subprocess

    environment = {**os.environ, "NAPARI_LIVECELL_HOME": str(tmp_path)}  # a fresh cache: exports run
    environment.pop("YOLO_CONFIG_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ATTEMPTS []" in done.stdout, done.stdout
    assert list((tmp_path / "runtimes").glob("livecell-synth-yolov8n-seg-*.onnx"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are set on Linux only")
def test_a_runs_threads_yield_the_cores_to_the_callers_thread():
    """Frames side by side keep both cores busy: napari's GUI thread must still win them when it paints."""
    import os
    import threading

    from napari_livecell.core.inference.run import pipeline
    from napari_livecell.core.segmentation import Segmentation

    frames = iter(range(4))
    priorities = []

    def work(number, item, report):
        priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return FrameResult(number, (number,), Segmentation.from_labels(np.zeros((4, 4), np.int32)))

    results = list(pipeline(lambda: next(frames, None), work, depth=2))
    assert [r.number for r in results] == [0, 1, 2, 3]
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert min(priorities) > caller  # a higher nice value: a lower priority
