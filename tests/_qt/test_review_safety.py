"""A person's corrections in a Review dataset are never lost: kills, two windows, damage, crafted names."""

import contextlib
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_livecell.core.training.synthetic import synthesize_image

SHAPE = (96, 128)


@pytest.fixture
def plate(tmp_path):
    """Three small images, their model cells saved as Segment all saves them (no model needed)."""
    images = tmp_path / "lab" / "plate"
    images.mkdir(parents=True)
    for index in range(3):
        frame = synthesize_image(seed=40 + index, n_cells=8 + 2 * index, shape=SHAPE)
        tifffile.imwrite(images / f"well{index}.tif", frame.image)
    return images


def seed(plate):
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.io.review import ReviewDataset

    dataset = ReviewDataset.open(plate)
    for index, entry in enumerate(dataset.index.entries):
        labels = synthesize_image(seed=40 + index, n_cells=8 + 2 * index, shape=SHAPE).labels
        assert dataset.save_prediction(entry.name, Segmentation.from_labels(labels)) is not None
    return dataset


def dock(make_napari_viewer, plate):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
    widget.open(str(plate))
    return viewer, widget


def edit_and_save(viewer, widget) -> int:
    """Delete the current image's first cell and save at once (as autosave does a moment later)."""
    cells = viewer.layers[f"{widget.current} cells"]
    cell = int(np.unique(cells.data)[1])
    rows, cols = np.nonzero(cells.data == cell)
    cells.data_setitem((rows, cols), 0)
    assert widget._dirty
    widget.save()
    return cell


def saved_cells(path):
    """A cells file's cells (its record of state aside, which Open and Mark done change)."""
    return json.loads(path.read_text())["annotations"]


def saved_labels(dataset, name):
    return next(layer for layer in dataset.cell_layers(name) if layer[2] == "labels")[0]


def test_a_model_result_never_replaces_a_persons_cells(make_napari_viewer, plate, qtbot):
    seed(plate)
    viewer, widget = dock(make_napari_viewer, plate)
    name = widget.current
    deleted = edit_and_save(viewer, widget)
    cells_file = widget.dataset.index.cells_path(name)
    before = cells_file.read_bytes()
    # an index that lost track of the segmentation (the old failure: a fresh index after damage,
    # or another window's stale copy): every image looks unsegmented to Segment all
    with sqlite3.connect(widget.dataset.index.path) as db:
        db.execute("UPDATE images SET segmented = 0")
    names = [entry.name for entry in widget.dataset.index.entries if not entry.segmented]
    from napari_livecell._qt.review_widget import segment_dataset
    from napari_livecell.core.inference.predict import PredictSettings

    for _ in segment_dataset(widget.dataset, names, None, PredictSettings()):  # the real model, each image
        pass
    assert cells_file.read_bytes() == before, "the person's cells file is untouched"
    assert deleted not in np.unique(saved_labels(widget.dataset, name))
    entry = widget.dataset.index.entry(name)
    assert entry.segmented and entry.origin == "person"


def test_segment_all_after_damage_leaves_saved_cells_alone(make_napari_viewer, plate, qtbot, notifications):
    dataset = seed(plate)
    files = {e.name: saved_cells(dataset.index.cells_path(e.name)) for e in dataset.index.entries}
    _, widget = dock(make_napari_viewer, plate)
    with sqlite3.connect(widget.dataset.index.path) as db:
        db.execute("UPDATE images SET segmented = 0, mtime_ns = 0")
    widget.segment_all()  # the dock takes the cells files' own records in first
    assert "every image has cells already" in widget._status.value
    assert {e.name: saved_cells(dataset.index.cells_path(e.name)) for e in dataset.index.entries} == files


