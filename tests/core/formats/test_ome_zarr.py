"""OME-Zarr in and out: images read lazily with their axes and pixel size, labels written frame by frame.

Images are written by ome-zarr's own writer (NGFF 0.4 on Zarr v2, 0.5 on
Zarr v3); labels are read back by ome-zarr's own Reader.
"""

import json

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image

from napari_livecell.core.formats.ome_zarr import (
    OmeZarrError,
    open_label_sink,
    pyramid_shapes,
    read_labels,
    write_label_stack,
)
from napari_livecell.core.images import ImageReadError, find_images, open_ome_zarr, read_image
from napari_livecell.core.inference.pixel_size import image_pixel_size


def write_ngff(path, data, axes, scale=None, units=None, version="0.5"):
    """An OME-Zarr image written by ome-zarr itself."""
    if version == "0.4":
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        write_image(data, group, axes=axes, fmt=FormatV04(), scale=scale, axes_units=units)
    else:
        write_image(data, str(path), axes=axes, scale=scale, axes_units=units)
    return path


def random_labels(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 40, shape).astype(np.int32)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_image_opens_lazily_with_axes_and_pixel_size(tmp_path, version):
    data = np.arange(3 * 2 * 40 * 48, dtype=np.uint16).reshape(3, 2, 40, 48)
    units = {"y": "nanometer", "x": "nanometer"}
    scale = {"t": 1, "c": 1, "y": 650, "x": 650}
    path = write_ngff(tmp_path / "a.ome.zarr", data, "tcyx", scale, units, version)
    image = open_ome_zarr(path)
    assert image.version == version
    assert image.store_axes == "tcyx" and image.axes == "tyxc"  # channels last, as channel_axis finds them
    assert hasattr(image.data, "dask")  # nothing read yet
    np.testing.assert_array_equal(image.data.compute(), np.moveaxis(data, 1, -1))
    assert image.pixel_size_um == pytest.approx(0.65)
    assert image_pixel_size(path) == (pytest.approx(0.65), "file metadata")
    assert image_pixel_size(path, 0.5) == (0.5, "--pixel-size")
    assert read_image(path).shape == (3, 40, 48, 2)


def test_length_one_axes_are_dropped_as_tifffile_drops_them(tmp_path):
    data = np.ones((1, 1, 1, 30, 40), dtype=np.uint8)
    image = open_ome_zarr(write_ngff(tmp_path / "b.ome.zarr", data, "tczyx"))
    assert image.axes == "yx" and image.data.shape == (30, 40)
    assert image.pixel_size_um is None  # no unit: unknown, as a TIFF without metadata


def test_a_folder_of_images_finds_ome_zarr_images_but_not_labels_stores(tmp_path):
    write_ngff(tmp_path / "a.ome.zarr", np.zeros((32, 32), np.uint8), "yx")
    write_label_stack(tmp_path / "b.ome.zarr", random_labels((32, 32)))
    assert [p.name for p in find_images([str(tmp_path)])] == ["a.ome.zarr"]
    assert [p.name for p in find_images([str(tmp_path / "a.ome.zarr")])] == ["a.ome.zarr"]


def _attributes_file(path):
    return path / ("zarr.json" if (path / "zarr.json").exists() else ".zattrs")


def _edit_metadata(path, edit):
    """Change a store's multiscales metadata in place (as a broken writer would have left it)."""
    attributes_file = _attributes_file(path)
    content = json.loads(attributes_file.read_text())
    attributes = content.get("attributes", content)
    ome = attributes.get("ome", attributes)
    edit(ome)
    attributes_file.write_text(json.dumps(content))


def _axes(ome):
    return ome["multiscales"][0]["axes"]


def _scale(ome):
    return ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]


ODD_METADATA = {
    "no multiscales": (lambda ome: ome.pop("multiscales"), "no OME-Zarr multiscales metadata"),
    "unknown axis": (lambda ome: _axes(ome)[0].update(name="q"), "unknown axis 'q'"),
    "not a length": (lambda ome: _axes(ome)[-1].update(unit="second"), "unit 'second', not a length"),
    "zero scale": (lambda ome: _scale(ome).__setitem__(-1, 0), "scale 0: pixel sizes must be positive"),
    "missing array": (
        lambda ome: ome["multiscales"][0]["datasets"][0].update(path="gone"),
        "dataset 'gone' named by the multiscales metadata is missing",
    ),
    "no axes": (lambda ome: ome["multiscales"][0].pop("axes"), "names no axes"),
    "y, x not last": (lambda ome: _axes(ome).reverse(), "the last two axes must be y, x"),
}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("case", sorted(ODD_METADATA))
def test_odd_metadata_is_one_line(tmp_path, case, version):
    edit, message = ODD_METADATA[case]
    path = write_ngff(tmp_path / "odd.ome.zarr", np.zeros((2, 32, 32), np.uint8), "tyx", version=version)
    _edit_metadata(path, edit)
    with pytest.raises(ImageReadError, match=message) as error:
        read_image(path)
    assert "\n" not in str(error.value) and str(error.value).startswith("odd.ome.zarr: ")


