"""Random proofreading sessions in a real viewer: after every step, labels, table, outlines, exports agree.

A hypothesis state machine drives the real Proofread (and Segment cells)
widgets with what a user does: paint a new cell, paint over a cell, erase,
fill, delete, merge, split, accept, relabel, undo, redo, change a filter,
re-run, save as COCO and reopen. After every step it checks the invariants
of issue #14. Examples run in CI: ``EXAMPLES`` sessions of up to ``STEPS``
steps each, on a 2-D frame or a 3-frame stack.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from napari_livecell.core.training.synthetic import synthesize_image
from napari_livecell.layers import RESULT_KEY

from .conftest import add_result

EXAMPLES = 9  # derandomized sessions; with STEPS about 35 s of the suite
STEPS = 14
CATEGORIES = {0: "nucleus", 1: "debris"}  # not in sorted order: ids must come from the model


def reference_summary(labels: np.ndarray, baseline: np.ndarray, statuses: dict[int, str]) -> dict:
    """The correction summary computed the slow, obvious way (masks, loops)."""
    present = [int(c) for c in np.unique(labels) if c]
    predicted = [int(c) for c in np.unique(baseline) if c]
    base_masks = {b: baseline == b for b in predicted}
    kept = edited = added = 0
    matched = set()
    for cell in present:
        mask = labels == cell
        best, best_iou, identical = None, 0.0, False
        for base, base_mask in base_masks.items():
            overlap = np.logical_and(mask, base_mask).sum()
            if not overlap:
                continue
            iou = overlap / np.logical_or(mask, base_mask).sum()
            if iou > best_iou or (iou == best_iou and best is not None and overlap > 0):
                best, best_iou, identical = base, iou, bool((mask == base_mask).all())
        if best is not None and identical:
            kept += 1
            matched.add(best)
        elif best is not None and best_iou >= 0.5 and best not in matched:
            edited += 1
            matched.add(best)
        else:
            added += 1
    merged = deleted = 0
    for base in predicted:
        if base in matched:
            continue
        inside = labels[base_masks[base]]
        inside = inside[inside > 0]
        if inside.size and np.bincount(inside).max() * 2 > base_masks[base].sum():
            merged += 1
        else:
            deleted += 1
    return {
        "predicted": len(predicted),
        "kept": kept,
        "deleted": deleted,
        "added": added,
        "edited": edited,
        "merged": merged,
        "accepted": sum(statuses.get(c) == "accepted" for c in present),
    }


def rasterise_outlines(shapes, cell: int, shape: tuple[int, int], frame: tuple[int, ...]) -> np.ndarray:
    """A cell's outline rings filled with XOR (holes and parts as COCO/napari draw them)."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    labels = shapes.features["label"].to_numpy()
    for vertices, label in zip(shapes.data, labels):
        if int(label) != cell:
            continue
        if frame and tuple(int(np.rint(v)) for v in vertices[0, : len(frame)]) != frame:
            continue
        # napari vertices are COCO's continuous ring shifted to pixel centres: rasterised as is
        ring = np.zeros(shape, bool)
        rr, cc = polygon(vertices[:, -2], vertices[:, -1], shape)
        ring[rr, cc] = True
        mask ^= ring
    return mask


