"""Exports of tracks: CSV, Cell Tracking Challenge folders, ImageJ ROI sets (issue 18)."""

import numpy as np
import pytest

from napari_livecell.core.formats.ctc import read_ctc, read_lineage, write_ctc
from napari_livecell.core.formats.roi import read_roi_zip, roi_frame, roi_rings, write_roi_zip
from napari_livecell.core.segmentation import polygons_to_mask
from napari_livecell.core.tracking.track import (
    graph_from_lineage,
    read_tracks_csv,
    track_cells,
    write_tracks_csv,
)
from napari_livecell.core.training.synthetic import synthesize_timelapse

SHAPE = (150, 180)


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=2, n_frames=6, n_cells=25, shape=SHAPE)


def test_ctc_round_trip_is_exact(lapse, tmp_path):
    graph = graph_from_lineage(lapse.lineage)
    written = write_ctc(tmp_path / "01_GT" / "TRA", lapse.track_labels, graph, ground_truth=True)
    assert sorted(p.name for p in (tmp_path / "01_GT" / "TRA").iterdir())[:2] == [
        "man_track.txt",
        "man_track000.tif",
    ]
    labels, lineage = read_ctc(tmp_path / "01_GT")
    assert labels.dtype == np.uint16
    assert np.array_equal(labels, lapse.track_labels)
    assert np.array_equal(lineage.to_numpy(), lapse.lineage)
    assert np.array_equal(written.to_numpy(), lapse.lineage)
    lazy, _ = read_ctc(tmp_path / "01_GT", lazy=True)
    assert np.array_equal(lazy[3].compute(), lapse.track_labels[3])


def test_ctc_splits_a_track_at_a_gap(tmp_path):
    stack = np.zeros((4, 10, 10), np.int32)
    stack[:, 2:5, 2:5] = 7
    stack[2] = 0  # track 7 missed in frame 2
    stack[3, 6:9, 6:9] = 3  # a daughter of 7, born after the gap
    lineage = write_ctc(tmp_path, stack, {3: [7]})
    assert lineage.to_numpy().tolist() == [[3, 3, 3, 8], [7, 0, 1, 0], [8, 3, 3, 7]]
    labels, read = read_ctc(tmp_path)
    assert read.equals(lineage) and read_lineage(tmp_path / "res_track.txt").equals(lineage)
    assert labels[3, 3, 3] == 8 and labels[0, 3, 3] == 7


def test_ctc_metrics_accept_our_folders_and_score_tracking(lapse, tmp_path):
    pytest.importorskip("ctc_metrics", reason="py-ctcmetrics is optional (pip install py-ctcmetrics)")
    from ctc_metrics.scripts.evaluate import evaluate_sequence
    from ctc_metrics.scripts.validate import validate_sequence

    write_ctc(
        tmp_path / "01_GT" / "TRA", lapse.track_labels, graph_from_lineage(lapse.lineage), ground_truth=True
    )
    result = track_cells(lapse.labels)
    write_ctc(tmp_path / "01_RES", result.labels, result.graph)
    assert validate_sequence(str(tmp_path / "01_RES"), threads=1)["Valid"] == 1
    scores = evaluate_sequence(str(tmp_path / "01_RES"), str(tmp_path / "01_GT"), metrics=["TRA"], threads=1)
    assert scores["TRA"] >= 0.95, scores


def test_tracks_csv_round_trip(lapse, tmp_path):
    result = track_cells(lapse.labels)
    path = write_tracks_csv(tmp_path / "tracks.csv", result.table, result.graph)
    header = path.read_text().splitlines()[0]
    assert header == "frame,id,parent,y,x,area"
    table, graph = read_tracks_csv(path)
    assert graph == result.graph
    assert np.array_equal(table[["track_id", "t", "area"]], result.table[["track_id", "t", "area"]])
    assert np.allclose(table[["y", "x"]], result.table[["y", "x"]], atol=1e-3)


def _ious(a: np.ndarray, b: np.ndarray) -> list[float]:
    ious = []
    for cell in np.unique(a[a > 0]):
        x, y = a == cell, b == cell
        ious.append((x & y).sum() / (x | y).sum())
    return ious


def test_roi_zip_of_a_stack_reads_back_with_roifile(lapse, tmp_path):
    roifile = pytest.importorskip("roifile")
    stack = lapse.track_labels[:3].copy()
    # a cell with a hole and a second part: one composite ROI
    stack[0, 5:20, 5:20] = 999
    stack[0, 10:13, 10:13] = 0
    stack[0, 30:35, 2:5] = 999
    path = write_roi_zip(tmp_path / "cells.zip", stack)
    rois = roifile.roiread(path)
    n_cells = sum(len(np.unique(frame[frame > 0])) for frame in stack)
    assert len(rois) == n_cells
    # roifile alone (no code of ours) gives polygons that fill each cell exactly
    for roi in rois:
        t, cell = roi_frame(roi), int(roi.name.split("-")[1])
        assert roi.t_position == roi.position == t + 1
        mask = polygons_to_mask(roi_rings(roi), SHAPE)
        truth = stack[t] == cell
        assert (mask & truth).sum() / (mask | truth).sum() >= 0.99
    assert sum(roi.composite for roi in rois) == 1
    back = read_roi_zip(path, SHAPE)
    assert back.shape == stack.shape
    assert min(_ious(stack, back)) >= 0.99
    assert np.array_equal(back, stack)


def test_roi_zip_of_one_image(lapse, tmp_path):
    image = lapse.labels[0]
    path = write_roi_zip(tmp_path / "frame.zip", image)
    back = read_roi_zip(path, SHAPE)
    assert back.shape == SHAPE and np.array_equal(back, image)
    with pytest.raises(ValueError, match="empty"):
        write_roi_zip(tmp_path / "none.zip", np.zeros(SHAPE, np.int32))
    assert not (tmp_path / "none.zip").exists()
