"""Tracking a segmented time-lapse: links, divisions, relabelling, flags (issue 18)."""

import numpy as np
import pytest

from napari_livecell.core.tracking.track import (
    graph_from_lineage,
    link_accuracy,
    review_flags,
    track_cells,
    tracks_from_labels,
)
from napari_livecell.core.training.synthetic import synthesize_timelapse

SHAPE = (160, 200)


@pytest.fixture(scope="module", params=[0, 2])
def lapse(request):
    return synthesize_timelapse(seed=request.param, n_frames=8, n_cells=30, shape=SHAPE)


@pytest.fixture(scope="module")
def tracked(lapse):
    return track_cells(lapse.labels)


def test_links_and_divisions_match_the_ground_truth(lapse, tracked):
    truth = graph_from_lineage(lapse.lineage)
    assert len(truth) >= 2  # the stack does have divisions
    scores = link_accuracy(lapse.track_labels, truth, tracked.labels, tracked.graph)
    assert scores["recall"] >= 0.95 and scores["precision"] >= 0.95, scores
    assert scores["divisions_found"] == scores["divisions"], scores
    # each predicted division names a true mother
    assert scores["divisions_predicted"] >= 1


def test_one_id_per_cell_along_its_track(lapse, tracked):
    # every true cell keeps a single predicted id over its whole life
    for track_id, first, last, _ in lapse.lineage:
        ids = {
            int(np.bincount(tracked.labels[t][lapse.track_labels[t] == track_id]).argmax())
            for t in range(first, last + 1)
        }
        assert len(ids) == 1 and 0 not in ids, (track_id, ids)


def test_relabelled_stack_keeps_pixels_and_first_frame_ids(lapse, tracked):
    assert tracked.labels.dtype == np.int32
    assert np.array_equal(tracked.labels > 0, lapse.labels > 0)
    # frame 0's ids (consecutive from 1) are kept: colours do not change on tracking
    assert np.array_equal(tracked.labels[0], lapse.labels[0])


def test_tracks_table_matches_the_labels(tracked):
    from_labels = tracks_from_labels(tracked.labels)
    table = tracked.table
    assert list(table.columns[:4]) == ["track_id", "t", "y", "x"]
    assert np.array_equal(from_labels[["track_id", "t", "area"]], table[["track_id", "t", "area"]])
    assert np.allclose(from_labels[["y", "x"]], table[["y", "x"]])
    napari = tracked.napari_tracks
    assert napari.shape == (len(table), 4)
    # napari needs rows sorted by track, then time
    assert np.all(np.lexsort((napari[:, 1], napari[:, 0])) == np.arange(len(napari)))


def test_graph_lineage_and_features_agree(tracked):
    lineage = tracked.lineage.set_index("id")
    features = tracked.features.set_index("track_id")
    for daughter, (mother,) in tracked.graph.items():
        assert lineage.loc[mother, "last_frame"] < lineage.loc[daughter, "first_frame"]
        assert lineage.loc[daughter, "parent"] == mother
        assert features.loc[mother, "divides"]
    assert features["divides"].sum() == len({m for (m,) in tracked.graph.values()})
    assert (features["length"] == features["last_frame"] - features["first_frame"] + 1).all()
    speeds = features["mean_speed"].dropna()
    assert (speeds > 0).all() and speeds.median() < 5  # synthetic cells drift ~1 px/frame


def test_a_missed_frame_keeps_the_track(lapse, tracked):
    labels = lapse.labels.copy()
    victim = int(labels[3][80, 100]) or int(labels[3].max())
    truth = lapse.track_labels[3][labels[3] == victim][0]
    labels[3][labels[3] == victim] = 0
    result = track_cells(labels)
    ids = {int(result.labels[t][lapse.track_labels[t] == truth][0]) for t in (2, 4)}
    assert len(ids) == 1
    features = result.features.set_index("track_id")
    assert features.loc[ids.pop(), "gaps"] == 1


def test_no_gap_closing_breaks_the_track(lapse):
    labels = lapse.labels.copy()
    victim = int(labels[3].max())
    truth = lapse.track_labels[3][labels[3] == victim][0]
    labels[3][labels[3] == victim] = 0
    result = track_cells(labels, max_gap=0, divisions=False)
    ids = {int(result.labels[t][lapse.track_labels[t] == truth][0]) for t in (2, 4)}
    assert len(ids) == 2 and not result.graph


