"""COCO json and YOLO txt: lossless round trips, napari readers/writers, clear errors."""

import json

import numpy as np
import pytest

from napari_livecell.core.analysis.matching import match_cells
from napari_livecell.core.formats.coco import CocoFormatError, annotations_to_labels, load_coco
from napari_livecell.core.formats.yolo import YoloFormatError, parse_yolo_lines, yolo_to_labels
from napari_livecell.core.training.synthetic import synthesize_image
from napari_livecell.io.read import get_coco_reader, get_yolo_reader, read_coco_layers
from napari_livecell.io.write import write_labels_coco, write_labels_yolo


@pytest.fixture(scope="module")
def crowded():
    """Hundreds of touching cells."""
    sample = synthesize_image(seed=31, n_cells=500)
    assert sample.labels.max() >= 400
    return sample


def assert_same_cells(truth: np.ndarray, result: np.ndarray, median: float = 0.99) -> None:
    match = match_cells(truth, result)
    n_truth = int(truth.max())
    assert int(result.max()) == n_truth, "cells lost or merged"
    assert match.n_matched == n_truth
    assert np.median(match.ious) >= median
    areas = np.bincount(truth.ravel())[match.reference_ids]
    assert match.ious[areas >= 30].min() >= 0.95


def test_coco_round_trip_is_exact_through_our_reader(tmp_path, crowded):
    path = tmp_path / "cells.json"
    write_labels_coco(str(path), crowded.labels, {"name": "img"})
    coco = load_coco(path)
    labels = annotations_to_labels(coco["annotations"], 520, 704)
    assert_same_cells(crowded.labels, labels, median=1.0)


def test_pycocotools_reads_our_file_and_reproduces_masks(tmp_path, crowded):
    from pycocotools.coco import COCO

    path = tmp_path / "cells.json"
    write_labels_coco(str(path), crowded.labels, {"name": "img"})
    coco = COCO(str(path))
    reproduced = np.zeros_like(crowded.labels)
    for number, annotation in enumerate(coco.loadAnns(coco.getAnnIds()), start=1):
        reproduced[(coco.annToMask(annotation) > 0) & (reproduced == 0)] = number
    match = match_cells(crowded.labels, reproduced)
    assert match.n_matched == crowded.labels.max()
    assert np.median(match.ious) >= 0.95


def test_yolo_round_trip(tmp_path, crowded):
    path = tmp_path / "cells.txt"
    write_labels_yolo(str(path), crowded.labels, {"name": "img"})
    cells = parse_yolo_lines(path.read_text())
    labels, classes = yolo_to_labels(cells, 520, 704)
    assert set(classes.tolist()) == {0}
    assert_same_cells(crowded.labels, labels)


def test_holes_and_two_part_cells(tmp_path):
    labels = np.zeros((60, 60), np.int32)
    labels[5:30, 5:30] = 1
    labels[12:20, 12:20] = 0  # hole
    labels[40:50, 5:15] = 2
    labels[40:50, 30:40] = 2  # second part
    path = tmp_path / "odd.json"
    write_labels_coco(str(path), labels, {"name": "odd"})
    coco = load_coco(path)
    by_area = {a["area"]: a for a in coco["annotations"]}
    assert isinstance(by_area[int((labels == 1).sum())]["segmentation"], dict)  # RLE keeps the hole
    assert len(by_area[200]["segmentation"]) == 2  # one polygon per part
    assert np.array_equal(annotations_to_labels(coco["annotations"], 60, 60), labels)
    # YOLO has one polygon per line: the largest part is kept, holes are filled
    yolo = tmp_path / "odd.txt"
    write_labels_yolo(str(yolo), labels, {"name": "odd"})
    back, _ = yolo_to_labels(parse_yolo_lines(yolo.read_text()), 60, 60)
    assert (back == 1).sum() == 25 * 25
    assert (back == 2).sum() == 100


def test_features_travel_into_coco_and_back(tmp_path, small_frame):
    labels = small_frame.labels
    n = int(labels.max())
    features = {
        "index": np.arange(1, n + 1),
        "score": np.linspace(0.5, 1.0, n),
        "status": ["accepted"] * (n - 1) + ["edited"],
        "class": ["cell"] * n,
    }
    path = tmp_path / "scored.json"
    write_labels_coco(str(path), labels, {"name": "frame", "features": features})
    layers = read_coco_layers(str(path))
    labels_layer = next(layer for layer in layers if layer[2] == "labels")
    back = labels_layer[1]["features"]
    assert back["status"].count("edited") == 1
    assert max(back["score"]) == pytest.approx(1.0) and min(back["score"]) == pytest.approx(0.5)