class Proofreading(RuleBasedStateMachine):
    """One user session; ``viewer``, ``segment``, ``proofread`` and ``folder`` are set by the test."""

    viewer = None
    segment = None
    proofread = None
    folder = None

    # setup -------------------------------------------------------------------
    @initialize(stack=st.booleans(), seed=st.integers(0, 3))
    def open_result(self, stack: bool, seed: int) -> None:
        self.viewer.layers.clear()
        frames = [
            synthesize_image(seed=seed + i, n_cells=10, shape=(72, 96)).labels
            for i in range(3 if stack else 1)
        ]
        labels = np.stack(frames) if stack else frames[0]
        if stack:  # ids run on across frames, as in a result layer
            offset = 0
            for frame in labels:
                frame[frame > 0] += offset
                offset = int(frame.max())
        self.original = labels.copy()
        add_result(self.viewer, labels, class_names=CATEGORIES)
        self.proofread._layer.reset_choices()
        self.proofread._layer.value = self.cells
        self.saves = 0

    @property
    def cells(self):
        return self.viewer.layers["img cells"]

    def frame(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.viewer.dims.point[: self.cells.ndim - 2])

    def plane(self) -> np.ndarray:
        return np.asarray(self.cells.data[self.frame()])

    def present(self) -> list[int]:
        return [int(c) for c in np.unique(self.plane()) if c]

    def settle(self) -> None:
        self.proofread.follower.flush()

    # steps -------------------------------------------------------------------
    @rule(frame=st.integers(0, 2))
    def show_frame(self, frame: int) -> None:
        if self.cells.ndim > 2:
            self.viewer.dims.set_point(0, frame)

    @rule(row=st.integers(4, 67), col=st.integers(4, 91), size=st.integers(3, 7), new=st.booleans())
    def paint(self, row: int, col: int, size: int, new: bool) -> None:
        present = self.present()
        label = int(self.cells.data.max()) + 1 if new or not present else present[(row + col) % len(present)]
        self.cells.brush_size = size
        self.cells.paint((*self.frame(), row, col), label)
        self.settle()

    @rule(row=st.integers(4, 67), col=st.integers(4, 91), size=st.integers(3, 9))
    def erase(self, row: int, col: int, size: int) -> None:
        self.cells.brush_size = size
        self.cells.paint((*self.frame(), row, col), 0)
        self.settle()

    @precondition(lambda self: len(self.present()) > 1)
    @rule(pick=st.integers(0, 1000), new=st.booleans())
    def fill(self, pick: int, new: bool) -> None:
        present = self.present()
        cell = present[pick % len(present)]
        row, col = np.argwhere(self.plane() == cell)[0]
        label = int(self.cells.data.max()) + 1 if new else present[(pick + 1) % len(present)]
        self.cells.fill((*self.frame(), int(row), int(col)), label)
        self.settle()

    @rule(pick=st.integers(0, 1000))
    def delete(self, pick: int) -> None:
        present = self.present()
        self.proofread.delete(present[pick % len(present)] if present else 0)

    @rule(first=st.integers(0, 1000), second=st.integers(0, 1000))
    def merge(self, first: int, second: int) -> None:
        present = self.present() or [0]
        self.proofread.merge(present[first % len(present)], present[second % len(present)])

    @precondition(lambda self: len(self.present()) > 0)
    @rule(pick=st.integers(0, 1000), vertical=st.booleans())
    def split(self, pick: int, vertical: bool) -> None:
        present = self.present()
        rows, cols = np.nonzero(self.plane() == present[pick % len(present)])
        if vertical:
            middle = float(np.median(cols))
            line = np.array([[rows.min() - 2, middle], [rows.max() + 2, middle]])
        else:
            middle = float(np.median(rows))
            line = np.array([[middle, cols.min() - 2], [middle, cols.max() + 2]])
        self.proofread.split(line)

    @rule(pick=st.integers(0, 1000))
    def accept(self, pick: int) -> None:
        present = self.present()
        self.proofread.accept(present[pick % len(present)] if present else 0)

    @rule()
    def relabel(self) -> None:
        self.proofread.relabel()

    @rule()
    def undo(self) -> None:
        self.cells.undo()
        self.settle()

    @rule()
    def redo(self) -> None:
        self.cells.redo()
        self.settle()

    @rule(min_score=st.sampled_from([0.0, 0.6, 0.9]), min_area=st.sampled_from([0, 30]))
    def change_filters(self, min_score: float, min_area: int) -> None:
        self.segment._min_score.value = min_score
        self.segment._min_area.value = min_area

    @rule()
    def rerun(self) -> None:
        """A re-run on the edited layer, confirmed: the result is replaced by a fresh one."""
        from napari_livecell._qt.segment_worker import prepare_result_layers
        from napari_livecell.core.segmentation import Segmentation

        frames = self.original.reshape(-1, *self.original.shape[-2:])
        results = [Segmentation.from_labels(frame, class_names=CATEGORIES) for frame in frames]
        finish = prepare_result_layers(
            "img",
            {
                "scale": (1.0,) * self.original.ndim,
                "translate": (0.0,) * self.original.ndim,
                "metadata": {RESULT_KEY: {"source": "img", "edited": False}},
            },
        )
        self.segment.confirm_replace = lambda names: True
        self.segment._on_done(finish(results, self.original.shape[:-2]))
        self.wait_for(lambda: not self.segment._adding_layers)
        self.proofread._layer.value = self.cells
        self.settle()

    @rule()
    def save_and_reopen(self) -> None:
        from napari_livecell.io.read import read_coco_layers

        path = self.folder / f"img{self.saves}.json"
        self.saves += 1
        self.export_coco(path)
        layers = read_coco_layers(str(path))
        for name in ("img cells", "img outlines"):
            self.viewer.layers.remove(name)
        for data, kwargs, kind in layers:
            if kind == "image":
                continue
            kwargs = {**kwargs, "name": kwargs["name"].replace(path.stem, "img")}
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        self.proofread._layer.reset_choices()
        self.proofread._layer.value = self.cells
        self.settle()

    def wait_for(self, condition) -> None:
        import time

        from qtpy.QtWidgets import QApplication

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if condition():
                return
            QApplication.processEvents()
            time.sleep(0.005)
        raise AssertionError("the widget did not finish")

    def export_coco(self, path):
        from napari_livecell.io.write import write_labels_coco

        data, attributes, _ = self.cells.as_layer_data_tuple()
        write_labels_coco(str(path), data, attributes)
        return json.loads(path.read_text())

    # invariants ----------------------------------------------------------------
    @invariant()
    def table_has_one_true_row_per_cell(self) -> None:
        if not hasattr(self, "original"):
            return
        data = np.asarray(self.cells.data)
        table = self.cells.features
        assert table["index"].is_unique
        present = sorted(int(c) for c in np.unique(data) if c)
        assert sorted(table["index"].astype(int)) == present
        leading = data.shape[:-2]
        for row in table.to_dict("records"):
            mask = data == row["index"]
            assert row["area"] == mask.sum()
            assert row["class"] in CATEGORIES.values()
            where = np.argwhere(mask)[0][: len(leading)]
            assert row["frame"] == (np.ravel_multi_index(tuple(where), leading) if leading else 0)

    @invariant()
    def outlines_draw_the_labels(self) -> None:
        if not hasattr(self, "original"):
            return
        shapes = self.viewer.layers["img outlines"]
        data = np.asarray(self.cells.data)
        present = {int(c) for c in np.unique(data) if c}
        assert {int(c) for c in shapes.features["label"]} == present
        for frame in np.ndindex(*data.shape[:-2]) if data.ndim > 2 else [()]:
            plane = data[frame]
            for cell in (int(c) for c in np.unique(plane) if c):
                mask = plane == cell
                drawn = rasterise_outlines(shapes, cell, plane.shape, frame)
                iou = np.logical_and(drawn, mask).sum() / np.logical_or(drawn, mask).sum()
                assert iou >= 0.99, (cell, iou)

    @invariant()
    def summary_is_what_the_pixels_say(self) -> None:
        if not hasattr(self, "original"):
            return
        table = self.cells.features
        statuses = dict(zip(table["index"].astype(int), table["status"]))
        expected = reference_summary(np.asarray(self.cells.data), self.proofread.follower.baseline, statuses)
        assert self.proofread.summary().as_dict() == expected

    @invariant()
    def exports_hold_labels_table_and_classes(self) -> None:
        if not hasattr(self, "original"):
            return
        from pycocotools.coco import COCO

        from napari_livecell.io.write import write_labels_yolo

        path = self.folder / "check.json"
        self.export_coco(path)
        coco = COCO(str(path))
        data = np.asarray(self.cells.data)
        planes = data.reshape(-1, *data.shape[-2:])
        table = self.cells.features.set_index("index")
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES.values())
        seen = set()
        for annotation in coco.loadAnns(coco.getAnnIds()):
            cell = annotation["label"]
            seen.add(cell)
            plane = planes[annotation["image_id"] - 1]
            assert (coco.annToMask(annotation).astype(bool) == (plane == cell)).all()
            assert annotation["status"] == table.loc[cell, "status"]
            assert CATEGORIES[annotation["category_id"] - 1] == table.loc[cell, "class"]
        assert seen == set(table.index)
        data_tuple, attributes, _ = self.cells.as_layer_data_tuple()
        for txt in write_labels_yolo(str(self.folder / "check.txt"), data_tuple, attributes):
            classes = {int(line.split()[0]) for line in open(txt).read().splitlines()}
            assert classes <= set(CATEGORIES)


@pytest.mark.slow
def test_random_proofreading_sessions_keep_everything_true(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, segment = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    _, proofread = viewer.window.add_plugin_dock_widget("napari-livecell", "Proofread cells")
    Proofreading.viewer, Proofreading.segment, Proofreading.proofread = viewer, segment, proofread
    Proofreading.folder = tmp_path
    run_state_machine_as_test(
        Proofreading,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
