"""The compiled frame measurement (numba) gives the numpy path's tables exactly."""

import subprocess
import sys

import numpy as np
import pytest

from napari_livecell.core import _compiled
from napari_livecell.core.tracking import frame_cells as track_measure
from napari_livecell.core.tracking import relabel as track_relabel
from napari_livecell.core.tracking import track as tracking
from napari_livecell.core.tracking.frame_cells import FrameCells, _measure_frame_numpy, measure_frame
from napari_livecell.core.training.synthetic import synthesize_timelapse

pytest.importorskip("numba")

FIELDS = ("label", "y", "x", "area", "overlap_label", "overlap_previous", "overlap_pixels")


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    """Track ids (divisions give new ids), a gap, an empty frame, sparse ids, one id spanning two parts."""
    lapse = synthesize_timelapse(seed=5, n_frames=7, n_cells=30, shape=(96, 128))
    labels = lapse.track_labels.astype(np.int64)
    assert len(lapse.lineage) > 30  # some cells divided
    labels[2][labels[2] == labels[2].max()] = 0  # a cell missed in one frame: a gap
    labels[4] = 0  # an empty frame
    labels[labels > 0] = labels[labels > 0] * 7 + 3  # ids neither consecutive nor from 1
    labels[5, :3, :3] = labels[5, 50, 60] or 11  # a cell in two parts, one in a corner
    labels[6, :, -1] = 5  # a cell along the right edge: runs end at the row's end
    return labels


def assert_same(compiled: FrameCells, reference: FrameCells) -> None:
    for field in FIELDS:
        ours, theirs = getattr(compiled, field), getattr(reference, field)
        assert ours.dtype == theirs.dtype, field
        # exact, not close: the centroids divide the same integer sums
        assert np.array_equal(ours, theirs), field


def compiled(frame: np.ndarray, previous: np.ndarray | None = None) -> FrameCells:
    cells = track_measure._measure_compiled(frame, previous)
    assert cells is not None, "the kernel left this frame to numpy"
    return cells


@pytest.mark.parametrize("dtype", [np.int32, np.uint16])
@pytest.mark.parametrize("run_on", [0, 20_000], ids=["ids-from-1", "ids-run-on"])
def test_kernel_equals_numpy_over_a_stack(stack, dtype, run_on):
    # run_on: ids that grow frame after frame (a table from the smallest id, not from 1)
    frames = [np.where(frame > 0, frame + run_on * t, 0).astype(dtype) for t, frame in enumerate(stack)]
    for t, frame in enumerate(frames):
        assert_same(compiled(frame), _measure_frame_numpy(frame))
        if t:
            assert_same(compiled(frame, frames[t - 1]), _measure_frame_numpy(frame, frames[t - 1]))
    cells = compiled(frames[3], frames[2])
    assert len(cells.label) > 25 and len(cells.overlap_label) >= len(cells.label)


def test_kernel_edge_cases_equal_numpy():
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 9, size=(2, 31, 29)).astype(np.int32)  # many short runs, many pairs
    assert_same(compiled(noise[1], noise[0]), _measure_frame_numpy(noise[1], noise[0]))
    for shape in ((1, 40), (40, 1), (1, 1)):
        a, b = rng.integers(0, 3, size=(2, *shape)).astype(np.uint16)
        assert_same(compiled(b, a), _measure_frame_numpy(b, a))
    empty = np.zeros((8, 9), np.uint16)
    assert_same(compiled(empty, noise[0, :8, :9].astype(np.uint16)), _measure_frame_numpy(empty))
    # a column slice is not C-contiguous; mixed dtypes are widened
    assert_same(
        compiled(noise[1, :, ::2], noise[0, :, ::2]), _measure_frame_numpy(noise[1, :, ::2], noise[0, :, ::2])
    )
    assert_same(compiled(noise[1].astype(np.uint16), noise[0]), _measure_frame_numpy(noise[1], noise[0]))


def test_ids_the_kernel_leaves_to_numpy():
    frame = np.zeros((20, 20), np.int64)
    frame[2:5, 2:5] = 1
    frame[10:12, 10:15] = 10**9  # ids spread far wider than the pixels
    assert track_measure._measure_compiled(frame, None) is None
    assert_same(measure_frame(frame), _measure_frame_numpy(frame))
    frame[10:12, 10:15] = -4  # not a label
    assert track_measure._measure_compiled(frame, None) is None


def test_numba_is_imported_on_first_measurement_only():
    code = (
        "import sys, numpy as np; import napari_livecell, napari_livecell.core.tracking.track as t; "
        "assert 'numba' not in sys.modules; t.measure_frame(np.ones((3, 3), np.uint8)); "
        "assert 'numba' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16])
def test_compiled_relabel_equals_numpy(stack, dtype):
    frame = stack[3].astype(dtype)
    lookup = np.arange(int(frame.max()) + 1, dtype=np.int32) * 3 + 1
    lookup[0] = 0
    assert np.array_equal(track_relabel._apply_lookup(frame, lookup), lookup[frame])
    short = lookup[: len(lookup) // 2]  # ids past the lookup's end become background
    expected = np.where(frame < len(short), short[np.minimum(frame, len(short) - 1)], 0)
    relabelled = track_relabel._apply_lookup(frame, short)
    assert relabelled.dtype == np.int32 and np.array_equal(relabelled, expected)


def test_without_numba_the_numpy_paths_run(stack, monkeypatch):
    # what an ImportError of numba leaves: tracking.measure_frame and relabelling in numpy
    frames = stack.astype(np.uint16)
    with_numba = tracking.track_cells(frames)
    monkeypatch.setattr(_compiled, "_LOADED", {**_compiled._LOADED, "tracking._tracking_kernel": None})
    assert track_measure._measure_compiled(frames[1], frames[0]) is None
    without = tracking.track_cells(frames)
    assert without.table.equals(with_numba.table) and without.graph == with_numba.graph
    assert np.array_equal(without.labels, with_numba.labels)