def test_livecell_dict_annotations_open(tmp_path, small_frame):
    path = tmp_path / "lc.json"
    write_labels_coco(str(path), small_frame.labels, {"name": "SkBr3_Phase_A1_1_00d00h00m_1.tif"})
    coco = json.loads(path.read_text())
    coco["annotations"] = {str(a["id"]): a for a in coco["annotations"]}
    path.write_text(json.dumps(coco))
    assert get_coco_reader(str(path)) is not None
    layers = read_coco_layers(str(path))
    labels = next(layer for layer in layers if layer[2] == "labels")[0]
    assert labels.max() == small_frame.labels.max()


def test_stack_writes_frames_and_reads_back_as_stack(tmp_path, small_frame):
    stack = np.stack([small_frame.labels, np.roll(small_frame.labels, 3, axis=1)])
    path = tmp_path / "movie.json"
    write_labels_coco(str(path), stack, {"name": "movie"})
    coco = json.loads(path.read_text())
    assert [image["frame"] for image in coco["images"]] == [0, 1]
    layers = read_coco_layers(str(path))
    labels = np.asarray(next(layer for layer in layers if layer[2] == "labels")[0])
    assert labels.shape == stack.shape
    assert (labels[0] > 0).sum() == (stack[0] > 0).sum()
    written = write_labels_yolo(str(tmp_path / "movie.txt"), stack, {"name": "movie"})
    assert [p.split("/")[-1] for p in written] == ["movie_t0000.txt", "movie_t0001.txt"]


def test_npe2_write_and_read_through_the_manifest(tmp_path, small_frame):
    import npe2

    npe2.PluginManager.instance().discover()
    path = tmp_path / "via_npe2.json"
    written = npe2.write(
        str(path), [(small_frame.labels, {"name": "frame"}, "labels")], plugin_name="napari-livecell"
    )
    assert written == [str(path)]
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-livecell")
    assert np.asarray(next(d for d, _, kind in layers if kind == "labels")).max() == small_frame.labels.max()


def test_readers_decline_files_that_are_not_theirs(tmp_path):
    other = tmp_path / "settings.json"
    other.write_text(json.dumps({"theme": "dark"}))
    prose = tmp_path / "notes.txt"
    prose.write_text("remember to image plate 3\n")
    assert get_coco_reader(str(other)) is None
    assert get_yolo_reader(str(prose)) is None
    assert get_coco_reader(str(tmp_path / "missing.json")) is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda text, coco: text[: len(text) // 2], "not valid json"),
        (lambda text, coco: json.dumps({"images": "nope", "annotations": []}), "no 'images' list"),
        (lambda text, coco: _with_segmentation(coco, [[1, 1, 900, 1, 900, 40]]), "outside"),
        (lambda text, coco: _with_segmentation(coco, [[1, 1, 20, 1, 20]]), "odd number"),
        (lambda text, coco: _with_segmentation(coco, [[3, 3, 3, 3, 3, 3]]), "zero area"),
    ],
    ids=["truncated", "wrong-schema", "outside-image", "odd-length", "zero-area"],
)
def test_malformed_coco_gets_a_clear_error(tmp_path, small_frame, mutate, message):
    path = tmp_path / "bad.json"
    write_labels_coco(str(path), small_frame.labels, {"name": "frame"})
    path.write_text(mutate(path.read_text(), json.loads(path.read_text())))
    with pytest.raises(CocoFormatError, match=message):
        read_coco_layers(str(path))


def _with_segmentation(coco: dict, segmentation: list) -> str:
    coco["annotations"][0]["segmentation"] = segmentation
    return json.dumps(coco)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.1 0.1 0.2 0.2", "box"),
        ("0 0.1 0.1 0.2 0.2 0.3", "odd number"),
        ("0 0.1 0.1 0.2 0.2 1.3 0.3", "normalised"),
        ("3 0.1 0.1 0.2 0.2 0.3 0.3", "class 3"),
    ],
)
def test_malformed_yolo_gets_a_clear_error(line, message):
    with pytest.raises(YoloFormatError, match=message):
        parse_yolo_lines(line, "x.txt", n_classes=1)


def test_failed_write_keeps_the_previous_export(tmp_path, small_frame):
    path = tmp_path / "keep.json"
    write_labels_coco(str(path), small_frame.labels, {"name": "frame"})
    before = path.read_text()
    with pytest.raises(ValueError):
        write_labels_coco(str(path), small_frame.labels.astype(float), {"name": "frame"})
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]


def test_exports_get_the_permissions_of_a_plainly_written_file(tmp_path, small_frame):
    """Atomic writes go through a private temporary file; the export must not stay private."""
    import os

    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    export = tmp_path / "export.json"
    write_labels_coco(str(export), small_frame.labels, {"name": "frame"})
    assert export.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    os.chmod(export, 0o640)  # rewriting a file keeps the permissions its owner gave it
    write_labels_coco(str(export), small_frame.labels, {"name": "frame"})
    assert export.stat().st_mode & 0o777 == 0o640