def test_a_plain_folder_is_still_refused(tmp_path):
    with pytest.raises(ImageReadError, match="is a folder, not an image"):
        read_image(tmp_path)


def test_pyramid_halves_until_small():
    assert pyramid_shapes(20000, 20000) == [(n, n) for n in (20000, 10000, 5000, 2500, 1250, 625, 313, 157)]
    shapes = pyramid_shapes(20000, 15000)
    assert shapes[0] == (20000, 15000) and max(shapes[-1]) <= 256 and max(shapes[-2]) > 256
    assert pyramid_shapes(64, 80) == [(64, 80), (32, 40)]  # two levels at least


def test_labels_written_frame_by_frame_read_back_by_ome_zarr(tmp_path):
    labels = random_labels((3, 64, 80))
    store = write_label_stack(tmp_path / "movie.ome.zarr", labels, pixel_size_um=0.65)
    nodes = list(Reader(parse_url(str(store / "labels")))())
    cells = next(node for node in nodes if node.metadata.get("name") == "cells")
    np.testing.assert_array_equal(np.asarray(cells.data[0]), labels)
    np.testing.assert_array_equal(np.asarray(cells.data[1]), labels[:, ::2, ::2])  # nearest neighbour
    assert [axis["name"] for axis in cells.metadata["axes"]] == ["t", "y", "x"]
    assert cells.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 0.65, 0.65]
    assert cells.metadata["coordinateTransformations"][1][0]["scale"] == [1.0, 1.3, 1.3]
    assert cells.metadata["color"] == {0: [0, 0, 0, 0]}
    back = read_labels(store)
    assert back.pixel_size_um == pytest.approx(0.65) and back.units["x"] == "micrometer"
    assert not list(tmp_path.glob(".*"))  # the build folder was renamed into place


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_go_inside_an_image_store_tile_by_tile(tmp_path, version):
    image = np.zeros((2, 1, 64, 80), np.uint16)
    scale = {"t": 1, "c": 1, "y": 0.5, "x": 0.5}
    units = {"y": "micrometer", "x": "micrometer"}
    path = write_ngff(tmp_path / "img.ome.zarr", image, "tcyx", scale, units, version)
    labels = random_labels((2, 64, 80), seed=1)
    opened = open_ome_zarr(path)
    with open_label_sink(path, (2, 64, 80), image=opened) as sink:
        for t in range(2):
            for row in (0, 27):  # overlapping tiles at odd offsets: each level takes its own grid
                for col in (0, 33):
                    sink.write_tile((t,), row, col, labels[t, row : row + 37, col : col + 47])
    nodes = list(Reader(parse_url(str(path)))())
    assert [node.metadata.get("name") for node in nodes][-1] == "cells"
    cells = nodes[-1]
    np.testing.assert_array_equal(np.asarray(cells.data[0]), labels)
    np.testing.assert_array_equal(np.asarray(cells.data[1]), labels[:, ::2, ::2])
    assert cells.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 0.5, 0.5]
    np.testing.assert_array_equal(read_image(path).compute(), image[:, 0])  # the image is untouched
    assert read_labels(path).version == version


