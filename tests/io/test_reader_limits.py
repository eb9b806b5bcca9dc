"""Readers size their output from the content and refuse before allocating (ROI sets, CTC, COCO, track)."""

import json
import time
import tracemalloc

import numpy as np
import pytest

from napari_livecell.core.formats.ctc import CtcFormatError, read_ctc, write_ctc
from napari_livecell.core.formats.roi import RoiFormatError, paint_rois, read_rois
from napari_livecell.core.limits import LimitError
from napari_livecell.core.segmentation import polygons_to_mask
from napari_livecell.io.read_tracks import get_ctc_reader, read_ctc_layers, read_roi_layers

roifile = pytest.importorskip("roifile")
tifffile = pytest.importorskip("tifffile")


def _square(x: float, y: float, side: float = 4.0) -> np.ndarray:
    return np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.float32)


def _roi_zip(path, *rois) -> str:
    roifile.roiwrite(path, list(rois))
    return str(path)


def _roi(points, name="cell", t=None):
    return roifile.ImagejRoi.frompoints(np.asarray(points, np.float32), name=name, position=t, t=t)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


def test_a_roi_at_60000_in_a_tiny_zip_is_refused_before_allocating(tmp_path):
    path = _roi_zip(tmp_path / "far.zip", _roi(_square(60_000, 60_000)))
    assert (tmp_path / "far.zip").stat().st_size < 1000
    tracemalloc.start()
    with pytest.raises(LimitError) as refused:
        read_roi_layers(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "GiB limit" in _one_line(refused) and "NAPARI_LIVECELL_MAX_LABEL_GIB" in str(refused.value)
    assert peak < 20 * 2**20


@pytest.mark.parametrize(
    ("points", "match"),
    [
        (_square(1e9, 5), "outside any frame"),
        (_square(-5, 5), "outside any frame"),
        (np.array([[5, 5], [np.nan, 9], [9, 9]], np.float32), "outside any frame"),
    ],
    ids=["1e9", "negative", "nan"],
)
def test_rois_outside_any_frame_get_one_line(tmp_path, points, match):
    roi = _roi(points)
    if np.isnan(points).any():  # frompoints rounds the integer copy: put the NaN in the sub-pixel one
        roi.subpixel_coordinates = np.asarray(points, np.float32) - [roi.left, roi.top]
    path = _roi_zip(tmp_path / "bad.zip", _roi(_square(2, 2), name="ok"), roi)
    with pytest.raises(RoiFormatError, match=match) as refused:
        read_roi_layers(path)
    assert "'cell'" in _one_line(refused)


def test_a_roi_in_frame_2e9_is_refused(tmp_path):
    path = _roi_zip(tmp_path / "late.zip", _roi(_square(2, 2), t=2_000_000_000))
    with pytest.raises(LimitError, match="labels of 2000000001 x 8 x 8 would need 476.8 GiB"):
        read_roi_layers(path)


def test_a_roi_named_99999999999_is_refused(tmp_path):
    path = _roi_zip(tmp_path / "named.zip", _roi(_square(2, 2), name="99999999999"))
    with pytest.raises(RoiFormatError, match="99999999999, beyond the largest label id"):
        read_roi_layers(path)


def test_a_damaged_roi_set_gets_one_line(tmp_path):
    path = tmp_path / "cut.zip"
    whole = _roi_zip(tmp_path / "whole.zip", _roi(_square(2, 2)), _roi(_square(9, 9), name="b"))
    import zipfile

    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename)[:30])
    with pytest.raises(RoiFormatError) as refused:
        read_roi_layers(str(path))
    _one_line(refused)