def test_convert_livecell_json_to_a_yolo_dataset_ultralytics_trains_on(tmp_path):
    """The job the original work did with JSON2YOLO: COCO -> dataset -> 1 epoch, no label warnings."""
    import logging

    from napari_livecell.cli import main
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset
    from napari_livecell.core.training.train import TrainSettings, train_model

    json_path = write_synthetic_dataset(tmp_path / "lc", 3, seed=8, n_cells=40)
    coco = json.loads(json_path.read_text())
    coco["annotations"] = {str(a["id"]): a for a in coco["annotations"]}  # LIVECell's dict layout
    json_path.write_text(json.dumps(coco))
    out = tmp_path / "yolo"
    assert (
        main(
            ["convert", str(json_path), str(out), "--to", "yolo", "--images", str(tmp_path / "lc" / "images")]
        )
        == 0
    )
    assert (out / "data.yaml").exists() and len(list((out / "labels").rglob("*.txt"))) == 3

    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()
    from ultralytics.utils import LOGGER

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        train_model(
            TrainSettings(data=str(out / "data.yaml"), epochs=1, imgsz=160, batch=2, workers=0),
            tmp_path / "train",
        )
    finally:
        LOGGER.removeHandler(handler)
    label_warnings = [
        r.getMessage() for r in records if r.levelno >= logging.WARNING and "label" in r.getMessage().lower()
    ]
    assert label_warnings == []
    back = tmp_path / "back.json"
    assert main(["convert", str(out), str(back), "--to", "coco"]) == 0
    assert len(json.loads(back.read_text())["annotations"]) == len(coco["annotations"])


def test_convert_coco_to_tiffs_and_back_checks_sizes(tmp_path, small_frame):
    from napari_livecell.cli import main

    json_path = tmp_path / "in.json"
    write_labels_coco(str(json_path), small_frame.labels, {"name": "frame.tif"})
    assert main(["convert", str(json_path), str(tmp_path / "tifs"), "--to", "tif"]) == 0
    (tif,) = (tmp_path / "tifs").glob("*_labels.tif")
    assert (
        main(
            [
                "convert",
                str(tmp_path / "tifs"),
                str(tmp_path / "out.json"),
                "--to",
                "coco",
                "--reference",
                str(json_path),
            ]
        )
        == 0
    )
    import tifffile

    tifffile.imwrite(tif, np.zeros((10, 10), np.uint16))
    assert (
        main(
            [
                "convert",
                str(tmp_path / "tifs"),
                str(tmp_path / "bad.json"),
                "--to",
                "coco",
                "--reference",
                str(json_path),
            ]
        )
        == 2
    )
    assert not (tmp_path / "bad.json").exists()


def test_yolo_dataset_folder_with_split_round_trips(tmp_path):
    from napari_livecell.core.formats.convert import yolo_dataset_to_coco
    from napari_livecell.core.formats.yolo import YoloSample, read_data_yaml, write_yolo_dataset

    samples = [
        YoloSample(f"img{i}", frame.image, frame.labels)
        for i, frame in enumerate(
            synthesize_image(seed=40 + i, n_cells=30, shape=(128, 160)) for i in range(3)
        )
    ]
    data_yaml = write_yolo_dataset(tmp_path / "ds", samples, {0: "cell"}, val_fraction=0.34)
    data = read_data_yaml(data_yaml)
    assert data["names"] == {0: "cell"} and data["train"] == "images/train" and data["val"] == "images/val"
    assert len(list((tmp_path / "ds" / "images" / "val").glob("*.png"))) == 1
    back = json.loads(yolo_dataset_to_coco(tmp_path / "ds", tmp_path / "back.json").read_text())
    assert len(back["annotations"]) == sum(int(s.labels.max()) for s in samples)


def test_image_and_labels_save_as_a_yolo_dataset_through_npe2(tmp_path, small_frame):
    import npe2

    from napari_livecell.core.formats.yolo import parse_yolo_lines, yolo_to_labels
    from napari_livecell.core.training.data import check_yolo_dataset

    npe2.PluginManager.instance().discover()
    second = synthesize_image(seed=41, n_cells=30, shape=small_frame.image.shape)
    movie = np.stack([small_frame.image, second.image, small_frame.image])
    cells = np.stack([small_frame.labels, second.labels, np.zeros_like(small_frame.labels)])
    written = npe2.write(
        str(tmp_path / "corrections.yaml"),
        [(movie, {"name": "movie"}, "image"), (cells, {"name": "movie cells"}, "labels")],
        plugin_name="napari-livecell",
    )
    assert written == [str(tmp_path / "corrections" / "data.yaml")]
    counts = check_yolo_dataset(written[0])
    assert counts == {"train": 1, "val": 1}, "the empty frame is left out; one of two frames validates"
    for txt in (tmp_path / "corrections" / "labels").rglob("*.txt"):
        truth = small_frame.labels if txt.stem.endswith("t0000") else second.labels
        back, _ = yolo_to_labels(parse_yolo_lines(txt.read_text()), *truth.shape)
        assert back.max() == truth.max()
