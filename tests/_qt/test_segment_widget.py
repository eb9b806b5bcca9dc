"""The "Segment cells" widget in a real viewer with the real default model."""

import gc
import time

import dask.array as da
import numpy as np
import pytest

from napari_livecell._qt.segment_widget import SegmentCellsWidget


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    assert isinstance(widget, SegmentCellsWidget)
    return viewer, widget


def run_and_wait(qtbot, widget, timeout=120_000):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    return worker


def test_segments_the_sample_into_named_layers_with_features(qtbot, viewer_and_widget):
    viewer, widget = viewer_and_widget
    viewer.open_sample("napari-livecell", "livecell_image")
    image, truth = viewer.layers[0], viewer.layers[1]
    run_and_wait(qtbot, widget)
    cells = viewer.layers[f"{image.name} cells"]
    outlines = viewer.layers[f"{image.name} outlines"]
    n_true = int(truth.data.max())
    n_found = int(cells.data.max())
    assert abs(n_found - n_true) <= 0.15 * n_true
    assert len(cells.features) == n_found
    assert (cells.features["score"] >= 0.4).all() and (cells.features["area"] > 0).all()
    assert set(cells.features["status"]) == {"predicted"}
    assert len(outlines.data) >= n_found
    assert "score" in outlines.features

    # running again replaces this image's layers instead of piling up
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers


def test_stack_gives_one_labels_layer_with_frames(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(np.stack([small_frame.image] * 3), name="movie", scale=(1, 0.5, 0.5))
    run_and_wait(qtbot, widget)
    cells = viewer.layers["movie cells"]
    assert cells.data.shape == (3, 256, 320)
    assert tuple(cells.scale) == (1, 0.5, 0.5)
    per_frame = [len(np.unique(frame)) - 1 for frame in cells.data]
    assert per_frame[0] > 10 and per_frame[0] == per_frame[1] == per_frame[2]
    assert sorted(set(cells.features["frame"])) == [0, 1, 2]
    outlines = viewer.layers["movie outlines"]
    assert {int(shape[0, 0]) for shape in outlines.data} == {0, 1, 2}


def test_stack_labels_fill_in_frame_by_frame_and_become_the_result(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    # a lazily read (dask) time-lapse, as napari opens large files
    movie = da.from_array(np.stack([small_frame.image] * 4), chunks=(1, -1, -1))
    viewer.add_image(movie, name="lazy")
    ready = []
    widget_saw = widget._on_progress

    def look(progress):
        from napari_livecell._qt.segment_worker import FrameReady

        widget_saw(progress)
        if isinstance(progress, FrameReady):  # the frame is in the shown layer's data by now
            ready.append((progress.index, bool(np.asarray(filling.data[progress.index]).any()), widget.busy))

    # seen with the widget's own slot, connected before the worker starts (the first frame may be
    # done before run() returns: the placeholder layer is inserted after the start)
    widget._on_progress = look
    widget.run()
    filling = viewer.layers["lazy cells"]
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)

    assert [index for index, _, _ in ready] == [(0,), (1,), (2,), (3,)], "frames come in order"
    assert all(filled and busy for _, filled, busy in ready), "each frame is in the layer during the run"
    names = [layer.name for layer in viewer.layers]
    assert names == ["lazy", "lazy cells", "lazy outlines"]
    cells = viewer.layers["lazy cells"]
    assert cells is filling, "the layer that filled in is the result (not built twice)"
    reference = widget_free_result(small_frame.image)
    assert len(cells.features) == 4 * reference.n_cells
    assert np.array_equal(cells.data[2] > 0, reference.labels > 0)
    assert cells.data.max() == 4 * reference.n_cells, "ids run on across frames"


def test_a_long_stack_is_kept_compressed_and_stays_editable(
    qtbot, viewer_and_widget, small_frame, monkeypatch
):
    """Stacks above the size limit fill a zarr array (1,000 frames: ~30 MB instead of 1.46 GB)."""
    import napari_livecell.core.segmentation as segmentation

    monkeypatch.setattr(segmentation, "COMPACT_LABELS_BYTES", 0)  # this 3-frame stack counts as long
    viewer, widget = viewer_and_widget
    viewer.add_image(np.stack([small_frame.image] * 3), name="long")
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    cells = viewer.layers["long cells"]
    assert not isinstance(cells.data, np.ndarray), "compressed, not a numpy stack"
    reference = widget_free_result(small_frame.image)
    frame = np.asarray(cells.data[2])
    assert np.array_equal(frame > 0, reference.labels > 0)
    assert frame.max() == 3 * reference.n_cells, "ids run on across frames"
    assert len(cells.features) == 3 * reference.n_cells
    assert len(viewer.layers["long outlines"].data) >= 3 * reference.n_cells

    viewer.dims.set_current_step(0, 1)
    cell = int(np.asarray(cells.data[1]).max())
    rows, cols = np.nonzero(np.asarray(cells.data[1]) == cell)
    cells.fill((1, rows[0], cols[0]), 0)  # napari's fill tool erases the cell
    assert cell not in np.unique(np.asarray(cells.data[1])), "the edit is in the compressed stack"
    cells.undo()
    assert cell in np.unique(np.asarray(cells.data[1]))


def widget_free_result(image):
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import load_model

    return segment_frame(image, load_model(device="cpu"))


def test_cancel_mid_stack_leaves_no_layers(collector_unfrozen, qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(np.stack([small_frame.image] * 30), name="long")
    worker = widget.run()
    with qtbot.waitSignal(worker.yielded, timeout=60_000):
        pass
    assert gc.get_freeze_count() > 0, "the collector is held during a run"
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "cancelled" in widget._status.value
    assert [layer.name for layer in viewer.layers] == ["long"]
    assert gc.get_freeze_count() == 0, "a cancelled run releases the collector"


def test_gui_stays_responsive_while_segmenting(collector_unfrozen, qtbot, viewer_and_widget, small_frame):
    """No gap in a 10 ms heartbeat reaches 0.2 s, from the Run click to the result layers.

    Three phases: the click (the stack's empty fill-in Labels layer is made),
    inference (the GUI thread only copies finished frames) and finishing (the
    outlines layer, built in the worker, is put in place and shown). Measured
    here: 0.10-0.16 s, < 0.1 s, 0.07-0.13 s. Before the garbage collector was
    held back during runs, full collections of the ~500k objects of torch,
    Ultralytics and napari stalled the finishing phase for 0.5-0.8 s.

    The click is napari inserting a Labels layer: 0.11-0.18 s on this machine,
    and 0.21-0.24 s for the first one in a process (napari's and vispy's code
    paths still cold; measured with this test run alone). That, or a noisy
    neighbour on a shared CI machine, can push one measurement over, so a
    second run on a new image is allowed. A GUI that does block fails both.
    """
    viewer, widget = viewer_and_widget
    for attempt in range(2):
        name = f"beats{attempt}"
        # 24 frames: with the fastest runtime (OpenVINO, frames side by side) 12 frames took
        # ~0.2 s, too short to sample the inference phase
        widget._image.value = viewer.add_image(np.stack([small_frame.image] * 24), name=name)
        click, inference, finishing = heartbeat_during_a_run(qtbot, widget)
        print(f"click {click:.3f} s, inference {inference.max():.3f} s, finishing {finishing.max():.3f} s")
        assert len(inference) > 20, f"only {len(inference)} beats while segmenting: too short to judge"
        if max(click, inference.max(), finishing.max()) < 0.2:
            break
    assert click < 0.2, f"the Run click blocked the GUI for {click:.3f} s"
    assert inference.max() < 0.2, f"GUI froze for {inference.max():.3f} s while segmenting"
    assert finishing.max() < 0.2, f"placing the result layers blocked the GUI for {finishing.max():.3f} s"
    assert [layer.name for layer in viewer.layers][-3:] == [name, f"{name} cells", f"{name} outlines"]
    assert viewer.layers[f"{name} outlines"].visible
    assert gc.get_freeze_count() == 0, "after the run every object is collectable again"


def heartbeat_during_a_run(qtbot, widget):
    """Run the widget with a 10 ms QTimer beating: (click, inference gaps, finishing gaps) in s."""
    from qtpy.QtCore import QTimer

    beats, returned_at = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start(10)
    clicked = time.perf_counter()
    worker = widget.run()
    answered = time.perf_counter()
    worker.returned.connect(lambda _: returned_at.append(time.perf_counter()))
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    qtbot.wait(100)  # the last step's paint
    timer.stop()
    beats = np.asarray(sorted([clicked, *beats]))
    gaps, gap_ends = np.diff(beats), beats[1:]
    first_turn = np.flatnonzero(gap_ends > answered)[0]
    running = (gap_ends > gap_ends[first_turn]) & (gap_ends < returned_at[0])
    return gap_ends[first_turn] - clicked, gaps[running], gaps[gap_ends >= returned_at[0]]


def test_filters_hide_cells_in_both_layers(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="img")
    run_and_wait(qtbot, widget)
    cells, outlines = viewer.layers["img cells"], viewer.layers["img outlines"]
    widget._min_score.value = 0.99
    hidden_ids = np.array(cells.features["index"][cells.features["score"] < 0.99], dtype=np.int64)
    assert len(hidden_ids) > 0
    assert cells.colormap.map(hidden_ids)[:, 3].max() == 0
    edge_alpha = np.asarray(outlines.edge_color)[:, 3]
    assert (edge_alpha[outlines.features["score"].to_numpy() < 0.99] == 0).all()
    widget._min_score.value = 0.0
    assert cells.colormap.map(hidden_ids)[:, 3].min() > 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda viewer, tmp: None, "select an image layer first"),
        (
            lambda viewer, tmp: viewer.add_image(np.zeros((2, 2, 2, 2, 2, 16, 16, 3), np.uint8), rgb=True),
            "supported",
        ),
    ],
    ids=["no-image", "rgb-5d"],
)
def test_bad_input_gives_a_message_and_keeps_layers(viewer_and_widget, tmp_path, setup, message):
    viewer, widget = viewer_and_widget
    setup(viewer, tmp_path)
    before = [layer.name for layer in viewer.layers]
    assert widget.run() is None
    assert message in widget._status.value
    assert [layer.name for layer in viewer.layers] == before


