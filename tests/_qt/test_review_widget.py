"""Reviewing a folder of images: background segmentation, queue order, autosave and resume."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from napari_livecell.core.training.synthetic import synthesize_image


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "plate"
    images.mkdir()
    for index in range(6):
        frame = synthesize_image(seed=300 + index, n_cells=15 + 5 * index, shape=(160, 192))
        tifffile.imwrite(images / f"well{index}.tif", frame.image)
    return images


def open_review(make_napari_viewer, folder, qtbot, segment=True):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
    widget.open(str(folder))
    if segment:
        widget.segment_all()
        qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
        wait_for_cells(viewer, widget, qtbot)
    return viewer, widget


def wait_for_cells(viewer, widget, qtbot):
    """Until the shown image's cells layer holds its cells and their table (filled in turns)."""
    from napari_livecell._qt.review_widget import WAITING_KEY

    def filled():
        name = f"{widget.current} cells"
        return name in viewer.layers and WAITING_KEY not in viewer.layers[name].metadata

    qtbot.waitUntil(filled, timeout=30_000)


def delete_one_cell(viewer, widget):
    from napari_livecell.io.write import write_labels_coco  # noqa: F401  (the widget saves through it)

    cells = viewer.layers[f"{widget.current} cells"]
    cell = int(cells.features["index"].iloc[0])
    rows, cols = np.nonzero(cells.data == cell)
    cells.data_setitem((rows, cols), 0)
    return cell


def test_segment_all_step_in_queue_order_edit_close_and_resume(make_napari_viewer, folder, qtbot, tmp_path):
    viewer, widget = open_review(make_napari_viewer, folder, qtbot)
    dataset = widget.dataset
    assert all(entry.segmented for entry in dataset.index.entries)
    queue = dataset.queue()
    priorities = [dataset.index.entry(name).priority for name in queue]
    assert priorities == sorted(priorities, reverse=True)  # most in need of review first
    widget.show_image(queue[0])
    visited = [widget.current]
    for _ in range(5):
        visited.append(widget.step(1))
    assert visited == queue
    assert widget.step(-1) == queue[4]

    edits = {}
    for position in (1, 4):  # edit images 2 and 5 of the queue
        widget.show_image(queue[position])
        edits[queue[position]] = delete_one_cell(viewer, widget)
        qtbot.wait(1000)  # autosave within a second
    widget.mark_done()
    states = {e.name: e.state for e in dataset.index.entries}
    assert states[queue[4]] == "done" and states[queue[1]] == "in progress"
    baseline_cells = {
        name: int(
            np.unique(dataset.cell_layers(name)[0][1]["metadata"]["napari_livecell"]["baseline"]).size - 1
        )
        for name in edits
    }
    viewer.close()

    again, resumed = open_review(make_napari_viewer, folder, qtbot, segment=False)
    assert {e.name: e.state for e in resumed.dataset.index.entries} == states
    for name, cell in edits.items():
        resumed.show_image(name)
        cells = again.layers[f"{name} cells"]
        assert cell not in np.unique(cells.data)  # the edit is back
        info = cells.metadata["napari_livecell"]
        assert np.unique(info["baseline"]).size - 1 == baseline_cells[name]  # and the baseline
        assert cell in np.unique(info["baseline"])

    # the dataset feeds Train on corrections (and `napari-livecell train`) directly
    _, train = again.window.add_plugin_dock_widget("napari-livecell", "Train on corrections")
    train._folder.value = resumed.dataset.folder
    train._epochs.value = 1
    train._crop.value = 0
    train._batch.value = 2
    train._out.value = tmp_path / "model"
    assert train.train() is not None, train._status.value
    qtbot.waitUntil(lambda: not train.busy, timeout=300_000)
    assert (tmp_path / "model" / "best.pt").exists(), train._status.value


