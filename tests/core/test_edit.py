import numpy as np
import pytest

from napari_livecell.core.edit import correction_summary, delete_cell, merge_cells, split_cell


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
    with pytest.raises(ValueError, match="two different cells"):
        merge_cells(two_cells, 1, 1)


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
    summary = correction_summary(after, np.array([1, 2]), {1: "accepted", 7: "added"})
    assert summary.as_dict() == {
        "predicted": 2,
        "kept": 1,
        "deleted": 1,
        "added": 1,
        "edited": 0,
        "accepted": 1,
    }
