"""The "Track cells" widget in a real viewer: relabel in place, Tracks layer, undo, review, growth."""

import numpy as np
import pytest

from napari_livecell._qt.track_widget import TrackCellsWidget
from napari_livecell.core.training.synthetic import synthesize_timelapse

SHAPE = (140, 170)


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=7, n_frames=5, n_cells=30, shape=SHAPE)


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Track cells")
    assert isinstance(widget, TrackCellsWidget)
    return viewer, widget


@pytest.fixture
def errors(monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    return shown


def run_and_wait(qtbot, widget):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    return worker


def test_tracks_relabel_in_place_and_undo_restores(qtbot, viewer_and_widget, lapse):
    viewer, widget = viewer_and_widget
    layer = viewer.add_labels(lapse.labels.copy(), name="movie", scale=(1, 0.5, 0.5))
    widget._layer.value = layer
    run_and_wait(qtbot, widget)

    tracked = np.asarray(layer.data)
    assert np.array_equal(tracked > 0, lapse.labels > 0)
    # one id per true cell along its whole life
    for track_id, first, last, _ in lapse.lineage:
        ids = {
            int(np.bincount(tracked[t][lapse.track_labels[t] == track_id]).argmax())
            for t in range(first, last + 1)
        }
        assert len(ids) == 1 and 0 not in ids, (track_id, ids)

    tracks = viewer.layers["movie tracks"]
    assert len(widget.result.table) == len(tracks.data)
    # the Tracks layer sits on the labels' centroids, in the same world coordinates
    for track_id, t, y, x in tracks.data[:: max(len(tracks.data) // 25, 1)]:
        frame = tracked[int(t)]
        rows, cols = np.nonzero(frame == int(track_id))
        assert np.isclose(rows.mean(), y) and np.isclose(cols.mean(), x)
    assert tuple(tracks.scale) == (1, 0.5, 0.5)
    assert tracks.graph and all(parent in set(tracks.data[:, 0]) for (parent,) in tracks.graph.values())
    assert {"track_id", "area", "length", "divides"} <= set(tracks.features.columns)
    assert "Ctrl+Z" in widget._status.value

    layer.undo()
    assert np.array_equal(np.asarray(layer.data), lapse.labels)

    # a second run updates the Tracks layer instead of adding another
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers


def test_next_track_to_review_moves_time_and_camera(qtbot, viewer_and_widget, lapse):
    viewer, widget = viewer_and_widget
    labels = lapse.labels.copy()
    # a false detection in frame 2 only: a singleton to review
    labels[2, 5:10, 5:10] = labels.max() + 1
    layer = viewer.add_labels(labels, name="movie")
    widget._layer.value = layer
    viewer.dims.set_point(0, 0)
    run_and_wait(qtbot, widget)
    assert not widget.flags.empty
    singletons = widget.flags[widget.flags["kind"] == "singleton"]
    assert 2 in set(singletons["t"])
    seen = []
    for _ in range(len(widget.flags)):
        flag = widget.next_review()
        seen.append(flag)
        assert viewer.dims.current_step[0] == flag["t"]
        camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
        assert np.allclose(camera.center[-2:], (flag["y"], flag["x"]))
    assert any(f["kind"] == "singleton" and f["t"] == 2 for f in seen)
    assert "track" in widget._review.value


def test_growth_plot_equals_counts_and_follows_edits(qtbot, viewer_and_widget, lapse, tmp_path):
    viewer, widget = viewer_and_widget
    layer = viewer.add_labels(lapse.labels.copy(), name="movie")
    widget._layer.value = layer
    qtbot.waitUntil(lambda: widget.growth is not None, timeout=5_000)
    counts = [len(np.unique(frame)) - 1 for frame in lapse.labels]
    assert widget.growth["cell_count"].tolist() == counts
    assert widget.figure.axes[0].lines[0].get_ydata().tolist() == counts
    # an edit: one cell of frame 1 erased; the plot follows after the pause
    victim = int(lapse.labels[1].max())
    indices = np.nonzero(lapse.labels[1] == victim)
    layer.data_setitem((np.full(indices[0].size, 1), *indices), 0)
    qtbot.waitUntil(lambda: widget.growth["cell_count"][1] == counts[1] - 1, timeout=5_000)
    assert widget.figure.axes[0].lines[0].get_ydata()[1] == counts[1] - 1
    csv = widget.save_growth_csv(tmp_path / "growth.csv")
    png = widget.save_growth_png(tmp_path / "growth.png")
    assert csv.read_text().splitlines()[0].startswith("frame,cell_count")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_bad_input_is_one_line(qtbot, viewer_and_widget, errors, lapse):
    viewer, widget = viewer_and_widget
    assert widget.run() is None
    assert len(errors) == 1 and "no Labels layer" in errors[0] and "\n" not in errors[0]
    flat = viewer.add_labels(lapse.labels[0].copy(), name="flat")
    widget._layer.value = flat
    assert widget.run() is None
    assert "2-D" in errors[-1] and "\n" not in errors[-1]
    assert widget.next_review() is None


def test_cancel_leaves_the_layer_unchanged(qtbot, viewer_and_widget, lapse):
    viewer, widget = viewer_and_widget
    layer = viewer.add_labels(lapse.labels.copy(), name="movie")
    widget._layer.value = layer
    worker = widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert worker.abort_requested
    assert np.array_equal(np.asarray(layer.data), lapse.labels)
    assert "movie tracks" not in viewer.layers


def test_correcting_an_id_touches_two_tracks_and_undo_restores(qtbot, viewer_and_widget, lapse):
    viewer, widget = viewer_and_widget
    layer = viewer.add_labels(lapse.labels.copy(), name="movie", scale=(1, 0.5, 0.5))
    widget._layer.value = layer
    run_and_wait(qtbot, widget)
    tracked = np.array(layer.data)
    tracks = viewer.layers["movie tracks"]
    before_tracks, before_features = tracks.data.copy(), tracks.features.copy()
    table = widget.result.table
    spans = table.groupby("track_id")["t"].agg(["min", "max"])
    a, b = spans[(spans["min"] == 0) & (spans["max"] == 4)].index[:2]

    # the user selects cell a, goes to frame 2 and says it is b from there on
    layer.selected_label = int(a)
    viewer.dims.set_point(0, 2)
    widget._new_id.value = int(b)
    widget._correct.changed.emit(True)
    correction = widget.corrections[-1]
    assert correction.relinked_frames == (2,)
    data = np.asarray(layer.data)
    changed = data != tracked
    assert not changed[:2].any() and set(np.unique(tracked[changed])) == {a, b}
    assert np.array_equal(data[2:][tracked[2:] == a], np.full(int((tracked[2:] == a).sum()), b))
    # the Tracks layer follows: b's rows from frame 2 sit on a's former cells
    rows = tracks.data[(tracks.data[:, 0] == b) & (tracks.data[:, 1] >= 2)]
    for _, t, y, x in rows:
        r, c = np.nonzero(data[int(t)] == b)
        assert np.isclose(r.mean(), y) and np.isclose(c.mean(), x)
    assert len(tracks.data) == len(before_tracks)

    widget._undo_correct.changed.emit(True)
    assert np.array_equal(np.asarray(layer.data), tracked)
    assert np.array_equal(tracks.data, before_tracks)
    assert tracks.features.equals(before_features)
    assert not widget.corrections and not widget._undo_correct.enabled


def test_a_correction_before_tracking_is_one_line(qtbot, viewer_and_widget, errors, lapse):
    viewer, widget = viewer_and_widget
    viewer.add_labels(lapse.labels.copy(), name="movie")
    assert widget.correct_id(1, 2, 0) is None
    assert len(errors) == 1 and "track a stack first" in errors[0]