def test_detection_only_model_is_reported_not_raised(qtbot, viewer_and_widget, small_frame, tmp_path):
    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    detector = tmp_path / "detector.pt"
    YOLO("yolov8n.yaml").save(detector)
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="img")
    widget._weights.value = detector
    assert widget._model.value == str(detector.resolve())
    run_and_wait(qtbot, widget)
    assert "detection-only" in widget._status.value
    assert [layer.name for layer in viewer.layers] == ["img"]


def test_progress_moves_per_tile_in_a_large_frame(qtbot, viewer_and_widget):
    from napari_livecell.core.training.synthetic import synthesize_image

    viewer, widget = viewer_and_widget
    viewer.add_image(synthesize_image(seed=4, n_cells=300, shape=(1040, 1408)).image, name="big")
    seen = []
    worker = widget.run()
    worker.yielded.connect(seen.append)
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    within_frame = {done for done, total in seen if 0 < done < total}
    assert len(within_frame) >= 5  # 6 tiles of 704 x 704
    assert viewer.layers["big cells"].data.max() > 200


def test_service_url_as_model_gives_the_same_cells(qtbot, viewer_and_widget, small_frame, server):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="local")
    run_and_wait(qtbot, widget)
    local = viewer.layers["local cells"]
    viewer.add_image(small_frame.image, name="remote")
    widget._image.value = viewer.layers["remote"]
    widget._service.value = server
    run_and_wait(qtbot, widget)
    remote = viewer.layers["remote cells"]
    assert remote.data.max() == local.data.max() > 10
    assert np.array_equal(remote.data > 0, local.data > 0)
    assert np.allclose(sorted(remote.features["score"]), sorted(local.features["score"]), atol=1e-4)


def test_unreachable_service_is_reported(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="img")
    widget._service.value = "http://127.0.0.1:9"  # discard port: nothing listens
    run_and_wait(qtbot, widget)
    assert "cannot reach" in widget._status.value
    assert [layer.name for layer in viewer.layers] == ["img"]


def test_rerun_asks_before_replacing_edited_layers(qtbot, viewer_and_widget, small_frame):
    viewer, widget = viewer_and_widget
    viewer.add_image(small_frame.image, name="img")
    run_and_wait(qtbot, widget)
    cells = viewer.layers["img cells"]
    rows, cols = np.nonzero(cells.data == 1)
    cells.data_setitem((rows, cols), 0)  # the user erases a cell
    assert cells.metadata["napari_livecell"]["edited"]
    asked = []
    widget.confirm_replace = lambda names: asked.append(names) or False
    run_and_wait(qtbot, widget)
    assert asked == ["img cells"]
    assert 1 not in viewer.layers["img cells"].data  # the edit survived
    widget.confirm_replace = lambda names: True
    run_and_wait(qtbot, widget)
    assert 1 in viewer.layers["img cells"].data
