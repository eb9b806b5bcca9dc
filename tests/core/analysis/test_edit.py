import numpy as np
import pytest

from napari_livecell.core.analysis.edit import correction_summary, delete_cell, merge_cells, split_cell


def apply(labels, edit):
    out = labels.copy()
    out[edit.rows, edit.cols] = edit.values
    return out


@pytest.fixture
def two_cells():
    labels = np.zeros((40, 60), np.int32)
    labels[5:30, 5:25] = 1
    labels[5:30, 26:50] = 2  # one-pixel gap at column 25
    return labels


def test_delete(two_cells):
    after = apply(two_cells, delete_cell(two_cells, 2))
    assert set(np.unique(after)) == {0, 1}


def test_merge_fills_the_seam_into_one_piece(two_cells):
    from scipy import ndimage as ndi

    after = apply(two_cells, merge_cells(two_cells, 1, 2))
    assert set(np.unique(after)) == {0, 1}
    assert ndi.label(after == 1)[1] == 1


def test_split_along_a_line(two_cells):
    edit, cell, new = split_cell(two_cells, np.array([[17, 0], [17, 24]]))
    after = apply(two_cells, edit)
    assert (cell, new) == (1, 3)
    assert set(np.unique(after)) == {0, 1, 2, 3}
    assert ((after == 1) | (after == 3)).sum() == (two_cells == 1).sum()  # no pixel lost
    assert abs((after == 1).sum() - (after == 3).sum()) < 60
    with pytest.raises(ValueError, match="crosses no cell"):
        split_cell(two_cells, np.array([[35, 0], [35, 59]]))
    with pytest.raises(ValueError, match="does not cut"):
        split_cell(two_cells, np.array([[17, 8], [17, 12]]))


def test_summary_counts(two_cells):
    after = apply(two_cells, delete_cell(two_cells, 2))
    after[32:38, 5:10] = 7
    summary = correction_summary(after, two_cells, {1: "accepted", 7: "added"})
    assert summary.as_dict() == {
        "predicted": 2,
        "kept": 1,
        "deleted": 1,
        "added": 1,
        "edited": 0,
        "merged": 0,
        "accepted": 1,
    }


def test_merge_counts_one_edited_one_merged_and_leaves_no_new_hole():
    from scipy import ndimage as ndi

    labels = np.zeros((40, 60), np.int32)
    labels[5:30, 5:24] = 1
    labels[5:30, 26:50] = 2  # a two-pixel slit at columns 24-25
    labels[12:16, 10:14] = 0  # cell 1 has a hole of its own: it stays
    after = apply(labels, merge_cells(labels, 1, 2))
    merged = after == 1
    holes = ndi.binary_fill_holes(merged) & ~merged
    assert holes.sum() == 16  # only the hole cell 1 had
    assert ndi.label(merged)[1] == 1
    summary = correction_summary(after, labels, {})
    assert (summary.edited, summary.merged, summary.deleted, summary.added) == (1, 1, 0, 0)


def test_summary_does_not_depend_on_ids(two_cells):
    relabelled = np.where(two_cells == 1, 9, np.where(two_cells == 2, 4, 0)).astype(np.int32)
    summary = correction_summary(relabelled, two_cells, {})
    assert (summary.kept, summary.edited, summary.added, summary.deleted) == (2, 0, 0, 0)


def test_split_counts_one_edited_one_added(two_cells):
    edit, _, _ = split_cell(two_cells, np.array([[17, 0], [17, 24]]))
    summary = correction_summary(apply(two_cells, edit), two_cells, {})
    assert (summary.edited, summary.added, summary.kept) == (1, 1, 1)


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (lambda labels: merge_cells(labels, 0, 0), "not the background"),
        (lambda labels: merge_cells(labels, 1, 1), "two different cells"),
        (lambda labels: merge_cells(labels, 1, 99), "cell 99 does not exist"),
        (lambda labels: delete_cell(labels, 99), "cell 99 does not exist"),
        (lambda labels: delete_cell(labels, 0), "not the background"),
    ],
)
def test_bad_edits_say_what_is_wrong(two_cells, operation, message):
    with pytest.raises(ValueError, match=message):
        operation(two_cells)