def test_rois_are_painted_in_their_boxes_as_on_the_whole_frame(tmp_path):
    rng = np.random.default_rng(0)
    rois = []
    for index in range(30):
        centre = rng.uniform(0, 60, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        ring = centre + np.c_[np.cos(angles), np.sin(angles)] * rng.uniform(1, 8)
        rois.append(_roi(np.clip(ring, 0, None), name=f"{index + 1:05d}"))
    path = _roi_zip(tmp_path / "many.zip", *rois)
    cells = read_rois(path)
    painted = paint_rois(cells, (64, 64))
    expected = np.zeros((64, 64), np.int32)
    for cell in cells:
        expected[polygons_to_mask(cell.rings, (64, 64))] = cell.cell
    np.testing.assert_array_equal(painted, expected)


def test_roi_painting_costs_roi_area_not_frame_area(tmp_path):
    """2,000 small ROIs on a 4096 x 4096 frame: each painted within its box (the frame: ~2,000 x 16 M px)."""
    rois = [
        _roi(_square(40 + (i % 50) * 80, 40 + (i // 50) * 80, 6), name=f"{i + 1:05d}") for i in range(2000)
    ]
    path = _roi_zip(tmp_path / "spread.zip", *rois)
    cells = read_rois(path)
    started = time.perf_counter()
    labels = paint_rois(cells, (4096, 4096))
    elapsed = time.perf_counter() - started
    assert labels.max() == 2000 and np.count_nonzero(labels) == 2000 * 36
    assert elapsed < 3, f"{elapsed:.1f} s"


# --- Cell Tracking Challenge folders -----------------------------------------------------------


def _ctc(folder, frames, lineage: str):
    folder.mkdir(exist_ok=True)
    for t, frame in enumerate(frames):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", frame)
    (folder / "res_track.txt").write_text(lineage)
    return folder


@pytest.mark.parametrize("track_id", [500_000_000, 4_000_000_000])
def test_huge_track_ids_are_relabelled_densely_and_said(tmp_path, track_id):
    frames = [np.zeros((16, 16), np.uint32) for _ in range(3)]
    for t, frame in enumerate(frames):
        frame[2:6, 2 + t : 6 + t] = track_id
        frame[10:14, 10:14] = 7
    folder = _ctc(tmp_path / "big", frames, f"7 0 2 0\n{track_id} 0 2 7\n")
    tracemalloc.start()
    with pytest.warns(UserWarning, match="relabelled 1..2"):
        layers = read_ctc_layers(str(folder))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    labels, tracks = layers[0][0], layers[1]
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    assert tracks[1]["graph"] == {2: [1]} and set(tracks[0][:, 0].tolist()) == {1, 2}
    assert "relabelled" in layers[0][1]["metadata"]["ctc_relabelled"]
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "lineage",
    ["garbage here\n", "1 0 2\n", "1 0 2 0 5\n", "1 3 2 0\n", "-4 0 1 0\n", "\x00\xff\xfe\n", "1 0 x 0\n"],
    ids=["words", "three", "five", "ends-before-it-begins", "negative", "binary", "letter"],
)
def test_garbage_lineage_gets_one_line(tmp_path, lineage):
    folder = _ctc(tmp_path / "bad", [np.ones((8, 8), np.uint16)], "1 0 0 0\n")
    (folder / "res_track.txt").write_bytes(lineage.encode("latin-1"))
    with pytest.raises(CtcFormatError) as refused:
        read_ctc(folder)
    assert "res_track.txt" in _one_line(refused)


def test_masks_of_different_shapes_get_one_line_even_read_lazily(tmp_path):
    frames = [np.ones((8, 8), np.uint16) for _ in range(41)] + [np.ones((9, 8), np.uint16)] * 2
    frames[40] = np.ones((8, 9), np.uint16)
    folder = _ctc(tmp_path / "ragged", frames, "1 0 42 0\n")
    for lazy in (False, True):
        with pytest.raises(CtcFormatError, match="mask040.tif is 8 x 9") as refused:
            read_ctc(folder, lazy=lazy)
        _one_line(refused)


def test_masks_without_digits_get_one_line_from_the_reader(tmp_path):
    folder = _ctc(tmp_path / "names", [np.ones((8, 8), np.uint16)], "1 0 0 0\n")
    tifffile.imwrite(folder / "mask.tif", np.ones((8, 8), np.uint16))
    reader = get_ctc_reader(str(folder))
    assert reader is read_ctc_layers
    with pytest.raises(CtcFormatError, match="mask.tif has no frame number") as refused:
        reader(str(folder))
    _one_line(refused)


def test_a_mask_that_is_not_a_tiff_gets_one_line(tmp_path):
    folder = _ctc(tmp_path / "text", [np.ones((8, 8), np.uint16)], "1 0 1 0\n")
    (folder / "mask001.tif").write_text("not an image")
    with pytest.raises(CtcFormatError, match="mask001.tif is not a readable TIFF"):
        read_ctc(folder)


def test_a_written_ctc_folder_reads_back(tmp_path):
    labels = np.zeros((3, 16, 16), np.int32)
    labels[:, 2:6, 2:6] = 3
    labels[0, 9:12, 9:12] = 5
    labels[2, 9:12, 9:12] = 5  # a gap: written as two tracks
    write_ctc(tmp_path / "out", labels)
    read, lineage = read_ctc(tmp_path / "out")
    assert read.shape == labels.shape and "relabelled" not in lineage.attrs
    assert sorted(lineage["id"].tolist()) == [3, 5, 6]


# --- track and COCO ----------------------------------------------------------------------------


def test_track_on_ids_up_to_2_40_relabels_without_a_table(tmp_path):
    from napari_livecell.core.tracking.track import track_cells

    labels = np.zeros((3, 32, 32), np.int64)
    for t in range(3):
        labels[t, 2:10, 2 + t : 10 + t] = 2**40 + t
        labels[t, 15:25, 15:25] = 2**39
    tracemalloc.start()
    result = track_cells(labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert sorted(np.unique(result.labels).tolist()) == [0, 1, 2]
    assert result.table["track_id"].nunique() == 2


def test_track_refuses_negative_labels():
    from napari_livecell.core.tracking.track import track_cells

    labels = np.zeros((2, 16, 16), np.int32)
    labels[:, 2:6, 2:6] = 1
    labels[1, 9:12, 9:12] = -3
    with pytest.raises(ValueError, match="frame 1 holds the negative label -3"):
        track_cells(labels)


def test_coco_written_with_id_2_40_reads_back(tmp_path):
    from napari_livecell.io.read import read_coco_layers
    from napari_livecell.io.write import write_labels_coco

    labels = np.zeros((32, 32), np.int64)
    labels[4:12, 4:12] = 2**40
    labels[20:28, 20:28] = 5
    write_labels_coco(str(tmp_path / "cells.json"), labels, {"name": "ids", "features": None, "metadata": {}})
    assert sorted(a["label"] for a in json.loads((tmp_path / "cells.json").read_text())["annotations"]) == [
        5,
        2**40,
    ]
    layers = read_coco_layers(str(tmp_path / "cells.json"))
    read = next(data for data, _, kind in layers if kind == "labels")
    assert sorted(np.unique(read).tolist()) == [0, 5, 2**40]
    np.testing.assert_array_equal(read, labels)