def test_a_killed_process_keeps_every_saved_edit(folder, tmp_path):
    """SIGKILL right after an edit is saved: reopening restores it; the files are never half-written."""
    script = f"""
import numpy as np, sys, time
from napari_livecell.io.review import ReviewDataset
from napari_livecell.core.segmentation import Segmentation
from napari_livecell.core.training.synthetic import synthesize_image
dataset = ReviewDataset.open({str(folder)!r})
labels = synthesize_image(seed=1, n_cells=12, shape=(160, 192)).labels
dataset.save_prediction("well0", Segmentation.from_labels(labels))
edited = labels.copy(); edited[edited == 3] = 0
from napari_livecell.layers import cell_features
features = cell_features([Segmentation.from_labels(labels)])
dataset.save_cells("well0", edited, {{"features": features, "metadata": {{}}}})
print("saved", flush=True)
while True:  # keep writing the index, so the kill lands mid-work
    dataset.set_state("well1", "in progress"); dataset.set_state("well1", "to review")
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "saved"
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    from napari_livecell.io.review import ReviewDataset

    dataset = ReviewDataset.open(folder)
    assert not dataset.index.rebuilt_because  # the index is whole, not half-written
    (labels, _kwargs, _), *_ = dataset.cell_layers("well0")
    assert 3 not in np.unique(labels)
    assert not list(dataset.folder.rglob("*.tmp"))


def test_opening_nothing_or_a_wrong_path_is_one_line(make_napari_viewer, tmp_path, notifications):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
    widget.open("")
    widget.open(str(tmp_path / "missing"))
    widget.step(1)
    messages = " | ".join(notifications.messages)
    assert "type the folder of images" in messages
    assert "missing" in messages and "open a folder of images first" in messages


def test_the_dataset_csv_holds_every_image_with_the_edits(make_napari_viewer, folder, qtbot, tmp_path):
    import pandas as pd

    viewer, widget = open_review(make_napari_viewer, folder, qtbot)
    edited = widget.current
    deleted = delete_one_cell(viewer, widget)  # saved by the CSV button, not by waiting for autosave
    out = tmp_path / "plate_cells.csv"
    worker = widget.save_dataset_csv(out)
    assert worker is not None
    qtbot.waitUntil(lambda: widget._measuring is None, timeout=60_000)

    cells = pd.read_csv(out)
    summary = pd.read_csv(tmp_path / "plate_cells_summary.csv")
    assert list(cells.columns[:3]) == ["image", "frame", "label"]
    assert sorted(summary["image"]) == sorted(e.name for e in widget.dataset.index.entries)
    for name in summary["image"]:
        labels = next(layer for layer in widget.dataset.cell_layers(name) if layer[2] == "labels")[0]
        ids = set(np.unique(labels)) - {0}
        assert set(cells.loc[cells["image"] == name, "label"]) == ids, name
        assert int(summary.loc[summary["image"] == name, "cell_count"].iloc[0]) == len(ids)
    assert deleted not in set(cells.loc[cells["image"] == edited, "label"])  # the edit is in
    assert "measured" in widget._status.value


def test_the_dataset_csv_needs_a_csv_name(make_napari_viewer, folder, qtbot, tmp_path, notifications):
    _, widget = open_review(make_napari_viewer, folder, qtbot, segment=False)
    assert widget.save_dataset_csv(tmp_path / "cells.xlsx") is None
    assert "saved as a .csv file" in widget._status.value


def test_the_open_image_shows_its_cells_once_the_background_run_reaches_it(make_napari_viewer, folder, qtbot):
    viewer, widget = open_review(make_napari_viewer, folder, qtbot)
    name = widget.current
    from napari_livecell._qt.review_widget import WAITING_KEY

    qtbot.waitUntil(lambda: f"{name} outlines" in viewer.layers, timeout=10_000)
    cells = viewer.layers[f"{name} cells"]
    outlines = viewer.layers[f"{name} outlines"]
    # the waiting layers are visible from the click: done when the outlines' last fill step has
    # dropped their waiting flag (the cells are filled turns before the outlines' table comes)
    qtbot.waitUntil(lambda: WAITING_KEY not in outlines.metadata, timeout=60_000)
    assert cells.visible and outlines.visible
    ids = set(np.unique(cells.data)) - {0}
    assert len(ids) == widget.dataset.index.entry(name).n_cells > 0
    assert set(outlines.features["label"]) == ids  # a cell in pieces has several


def test_the_open_images_cells_fill_the_layer_that_waited_for_them(make_napari_viewer, folder, qtbot):
    """The cells and outlines layers are inserted on the Open click, not mid-run.

    napari's insertion of a Labels layer blocks ~0.2 s, and a Shapes layer's
    first paint builds its GL programs (0.23 s on software OpenGL).
    """
    viewer, widget = open_review(make_napari_viewer, folder, qtbot, segment=False)
    name = widget.current
    waiting = viewer.layers[f"{name} cells"]
    assert not waiting.data.any() and not waiting.editable, "empty and locked until the cells come"
    assert waiting.data.shape == viewer.layers[name].data.shape
    waiting_outlines = viewer.layers[f"{name} outlines"]
    assert not waiting_outlines.editable and waiting_outlines.edge_color[:, 3].max() == 0, "nothing visible"
    widget.segment_all()
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    qtbot.waitUntil(lambda: viewer.layers[f"{name} cells"].editable, timeout=10_000)
    cells = viewer.layers[f"{name} cells"]
    assert cells is waiting, "filled in place, not removed and inserted again"
    outlines = viewer.layers[f"{name} outlines"]
    from napari_livecell._qt.review_widget import WAITING_KEY

    # filled: the waiting flag goes with the last step, which shows the layer (napari itself may
    # make a Shapes layer editable earlier, on its data events)
    qtbot.waitUntil(lambda: outlines.visible and WAITING_KEY not in outlines.metadata, timeout=10_000)
    assert outlines is waiting_outlines
    assert set(outlines.features["label"]) == set(np.unique(cells.data)) - {0}
    assert len(outlines.data) == len(outlines.features) and outlines.editable
    assert (outlines.edge_color[:, 3] == 1).all()  # every outline drawn, the warm-up triangle gone
    ids = set(np.unique(cells.data)) - {0}
    assert len(ids) == widget.dataset.index.entry(name).n_cells > 0
    assert set(cells.features["index"]) == ids
    assert [layer.name for layer in viewer.layers] == [name, f"{name} cells", f"{name} outlines"]
    deleted = delete_one_cell(viewer, widget)
    qtbot.waitUntil(lambda: not widget._dirty, timeout=5_000)  # autosaved, as for any shown cells
    saved = widget.dataset.cell_layers(name)[0][0]
    assert deleted not in np.unique(saved)


def test_images_taken_at_another_pixel_size_are_resampled_from_their_tiff_tags(
    make_napari_viewer, tmp_path, qtbot
):
    from napari_livecell.core.training.synthetic import synthesize_image
    from tests.core.inference.test_pixel_size import MODEL_UM, taken_at

    scene = synthesize_image(seed=3, n_cells=60, shape=(256, 320))
    image, truth = taken_at(scene, MODEL_UM / 2)  # cells twice as large in pixels
    plate = tmp_path / "fine"
    plate.mkdir()
    size_cm = MODEL_UM / 2 / 1e4
    tifffile.imwrite(
        plate / "fine.tif", image, resolution=(1 / size_cm, 1 / size_cm), resolutionunit="CENTIMETER"
    )
    _, widget = open_review(make_napari_viewer, plate, qtbot)
    found = widget.dataset.index.entry("fine").n_cells
    n_true = len(np.unique(truth)) - 1
    assert abs(found - n_true) <= 0.1 * n_true, f"{found} cells found, {n_true} true"


SHOWN_WINDOW_STEPS = """
import sys, time
import napari
from qtpy.QtWidgets import QApplication
from napari_livecell.core.segmentation import Segmentation
from napari_livecell.core.training.synthetic import synthesize_image
from napari_livecell.io.review import ReviewDataset

