"""Readers claim only their own files (napari's contract), and sizes are checked before allocating."""

import json
import tracemalloc

import numpy as np
import pytest
import tifffile

from napari_livecell.core.formats.coco import CocoFormatError
from napari_livecell.io.read import get_coco_reader, get_yolo_reader, read_coco_layers
from napari_livecell.io.write import write_labels_coco, write_labels_yolo


@pytest.mark.parametrize(
    "content",
    [
        {"name": "my app", "icons": [], "images": ["icon.png"]},  # a web manifest
        [{"id": 1, "data": {"image": "a.png"}, "annotations": [{"result": []}]}],  # Label Studio
        {"images": {"1": {"filename": "a.png"}}, "annotations": {}},  # VIA-like: images as a dict
        {"images": [{"file_name": "a.png"}], "annotations": []},  # no width/height: not COCO images
    ],
    ids=["web-manifest", "label-studio", "via", "no-sizes"],
)
def test_foreign_json_is_not_claimed(tmp_path, content):
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(content))
    assert get_coco_reader(str(path)) is None


def test_a_large_info_block_does_not_hide_a_coco_file(tmp_path):
    coco = {
        "info": {"description": "x" * 200_000},
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}],
    }
    path = tmp_path / "big_info.json"
    path.write_text(json.dumps(coco))
    reader = get_coco_reader(str(path))
    assert reader is not None
    assert reader(str(path))[0][0].shape == (8, 8)


def test_non_utf8_json_gets_a_clear_error(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"images": [], "annotations": [], "info": {"by": "Ren\u00e9"}}'.encode("latin-1"))
    reader = get_coco_reader(str(path))
    assert reader is not None
    with pytest.raises(CocoFormatError, match="not UTF-8"):
        reader(str(path))


def test_a_txt_of_numbers_without_its_image_is_not_claimed(tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_text("0 0.1 0.1 0.2 0.1 0.2 0.2\n")
    assert get_yolo_reader(str(path)) is None
    tifffile.imwrite(tmp_path / "numbers.tif", np.zeros((16, 16), np.uint8))
    assert get_yolo_reader(str(path)) is not None
    (tmp_path / "table.txt").write_text("1 2\n3 4\n")
    assert get_yolo_reader(str(tmp_path / "table.txt")) is None


def test_a_huge_image_is_refused_before_allocating(tmp_path, monkeypatch):
    from napari_livecell.cli import main

    coco = {
        "images": [{"id": 1, "file_name": "huge.png", "width": 100_000, "height": 100_000}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}],
    }
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(
        CocoFormatError, match=r"37\.3 GiB, above the 8 GiB limit .*NAPARI_LIVECELL_MAX_LABEL_GIB"
    ):
        read_coco_layers(str(path))
    assert main(["convert", str(path), str(tmp_path / "tifs"), "--to", "tif"]) == 2
    monkeypatch.setenv("NAPARI_LIVECELL_MAX_LABEL_GIB", "0.000001")
    small = {**coco, "images": [{"id": 1, "file_name": "a.png", "width": 704, "height": 520}]}
    path.write_text(json.dumps(small))
    with pytest.raises(CocoFormatError, match="limit"):
        read_coco_layers(str(path))


@pytest.mark.parametrize("cell_id", [2**40, 30_000_000])
def test_writers_memory_follows_cells_not_the_largest_id(tmp_path, cell_id):
    labels = np.zeros((64, 64), np.int64)
    labels[10:20, 10:20] = cell_id
    labels[30:40, 30:40] = 5
    attributes = {"name": "big ids", "features": None, "metadata": {}}
    tracemalloc.start()
    write_labels_coco(str(tmp_path / "cells.json"), labels, attributes)
    write_labels_yolo(str(tmp_path / "cells.txt"), labels, attributes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB"
    coco = json.loads((tmp_path / "cells.json").read_text())
    assert sorted(a["label"] for a in coco["annotations"]) == sorted([5, cell_id])
    assert len((tmp_path / "cells.txt").read_text().splitlines()) == 2


def test_a_yolo_stack_is_written_whole_or_not_at_all(tmp_path):
    labels = np.zeros((3, 32, 32), np.int32)
    labels[:, 4:12, 4:12] = 1
    (tmp_path / "stack_t0001.txt").mkdir()  # frame 1 cannot be written
    with pytest.raises(OSError):
        write_labels_yolo(
            str(tmp_path / "stack.txt"), labels, {"name": "stack", "features": None, "metadata": {}}
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack_t0001.txt"]