def test_lazy_stack_stays_lazy_and_gives_the_same_tracks(lapse, tracked):
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(lapse.labels, chunks=(1, *SHAPE))
    result = track_cells(lazy)
    assert isinstance(result.labels, da.Array)
    assert np.array_equal(result.labels.compute(), tracked.labels)
    assert result.graph == tracked.graph


def test_empty_stack():
    result = track_cells(np.zeros((3, 20, 20), np.int32))
    assert result.table.empty and result.graph == {} and not result.labels.any()


# --------------------------------------------------------------------------- review flags


def test_planted_errors_are_flagged_in_frame_order(lapse):
    stack = lapse.track_labels.copy()
    lineage = lapse.lineage
    whole = [int(t) for t in lineage[(lineage[:, 1] == 0) & (lineage[:, 2] == 7)][:, 0]]
    flicker = whole[0]
    # the two cells farthest apart in frame 6 swap ids there
    centres = tracks_from_labels(lapse.track_labels).query("t == 6").set_index("track_id")
    points = centres.loc[whole[1:], ["y", "x"]].to_numpy()
    far = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
    i, j = np.unravel_index(far.argmax(), far.shape)
    jumper_a, jumper_b = whole[1 + i], whole[1 + j]
    # a flickering track: gone in frames 2 and 4
    for t in (2, 4):
        stack[t][stack[t] == flicker] = 0
    # a false detection in one mid-movie frame, on background
    singleton = int(stack.max()) + 1
    empty = np.argwhere(np.lib.stride_tricks.sliding_window_view(stack[5], (4, 4)).max(axis=(2, 3)) == 0)
    row, col = empty[len(empty) // 2]
    stack[5, row : row + 4, col : col + 4] = singleton
    # ids swapped between two far cells for one frame: both jump there and back
    a, b = stack[6] == jumper_a, stack[6] == jumper_b
    stack[6][a], stack[6][b] = jumper_b, jumper_a
    table = tracks_from_labels(stack)
    flags = review_flags(table)
    found = set(zip(flags["track_id"], flags["kind"]))
    assert (singleton, "singleton") in found
    assert (flicker, "flicker") in found
    assert far.max() > 60
    assert {(jumper_a, "jump"), (jumper_b, "jump")} <= found
    assert flags["t"].is_monotonic_increasing
    jumps = flags[flags["kind"] == "jump"]
    assert set(jumps["t"]) == {6, 7}  # there and back
    clean = review_flags(tracks_from_labels(lapse.track_labels))
    assert not {"flicker", "jump"} & set(clean["kind"])


# --------------------------------------------------------------------------- the linker


def _disk(shape, centre, radius, value, out):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    out[(rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2] = value


def test_a_cell_that_jumps_past_its_own_size_keeps_its_track():
    # no overlap between frames: the distance assignment links it, not a neighbour far away
    stack = np.zeros((3, 60, 120), np.int32)
    for t, column in enumerate((20, 40, 60)):
        _disk(stack.shape[1:], (30, column), 6, 1, stack[t])
        _disk(stack.shape[1:], (30, 110), 4, 2, stack[t])
    result = track_cells(stack, max_distance=25)
    assert result.table.groupby("track_id")["t"].size().tolist() == [3, 3]
    assert np.array_equal(result.labels, stack)


def test_a_division_whose_daughters_both_start_is_found():
    # neither daughter is linked by overlap (they lie farther than max_distance from the
    # mother's centre): both start, and both become the daughters of the cell that covered them
    stack = np.zeros((3, 60, 80), np.int32)
    _disk(stack.shape[1:], (30, 40), 10, 1, stack[0])
    _disk(stack.shape[1:], (30, 40), 10, 1, stack[1])
    _disk(stack.shape[1:], (30, 31), 6, 1, stack[2])
    _disk(stack.shape[1:], (30, 49), 6, 2, stack[2])
    result = track_cells(stack, max_distance=5)
    assert result.graph == {2: [1], 3: [1]}


def test_the_overlap_linker_is_as_right_as_laptrack(lapse, tracked):
    reference = track_cells(lapse.labels, linker="laptrack")
    truth = graph_from_lineage(lapse.lineage)
    ours = link_accuracy(lapse.track_labels, truth, tracked.labels, tracked.graph)
    theirs = link_accuracy(lapse.track_labels, truth, reference.labels, reference.graph)
    assert ours["recall"] >= theirs["recall"] and ours["divisions_found"] >= theirs["divisions_found"]


def test_an_unknown_linker_is_one_line():
    with pytest.raises(ValueError, match="unknown linker 'greedy'"):
        track_cells(np.zeros((2, 8, 8), np.int32), linker="greedy")