folder = sys.argv[1]
dataset = ReviewDataset.open(folder)
for index, entry in enumerate(dataset.index.entries):
    labels = synthesize_image(seed=300 + index, n_cells=15 + 5 * index, shape=(160, 192)).labels
    dataset.save_prediction(entry.name, Segmentation.from_labels(labels))
viewer = napari.Viewer(show=True)
app = QApplication.instance()

def paint(seconds=0.4):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)

_, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
widget.open(folder)
paint()
for _ in range(3):
    name = widget.step(1)
    paint()
    outlines = viewer.layers[name + " outlines"]
    viewer.layers[name + " cells"].visible = False  # a user looking at the outlines alone
    viewer.layers.selection.active = outlines
    paint()
    print(name, len(outlines.data), flush=True)
viewer.camera.zoom *= 1.5  # one more paint of everything
paint()
print("stepped", flush=True)
"""


def test_stepping_through_images_in_a_shown_window_paints_without_crashing(folder, tmp_path):
    """Next and Previous in a window that is drawn, the cells hidden and the outlines selected.

    napari 0.9 + vispy 0.17 on software OpenGL (Mesa llvmpipe under Xvfb, as
    on remote desktops) segfault at the first paint after a Shapes or Points
    layer is removed while no Labels layer is drawn (napari issue 6472,
    vispy issue 1611; reproduced here without this plugin). Stepping swaps
    each image's layers in a shown window, so it is checked painting, in a
    child process (a crash would end the test process itself).
    """
    script = tmp_path / "steps.py"
    script.write_text(SHOWN_WINDOW_STEPS)
    command = [sys.executable, str(script), str(folder)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stdout[-500:]} {run.stderr[-1500:]}"
    lines = run.stdout.split("\n")
    assert "stepped" in lines
    shown = [line.split() for line in lines if line.startswith("well")]
    assert len(shown) == 3 and all(int(count) > 0 for _, count in shown)  # each image's outlines are shown


def test_one_outlines_layer_is_refilled_image_after_image(make_napari_viewer, folder):
    """Stepping never removes the outlines Shapes layer (see docs/napari_crash.md): it is refilled."""
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.io.review import ReviewDataset
    from napari_livecell.layers import RESULT_KEY

    dataset = ReviewDataset.open(folder)
    for index, entry in enumerate(dataset.index.entries):
        labels = synthesize_image(seed=300 + index, n_cells=15 + 5 * index, shape=(160, 192)).labels
        dataset.save_prediction(entry.name, Segmentation.from_labels(labels))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
    widget.open(str(folder))
    first = viewer.layers[f"{widget.current} outlines"]
    for _ in range(3):
        name = widget.step(1)
        outlines = viewer.layers[f"{name} outlines"]
        assert getattr(outlines, "__wrapped__", outlines) is getattr(first, "__wrapped__", first)
        assert [layer.name for layer in viewer.layers] == [name, f"{name} cells", f"{name} outlines"]
        cells = viewer.layers[f"{name} cells"]
        ids = set(np.unique(cells.data)) - {0}
        assert set(outlines.features["label"]) == ids and len(outlines.data) >= len(ids) > 0
        assert outlines.editable and outlines.visible and RESULT_KEY in cells.metadata
