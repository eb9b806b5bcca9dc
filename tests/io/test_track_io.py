"""Tracking formats through npe2: CTC folders and ImageJ ROI sets open as layers; Labels save as ROI sets."""

import zipfile

import numpy as np
import pytest

from napari_livecell.core.formats.ctc import write_ctc
from napari_livecell.core.tracking.track import graph_from_lineage, tracks_from_labels
from napari_livecell.core.training.synthetic import synthesize_timelapse
from napari_livecell.io.read_tracks import get_ctc_reader, get_roi_reader
from napari_livecell.io.sample_data import sample_timelapse


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=21, n_frames=4, n_cells=20, shape=(120, 150))


def layer_of(layers, kind):
    return next(layer for layer in layers if layer[2] == kind)


def test_ctc_folder_opens_as_labels_and_tracks(lapse, tmp_path):
    import npe2

    npe2.PluginManager.instance().discover()
    folder = tmp_path / "RES"
    write_ctc(folder, lapse.track_labels, graph_from_lineage(lapse.lineage))
    layers = npe2.read([str(folder)], plugin_name="napari-livecell", stack=False)
    labels, attributes, _ = layer_of(layers, "labels")
    assert np.array_equal(np.asarray(labels), lapse.track_labels)
    tracks, track_attributes, _ = layer_of(layers, "tracks")
    table = tracks_from_labels(lapse.track_labels)
    assert np.allclose(tracks, table[["track_id", "t", "y", "x"]].to_numpy())
    assert track_attributes["graph"] == graph_from_lineage(lapse.lineage)
    assert track_attributes["name"] == f"{attributes['name']} tracks"


def test_ground_truth_folder_is_read_too(lapse, tmp_path):
    write_ctc(
        tmp_path / "01_GT" / "TRA", lapse.track_labels, graph_from_lineage(lapse.lineage), ground_truth=True
    )
    reader = get_ctc_reader(str(tmp_path / "01_GT"))
    assert reader is not None
    labels = layer_of(reader(str(tmp_path / "01_GT")), "labels")[0]
    assert np.array_equal(labels, lapse.track_labels)


def test_roi_set_round_trip_through_npe2(lapse, tmp_path):
    import npe2

    npe2.PluginManager.instance().discover()
    stack = lapse.track_labels
    path = tmp_path / "cells.zip"
    written = npe2.write(str(path), [(stack, {"name": "cells"}, "labels")], plugin_name="napari-livecell")
    assert written == [str(path)]
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".roi") for name in archive.namelist())
    layers = npe2.read([str(path)], plugin_name="napari-livecell", stack=False)
    labels = layer_of(layers, "labels")[0]
    # ROI sets carry no image size: the stack ends with its last cell
    height, width = labels.shape[1:]
    assert labels.shape[0] == stack.shape[0] and height <= stack.shape[1] and width <= stack.shape[2]
    assert stack[:, height - 1].any() and stack[:, :, width - 1].any()
    assert np.array_equal(labels, stack[:, :height, :width])
    assert not stack[:, height:].any() and not stack[:, :, width:].any()


def test_2d_labels_round_trip(tmp_path):
    from napari_livecell.io.read_tracks import read_roi_layers
    from napari_livecell.io.write_tracks import write_labels_roi_zip

    frame = np.zeros((30, 40), np.int32)
    frame[3:10, 4:12], frame[15:29, 20:39] = 5, 7
    frame[18:22, 25:30] = 0  # a hole
    (path,) = write_labels_roi_zip(str(tmp_path / "one"), frame, {})
    assert path.endswith("one.zip")
    labels = read_roi_layers(path)[0][0]
    assert np.array_equal(labels, frame[: labels.shape[0], : labels.shape[1]])


def test_foreign_paths_are_not_claimed(tmp_path):
    plain_zip = tmp_path / "data.zip"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip at all")
    fake_roi = tmp_path / "fake.roi"
    fake_roi.write_bytes(b"nope")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "image.tif").write_bytes(b"")
    for path in (plain_zip, broken, fake_roi, tmp_path / "missing.zip"):
        assert get_roi_reader(str(path)) is None
    for path in (folder, plain_zip, tmp_path / "missing"):
        assert get_ctc_reader(str(path)) is None
    assert get_roi_reader([str(plain_zip)]) is None and get_ctc_reader([str(folder)]) is None


def test_sample_timelapse_truth_keeps_ids_over_time():
    image, truth = sample_timelapse()
    labels = truth[0]
    assert image[0].shape == labels.shape and labels.ndim == 3
    # a cell present in frames 0 and 1 keeps its id: the ids overlap from frame to frame
    first, second = set(np.unique(labels[0])) - {0}, set(np.unique(labels[1])) - {0}
    assert len(first & second) >= 0.8 * len(first)
    table = tracks_from_labels(labels)
    assert table.groupby("track_id")["t"].apply(lambda t: (np.diff(t) == 1).all()).all()
