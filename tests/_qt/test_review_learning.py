"""Learn as I go in the Review dataset dock: a round in the background, unopened images segmented again."""

from __future__ import annotations

import pytest

from tests._qt.test_review_widget import wait_for_cells
from tests.core.training.learning_data import STEPS, tiny_review

pytest.importorskip("ultralytics")


def test_a_round_in_the_dock_segments_again_only_unopened_images_and_goes_back(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_livecell.core.training.learning import SHIPPED, LearningLog

    _, truth = tiny_review(tmp_path, done=3)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Review dataset")
    widget.open(str(tmp_path / "images"))
    wait_for_cells(viewer, widget, qtbot)
    shown = widget.current
    viewer.layers[f"{shown} cells"].data = truth[shown]  # the person corrects it (autosaved)
    panel = widget.learning
    panel.steps = STEPS
    panel.every.value = 4
    panel.learn.value = True
    assert not panel.busy  # 3 images done: no round yet
    index = widget.dataset.index
    widget.mark_done()  # the 4th
    assert panel.training is not None
    unopened = [e.name for e in index.entries if e.state == "to review"]
    assert unopened and shown not in unopened
    before = {name: index.cells_path(name).read_bytes() for name in truth}
    # review goes on while it trains: the next image opens and its edit is saved
    widget.step(1)
    wait_for_cells(viewer, widget, qtbot)
    opened = widget.current
    assert opened in unopened
    viewer.layers[f"{opened} cells"].data = truth[opened]
    widget.save()
    after_edit = index.cells_path(opened).read_bytes()
    qtbot.waitUntil(lambda: panel.last_round is not None and not panel.busy, timeout=900_000)
    learned = panel.last_round
    assert learned.accepted, learned  # deterministic (seeded, tiny): the held-out AP50 rose
    assert panel.history.count() == 1 and panel.history.item(0).text().startswith("round 1: round-1.pt")
    log = LearningLog(index)
    assert log.current() == learned.model == "models/round-1.pt"
    again = [name for name in unopened if name != opened]
    assert again and log.segmented_with() == dict.fromkeys(again, learned.model)
    for name in again:
        assert index.cells_path(name).read_bytes() != before[name], name
    for name in set(truth) - set(unopened):
        assert index.cells_path(name).read_bytes() == before[name], name
    assert index.cells_path(opened).read_bytes() == after_edit  # edited during the round: kept
    rows = [widget._images_list.item(i).text() for i in range(widget._images_list.count())]
    assert sum("(round-1.pt)" in row for row in rows) == len(again)
    # back to the shipped model: the unopened images are segmented with it again
    panel.model.value = "shipped model"
    assert log.current() == SHIPPED
    qtbot.waitUntil(lambda: not panel.busy, timeout=300_000)
    assert log.segmented_with() == dict.fromkeys(again, SHIPPED)
    assert index.cells_path(opened).read_bytes() == after_edit


BASE_INSTALL = """
import sys

sys.modules["torch"] = None  # as on a base install: neither can be imported
sys.modules["ultralytics"] = None
from qtpy.QtWidgets import QApplication, QWidget

app = QApplication([])
from napari_livecell._qt.learning_widget import LearningPanel


class Review:
    dataset = None
    current = None
    native = QWidget()


panel = LearningPanel(Review())
print(panel.learn.enabled)
print(panel.state.value)
"""


def test_without_the_train_extra_the_option_says_what_to_install(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "base.py"
    script.write_text(BASE_INSTALL)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=environment, timeout=120
    )
    assert done.returncode == 0, done.stderr
    enabled, message = done.stdout.strip().splitlines()
    assert enabled == "False"
    assert "pip install 'napari-livecell[train]'" in message
