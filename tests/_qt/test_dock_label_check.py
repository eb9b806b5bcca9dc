"""The Track and Measure docks refuse an intensity image opened as labels: one line, nothing counted."""

import numpy as np


def raw_movie(shape=(3, 60, 70)):
    rng = np.random.default_rng(1)
    return (rng.poisson(60, shape) + 100).astype(np.uint16)


def test_track_and_measure_refuse_an_intensity_movie(make_napari_viewer, notifications):
    viewer = make_napari_viewer()
    movie = viewer.add_labels(raw_movie(), name="raw movie")
    _, track = viewer.window.add_plugin_dock_widget("napari-livecell", "Track cells")
    _, measure = viewer.window.add_plugin_dock_widget("napari-livecell", "Measure cells")
    assert track._layer.value is movie and measure._labels_box.value is movie
    before = np.array(movie.data, copy=True)

    assert track.run() is None
    assert measure.measure() is None
    refused = [m for m in notifications.messages if "is not a label image" in m]
    assert len(refused) == 2 and all("\n" not in m for m in refused)
    assert "'raw movie' is not a label image: it looks like an intensity image (uint16" in refused[0]
    assert "is not a label image" in track._status.value and "is not a label image" in measure._status.value
    assert np.array_equal(movie.data, before) and measure.measurements is None
    assert "raw movie tracks" not in viewer.layers