@pytest.mark.parametrize("damage", ["garbage", "cut in half", "crafted row", "old index truncated"])
def test_a_damaged_index_is_rebuilt_from_the_cells_files(make_napari_viewer, plate, qtbot, damage):
    seed(plate)
    viewer, widget = dock(make_napari_viewer, plate)
    name = widget.current
    deleted = edit_and_save(viewer, widget)
    widget.mark_done()
    index_path = widget.dataset.index.path
    cells_file = widget.dataset.index.cells_path(name)
    before = cells_file.read_bytes()
    n_cells = {e.name: e.n_cells for e in widget.dataset.index.entries}
    viewer.close()
    widget.dataset.index.close()
    with contextlib.closing(sqlite3.connect(index_path)) as db:  # everything into the file itself
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage in ("garbage", "cut in half"):
        for suffix in ("-wal", "-shm"):
            pathlib.Path(f"{index_path}{suffix}").unlink(missing_ok=True)
    if damage == "garbage":
        index_path.write_bytes(os.urandom(4096))
    elif damage == "cut in half":
        index_path.write_bytes(index_path.read_bytes()[: index_path.stat().st_size // 2])
    elif damage == "crafted row":
        with sqlite3.connect(index_path) as db:
            db.execute(
                "INSERT INTO images SELECT '../../../../X', image, state, 0, n_cells, mean_score, "
                "near_threshold, unannotated, priority, origin, revision, 99, 0 FROM images LIMIT 1"
            )
    else:  # an earlier version's json index, cut short
        index_path.unlink()
        (index_path.parent / "dataset.json").write_text('{"format": "napari-livecell review dataset", "ima')
    _, resumed = dock(make_napari_viewer, plate)
    assert "rebuilt" in resumed._status.value
    entries = {e.name: e for e in resumed.dataset.index.entries}
    assert sorted(entries) == ["well0", "well1", "well2"]
    assert all(e.segmented for e in entries.values()), "never reset to unsegmented"
    assert entries[name].state == "done" and entries[name].origin == "person"
    assert {key: e.n_cells for key, e in entries.items()} == n_cells
    resumed.segment_all()
    assert "every image has cells already" in resumed._status.value
    assert cells_file.read_bytes() == before
    assert deleted not in np.unique(saved_labels(resumed.dataset, name))
    assert not (plate.parents[3] / "X.json").exists()


def test_a_dataset_of_the_earlier_json_index_is_migrated(make_napari_viewer, plate):
    dataset = seed(plate)
    folder = dataset.folder
    entries = [
        {**vars(e), "state": "done" if e.name == "well2" else "to review"} for e in dataset.index.entries
    ]
    for entry in entries:
        del entry["origin"], entry["revision"]  # fields the json index did not have
    (folder / "review.db").unlink()
    for record in folder.glob("cells/*.json"):  # files of that version carried no record of their own
        coco = json.loads(record.read_text())
        del coco["napari_livecell_review"]
        record.write_text(json.dumps(coco))
    legacy = {
        "format": "napari-livecell review dataset",
        "version": 1,
        "source": str(plate),
        "images": entries,
    }
    (folder / "dataset.json").write_text(json.dumps(legacy))
    _, widget = dock(make_napari_viewer, plate)
    assert "rebuilt" not in widget._status.value
    assert {e.name: e.state for e in widget.dataset.index.entries} == {
        "well0": "in progress" if widget.current == "well0" else "to review",
        "well1": "in progress" if widget.current == "well1" else "to review",
        "well2": "done",
    }
    assert (folder / "dataset.json.v1").is_file() and not (folder / "dataset.json").exists()


def test_two_docks_on_one_folder_keep_both_windows_work(make_napari_viewer, plate, qtbot, notifications):
    seed(plate)
    first_viewer, first = dock(make_napari_viewer, plate)
    second_viewer, second = dock(make_napari_viewer, plate)
    name = first.current
    assert second.current == name
    kept = edit_and_save(first_viewer, first)  # saved from the first window
    assert edit_and_save(first_viewer, first) != kept  # a window's next save follows its own
    # the second window still shows the cells as they were before: its save would replace that edit
    cells = second_viewer.layers[f"{name} cells"]
    other = int(np.unique(cells.data)[-1])
    rows, cols = np.nonzero(cells.data == other)
    cells.data_setitem((rows, cols), 0)
    second.save()
    assert any("saved from another window" in message for message in notifications.messages)
    on_disk = np.unique(saved_labels(first.dataset, name))
    assert kept not in on_disk and other in on_disk, "the first window's edit stands"
    # states from both windows stay: each changes its own image's row
    first.mark_done()
    second.show_image(second.dataset.queue()[0])
    other_name = second.current
    assert other_name != name
    second.mark_done()
    states = {e.name: e.state for e in first.dataset.index.entries}
    assert states[name] == "done" and states[other_name] == "done"
    # after opening the image again the second window edits the saved cells
    second.show_image(name)
    assert kept not in np.unique(second_viewer.layers[f"{name} cells"].data)
    edit_and_save(second_viewer, second)
    assert first.dataset.index.entry(name).revision == 4
    second.segment_all()
    assert "every image has cells already" in second._status.value


KILLED_DOCK = """
import sys
import napari
import numpy as np
from napari_livecell.layers import RESULT_KEY

viewer = napari.Viewer(show=False)
_, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
widget.open(sys.argv[1])
for round_ in range(10_000):
    for name in widget.dataset.queue():
        widget.show_image(name)
        cells = viewer.layers[name + " cells"]
        ids = [int(i) for i in cells.features["index"]]
        if len(ids) > 1:
            rows, cols = np.nonzero(cells.data == ids[0])
            cells.data_setitem((rows, cols), 0)
            widget.save()
        widget.dataset.set_state(name, "done" if round_ % 2 else "in progress")
        print("saved", name, flush=True)
"""


def test_kill_9_mid_save_leaves_an_index_that_matches_the_files(make_napari_viewer, plate, tmp_path):
    seed(plate)
    script = tmp_path / "dock.py"
    script.write_text(KILLED_DOCK)
    process = subprocess.Popen(
        [sys.executable, str(script), str(plate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(7):  # several saves in, then killed wherever it is
            line = process.stdout.readline()
            assert line.startswith("saved"), process.stderr.read()[-2000:] if not line else line
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    _, widget = dock(make_napari_viewer, plate)
    assert "rebuilt" not in widget._status.value, "the index survives the kill whole"
    index = widget.dataset.index
    for entry in index.entries:
        coco = json.loads(index.cells_path(entry.name).read_text())  # every file whole
        record = coco["napari_livecell_review"]
        assert entry.revision == record["revision"] and entry.n_cells == len(coco["annotations"])
        assert entry.state == record["state"]
    assert not list(widget.dataset.folder.rglob(".*.json")), "no temporary file left behind"


def write_legacy(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": "napari-livecell review dataset", "version": 1, "source": "", "images": images}
    (folder / "dataset.json").write_text(json.dumps(payload))


def test_crafted_names_write_nothing_outside_the_dataset(make_napari_viewer, plate, tmp_path, notifications):
    folder = plate / "napari-livecell-review"
    image = str(plate / "well0.tif")
    absolute = tmp_path / "elsewhere" / "Y"
    for name in ("../../../../X", str(absolute), "..", "NUL"):
        write_legacy(folder, [{"name": "well0", "image": image}, {"name": name, "image": image}])
        viewer, widget = dock(make_napari_viewer, plate)
        assert widget.dataset is None
        assert "cannot name a file" in notifications.messages[-1]
        viewer.close()
    from napari_livecell.core.training.review import ReviewError
    from napari_livecell.io.review import ReviewDataset

    (folder / "dataset.json").unlink()
    dataset = seed(plate)
    labels = synthesize_image(seed=1, n_cells=5, shape=SHAPE).labels
    for name in ("../../../../X", str(absolute)):
        with pytest.raises(ReviewError, match="cannot name a file"):
            dataset.index.cells_path(name)
        with pytest.raises(ReviewError):
            dataset.save_cells(name, labels, {"metadata": {}})
    assert isinstance(ReviewDataset.open(plate).index.entries, list)
    outside = [p for p in tmp_path.rglob("*") if p.stem in ("X", "Y")]
    assert outside == [] and not (plate.parents[3] / "X.json").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("empty images list", "lists no images"),
        ("priority high", "priority 'high', not a number"),
        ("truncated cells json", "cannot show"),
        ("deleted image", "cannot open"),
    ],
)
def test_open_reports_a_bad_dataset_in_the_dock(
    make_napari_viewer, plate, tmp_path, notifications, damage, message
):
    folder = plate / "napari-livecell-review"
    if damage == "empty images list":
        empty = tmp_path / "empty"
        write_legacy(empty / "napari-livecell-review", [])
        target = empty
    elif damage == "priority high":
        write_legacy(folder, [{"name": "well0", "image": str(plate / "well0.tif"), "priority": "high"}])
        target = plate
    else:
        dataset = seed(plate)
        first = dataset.queue()[0]
        if damage == "truncated cells json":
            path = dataset.index.cells_path(first)
            path.write_bytes(path.read_bytes()[:200])
        else:
            (plate / f"{first}.tif").unlink()
        target = plate
    _, widget = dock(make_napari_viewer, target)
    assert any(message in text for text in notifications.messages), notifications.messages
    widget.step(1)  # and the dock goes on answering
    if damage == "truncated cells json":
        assert widget.dataset.index.cells_path(first).stat().st_size == 200, "never overwritten"


def test_next_shows_the_next_image_whole(make_napari_viewer, plate):
    seed(plate)
    viewer, widget = dock(make_napari_viewer, plate)
    fitted = viewer.camera.zoom
    viewer.camera.zoom = fitted * 8  # looking closely at a few cells
    viewer.camera.center = (0, 10, 10)
    widget.step(1)
    assert viewer.camera.zoom == pytest.approx(fitted)
    viewer.reset_view()
    assert viewer.camera.zoom == pytest.approx(fitted)
