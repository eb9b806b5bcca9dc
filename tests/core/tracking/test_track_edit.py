"""Correcting a track's id from one frame on re-links only the two tracks involved (issue 18)."""

import numpy as np
import pandas as pd
import pytest

from napari_livecell.core.tracking.edits import correct_track_id
from napari_livecell.core.tracking.track import (
    TrackingResult,
    graph_from_lineage,
    track_features,
    tracks_from_labels,
)
from napari_livecell.core.training.synthetic import synthesize_timelapse


@pytest.fixture(scope="module")
def truth():
    lapse = synthesize_timelapse(seed=3, n_frames=8, n_cells=30, shape=(160, 200))
    table = tracks_from_labels(lapse.track_labels)
    graph = graph_from_lineage(lapse.lineage)
    result = TrackingResult(lapse.track_labels, table, graph, track_features(table, graph))
    return lapse, result


def _whole_tracks(lapse):
    lineage = lapse.lineage
    return [int(i) for i in lineage[(lineage[:, 1] == 0) & (lineage[:, 2] == 7)][:, 0]]


def _apply(labels, correction):
    out = labels.copy()
    out[correction.changed] = correction.after
    return out


def test_a_swap_touches_only_two_tracks_from_its_frame_and_is_undone_exactly(truth):
    lapse, result = truth
    a, b = _whole_tracks(lapse)[:2]
    swapped = correct_track_id(lapse.track_labels, result, 4, a, b)
    broken = _apply(lapse.track_labels, swapped)
    # only the two tracks' pixels, and only from frame 4 on, changed
    differs = broken != lapse.track_labels
    assert not differs[:4].any() and differs[4:].any()
    assert set(np.unique(lapse.track_labels[differs])) == {a, b}
    assert swapped.relinked_frames == (4,) and set(swapped.touched_tracks) == {a, b}
    # the table agrees with the new pixels; every other track's rows are as they were
    table = swapped.result.table
    from_pixels = tracks_from_labels(broken)
    assert np.array_equal(from_pixels[["track_id", "t", "area"]], table[["track_id", "t", "area"]])
    others = ~table["track_id"].isin([a, b])
    before = result.table[~result.table["track_id"].isin([a, b])].reset_index(drop=True)
    pd.testing.assert_frame_equal(table[others].reset_index(drop=True), before)
    untouched = ~swapped.result.features["track_id"].isin([a, b])
    pd.testing.assert_frame_equal(
        swapped.result.features[untouched].reset_index(drop=True),
        result.features[~result.features["track_id"].isin([a, b])].reset_index(drop=True),
    )
    # correcting it back restores pixels, table, lineage and features exactly
    fixed = correct_track_id(broken, swapped.result, 4, b, a)
    assert np.array_equal(_apply(broken, fixed), lapse.track_labels)
    pd.testing.assert_frame_equal(fixed.result.table, result.table)
    assert fixed.result.graph == result.graph
    pd.testing.assert_frame_equal(fixed.result.features, result.features)
    # undo: the old ids at the changed pixels, and the tracks before
    undone = broken.copy()
    undone[swapped.changed] = swapped.before
    assert np.array_equal(undone, lapse.track_labels) and swapped.previous is result


def test_split_gives_a_new_track_with_the_daughters_and_merge_joins_it_back(truth):
    lapse, result = truth
    spans = result.table.groupby("track_id")["t"].agg(["min", "max"])
    mother, daughter = next(
        (m, d) for d, (m,) in result.graph.items() if spans.loc[m, "max"] > spans.loc[m, "min"]
    )
    last = int(spans.loc[mother, "max"])
    fresh = int(result.table["track_id"].max()) + 1
    split = correct_track_id(lapse.track_labels, result, last, mother, fresh)
    graph = split.result.graph
    assert graph[daughter] == [fresh] and fresh not in graph  # daughters follow the end of the track
    features = split.result.features.set_index("track_id")
    assert features.loc[fresh, "divides"] and not features.loc[mother, "divides"]
    assert features.loc[mother, "last_frame"] == last - 1 and features.loc[fresh, "first_frame"] == last
    merged = correct_track_id(_apply(lapse.track_labels, split), split.result, last, fresh, mother)
    assert np.array_equal(_apply(_apply(lapse.track_labels, split), merged), lapse.track_labels)
    assert merged.result.graph == result.graph
    pd.testing.assert_frame_equal(merged.result.features, result.features)


def test_bad_corrections_are_one_line_errors(truth):
    lapse, result = truth
    a = _whole_tracks(lapse)[0]
    absent = int(result.table["track_id"].max()) + 5
    for args, words in [
        ((3, absent, a), "has no cell in frame 3"),
        ((3, a, a), "already has id"),
        ((99, a, 1), "outside the stack"),
        ((3, a, 0), "must be positive"),
    ]:
        with pytest.raises(ValueError, match=words):
            correct_track_id(lapse.track_labels, result, *args)
    with pytest.raises(ValueError, match="does not fit"):
        correct_track_id(lapse.track_labels.astype(np.uint8), result, 3, a, 300)
