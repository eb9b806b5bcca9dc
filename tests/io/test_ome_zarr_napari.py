"""OME-Zarr through the plugin in napari: the image and its labels open lazily, Labels save as NGFF labels.

Stores are written by ome-zarr itself and by ``segment --out-format ome-zarr``'s
label sink; what the plugin's writer saves is read back by ome-zarr's Reader.
"""

import numpy as np
import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image

from napari_livecell.core.formats.ome_zarr import open_label_sink, write_label_stack
from napari_livecell.core.images import open_ome_zarr

SCALE = {"t": 1.0, "y": 0.65, "x": 0.65}
UNITS = {"y": "micrometer", "x": "micrometer"}


@pytest.fixture
def store(tmp_path):
    """A (3, 64, 80) image with its labels/cells inside: what napari users open."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 4000, (3, 64, 80)).astype(np.uint16)
    path = tmp_path / "movie.ome.zarr"
    write_image(image, str(path), axes="tyx", scale=SCALE, axes_units=UNITS)
    labels = rng.integers(0, 30, (3, 64, 80)).astype(np.int32)
    with open_label_sink(path, labels.shape, image=open_ome_zarr(path)) as sink:
        for t in range(3):
            sink.write_frame((t,), labels[t])
    return path, image, labels


def test_viewer_opens_image_and_labels_lazily_with_scale(make_napari_viewer, store):
    path, image, labels = store
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-livecell")
    by_name = {layer.name: layer for layer in viewer.layers}
    assert sorted(by_name) == ["movie", "movie cells"]
    picture, cells = by_name["movie"], by_name["movie cells"]
    assert picture._type_string == "image" and cells._type_string == "labels"
    assert hasattr(picture.data, "dask") and hasattr(cells.data, "dask")  # nothing read whole
    np.testing.assert_array_equal(np.asarray(picture.data), image)
    np.testing.assert_array_equal(np.asarray(cells.data), labels)
    assert tuple(picture.scale) == tuple(cells.scale) == (1.0, 0.65, 0.65)
    assert cells.metadata["ome_zarr"]["units"] == UNITS


def test_a_huge_frame_opens_as_its_pyramid(tmp_path, monkeypatch):
    import napari_livecell.io.ome_zarr as plugin

    monkeypatch.setattr(plugin, "MULTISCALE_SIDE", 64)
    labels = np.random.default_rng(1).integers(0, 9, (100, 120)).astype(np.int32)
    path = write_label_stack(tmp_path / "big.ome.zarr", labels, pixel_size_um=0.5)
    ((data, kwargs, kind),) = plugin.read_ome_zarr_layers(str(path))
    assert kind == "labels" and kwargs["multiscale"]
    assert [level.shape for level in data] == [(100, 120), (50, 60)]


def test_labels_layer_saves_as_ome_zarr_labels(make_napari_viewer, store, tmp_path):
    path, _, labels = store
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-livecell")
    cells = viewer.layers["movie cells"]
    target = tmp_path / "saved.ome.zarr"
    written = cells.save(str(target), plugin="napari-livecell")
    assert written == [str(target)]
    nodes = list(Reader(parse_url(str(target / "labels")))())
    saved = next(node for node in nodes if node.metadata.get("name") == "cells")
    np.testing.assert_array_equal(np.asarray(saved.data[0]), labels)
    assert [axis["name"] for axis in saved.metadata["axes"]] == ["t", "y", "x"]
    assert saved.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 0.65, 0.65]
    assert [(axis.get("unit")) for axis in saved.metadata["axes"]] == [None, "micrometer", "micrometer"]
    viewer.open(str(target), plugin="napari-livecell")  # and opens again
    np.testing.assert_array_equal(np.asarray(viewer.layers["saved cells"].data), labels)


def test_a_painted_layer_saves_into_its_image_store(make_napari_viewer, store):
    path, image, labels = store
    viewer = make_napari_viewer()
    painted = labels.copy()
    painted[0, :10, :10] = 99
    layer = viewer.add_labels(painted, name="edited", scale=(1.0, 0.65, 0.65))
    assert layer.save(str(path), plugin="napari-livecell") == [str(path)]
    nodes = list(Reader(parse_url(str(path)))())
    assert [node.metadata.get("name") for node in nodes][-1] == "cells"
    np.testing.assert_array_equal(np.asarray(nodes[-1].data[0]), painted)
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), image)  # the image is kept
    assert sorted(p.name for p in path.parent.iterdir()) == ["movie.ome.zarr"]  # nothing left behind


def test_folders_that_are_not_ome_zarr_are_not_claimed(tmp_path):
    from napari_livecell.io.ome_zarr import get_ome_zarr_reader

    (tmp_path / "plain.zarr").mkdir()
    assert get_ome_zarr_reader(str(tmp_path / "plain.zarr")) is None
    assert get_ome_zarr_reader(str(tmp_path)) is None
    assert get_ome_zarr_reader([str(tmp_path)]) is None


def test_the_review_dock_reads_ome_zarr_images(tmp_path, small_frame):
    import tifffile

    from napari_livecell._qt.review_widget import segment_dataset
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.io.review import ReviewDataset

    plate = tmp_path / "plate"
    plate.mkdir()
    write_image(small_frame.image, str(plate / "well_a.ome.zarr"), axes="yx", scale={"y": 0.5, "x": 0.5},
                axes_units={"y": "micrometer", "x": "micrometer"})  # fmt: skip
    tifffile.imwrite(plate / "well_b.tif", small_frame.image)
    dataset = ReviewDataset.open(plate)
    assert sorted(dataset.queue()) == ["well_a", "well_b"]
    data, _, kind = dataset.image_layer("well_a")
    assert kind == "image" and hasattr(data, "dask")
    np.testing.assert_array_equal(np.asarray(data), small_frame.image)
    steps = list(segment_dataset(dataset, ["well_a"], None, PredictSettings()))
    assert steps[-1] == (1, 1, "well_a")
    assert dataset.index.entry("well_a").n_cells > 10


def test_layer_scale_is_in_micrometres_whatever_the_stored_unit(tmp_path):
    from napari_livecell.io.ome_zarr import read_ome_zarr_layers, write_labels_ome_zarr

    path = tmp_path / "nm.ome.zarr"
    write_image(np.zeros((2, 32, 40), np.uint8), str(path), axes="tyx", scale={"t": 1, "y": 650, "x": 650},
                axes_units={"t": "second", "y": "nanometer", "x": "nanometer"})  # fmt: skip
    ((_, kwargs, kind),) = read_ome_zarr_layers(str(path))
    assert kind == "image" and kwargs["scale"] == pytest.approx((1.0, 0.65, 0.65))
    labels = np.ones((2, 32, 40), np.int32)
    write_labels_ome_zarr(str(tmp_path / "out.ome.zarr"), labels, kwargs)
    saved = open_ome_zarr(tmp_path / "out.ome.zarr" / "labels" / "cells")
    assert saved.units == {"y": "micrometer", "x": "micrometer"}
    assert saved.pixel_size_um == pytest.approx(0.65)


def test_the_segment_widget_segments_an_opened_ome_zarr(make_napari_viewer, qtbot, tmp_path, small_frame):
    from napari_livecell._qt.segment_widget import SegmentCellsWidget

    path = tmp_path / "plate.ome.zarr"
    write_image(np.stack([small_frame.image] * 2), str(path), axes="tyx", scale={"t": 1, "y": 500, "x": 500},
                axes_units={"y": "nanometer", "x": "nanometer"})  # fmt: skip
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-livecell")
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    assert isinstance(widget, SegmentCellsWidget)
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    cells = viewer.layers["plate cells"]
    assert cells.data.shape == (2, 256, 320) and tuple(cells.scale) == pytest.approx((1.0, 0.5, 0.5))
    per_frame = [len(np.unique(np.asarray(frame))) - 1 for frame in cells.data]
    assert per_frame[0] > 10 and per_frame[0] == per_frame[1]


def test_the_labels_layer_is_named_as_the_docks_pair_it():
    from napari_livecell.io.ome_zarr import CELLS_SUFFIX
    from napari_livecell.layers import cells_layer_name

    assert cells_layer_name("movie") == f"movie{CELLS_SUFFIX}"