def test_a_failed_write_leaves_the_store_as_it_was(tmp_path):
    first = random_labels((32, 32), seed=2)
    store = write_label_stack(tmp_path / "x.ome.zarr", first)
    with pytest.raises(RuntimeError), open_label_sink(store, (32, 32)) as sink:
        sink.write_frame((), np.zeros((32, 32), np.int32))
        raise RuntimeError("the model failed")
    np.testing.assert_array_equal(read_labels(store).data.compute(), first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ome.zarr"]


def test_a_folder_that_is_not_a_store_is_never_replaced(tmp_path):
    (tmp_path / "mine.ome.zarr").mkdir()
    (tmp_path / "mine.ome.zarr" / "notes.txt").write_text("keep")
    with pytest.raises(OmeZarrError, match="is not an OME-Zarr store: it is left as it is"):
        open_label_sink(tmp_path / "mine.ome.zarr", (32, 32))
    assert (tmp_path / "mine.ome.zarr" / "notes.txt").read_text() == "keep"


def test_labels_that_do_not_fit_are_refused(tmp_path):
    path = write_ngff(tmp_path / "img.ome.zarr", np.zeros((64, 80), np.uint8), "yx")
    with pytest.raises(OmeZarrError, match=r"do not fit the image in img.ome.zarr \(shape \(64, 80\)\)"):
        open_label_sink(path, (64, 81))
    with open_label_sink(tmp_path / "new.ome.zarr", (64, 80)) as sink:
        with pytest.raises(OmeZarrError, match="do not fit frames of 64 x 80"):
            sink.write_tile((), 40, 0, np.zeros((30, 80), np.int32))
        with pytest.raises(OmeZarrError, match=r"frame index \(1,\) is outside"):
            sink.write_frame((1,), np.zeros((64, 80), np.int32))


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    labels = random_labels((4, 48, 64), seed=3)
    target = tmp_path / "movie.ome.zarr"
    sink = open_label_sink(target, labels.shape, dtype=np.uint16)
    sink.write_frame((0,), labels[0])
    sink.write_frame((1,), labels[1])
    state = sink.checkpoint()
    assert state["frames"] == 2
    sink.write_tile((2,), 0, 0, np.full((10, 64), 7))  # a frame cut short by the interruption
    del sink  # the process dies: nothing is in place yet
    assert not target.exists()
    again = open_label_sink(target, labels.shape, dtype=np.uint16, resume=state)
    assert again.frames_done == 2
    for t in (2, 3):
        again.write_frame((t,), labels[t])
    assert again.checkpoint()["frames"] == 4
    again.close()
    back = read_labels(target).data
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back.compute(), labels)


def test_a_resume_into_labels_of_another_shape_starts_over_with_one_line(tmp_path):
    target = tmp_path / "movie.ome.zarr"
    sink = open_label_sink(target, (2, 48, 64))
    sink.write_frame((0,), random_labels((48, 64)))
    with pytest.raises(
        OmeZarrError, match=r"holds labels of shape \(2, 48, 64\), not \(2, 48, 80\): start over"
    ):
        open_label_sink(target, (2, 48, 80), resume=sink.checkpoint())


def test_the_streaming_loop_layout_makes_a_sink(tmp_path):
    from dataclasses import dataclass

    from napari_livecell.core.formats.ome_zarr import ome_zarr_label_sink

    @dataclass
    class Layout:  # the fields of the streaming loop's LabelLayout
        leading: tuple
        frame_shape: tuple
        dtype: np.dtype

    sink = ome_zarr_label_sink(tmp_path / "a.ome.zarr", Layout((2,), (32, 40), np.dtype(np.uint32)), None)
    for t in range(2):
        sink.write_frame((t,), np.full((32, 40), t + 1))
    sink.close()
    np.testing.assert_array_equal(read_labels(tmp_path / "a.ome.zarr").data[:, 0, 0].compute(), [1, 2])


@pytest.mark.parametrize("order", ["row-major", "shuffled", "column-major"])
def test_tiles_in_any_order_give_the_pyramid_of_the_whole_frame(tmp_path, monkeypatch, order):
    import napari_livecell.core.formats.ome_zarr as ome_zarr

    monkeypatch.setattr(ome_zarr, "CHUNK_SIDE", 32)  # many chunk rows in a small frame
    labels = random_labels((2, 200, 150), seed=4)
    whole = write_label_stack(tmp_path / "whole.ome.zarr", labels)
    origins = [(t, row, col) for t in range(2) for row in range(0, 200, 45) for col in range(0, 150, 37)]
    if order == "shuffled":
        np.random.default_rng(0).shuffle(origins)
    elif order == "column-major":
        origins.sort(key=lambda origin: (origin[0], origin[2], origin[1]))
    with open_label_sink(tmp_path / "tiles.ome.zarr", labels.shape) as sink:
        for t, row, col in origins:
            sink.write_tile((t,), row, col, labels[t, row : row + 45, col : col + 37])
    expected, got = read_labels(whole), read_labels(tmp_path / "tiles.ome.zarr")
    assert len(got.pyramid) == len(expected.pyramid) == 2
    for mine, theirs in zip(got.pyramid, expected.pyramid):
        np.testing.assert_array_equal(mine.compute(), theirs.compute())
