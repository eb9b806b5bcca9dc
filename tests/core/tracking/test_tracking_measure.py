"""The one-pass frame measurement equals regionprops_table and a pixel-by-pixel overlap count."""

import numpy as np
import pytest
from skimage.measure import regionprops_table

from napari_livecell.core.tracking.track import Overlaps, cell_table, measure_frame
from napari_livecell.core.training.synthetic import synthesize_timelapse


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=3, n_frames=3, n_cells=40, shape=(150, 190))


def assert_like_regionprops(frame):
    cells = measure_frame(frame)
    props = regionprops_table(frame, properties=("label", "centroid", "area"))
    assert np.array_equal(cells.label, props["label"])
    assert np.array_equal(cells.area, props["area"])
    # exact: both divide the same integer sums by the area
    assert np.array_equal(cells.y, props["centroid-0"])
    assert np.array_equal(cells.x, props["centroid-1"])


def naive_overlaps(previous, frame):
    both = (previous > 0) & (frame > 0)
    pairs, counts = np.unique(np.stack([frame[both], previous[both]]), axis=1, return_counts=True)
    return {(int(a), int(b)): int(c) for (a, b), c in zip(pairs.T, counts)}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_synthetic_frames_equal_regionprops(lapse, dtype):
    for frame in lapse.labels:
        assert_like_regionprops(frame.astype(dtype))


def test_holes_parts_edges_and_huge_ids_equal_regionprops():
    rng = np.random.default_rng(7)
    frame = np.zeros((40, 37), dtype=np.int64)
    frame[5:15, 5:15] = 3
    frame[8:12, 8:12] = 0  # a hole
    frame[20:22, 0:37] = 9  # touches both edges, spans whole rows
    frame[30:40, 30:37] = 9  # a second part of cell 9
    frame[0, 36] = 100_000  # an id far above the others (sorting path), in a corner
    frame[39, 0] = 1
    assert_like_regionprops(frame)
    noise = rng.integers(0, 50, size=(31, 29))
    assert_like_regionprops(noise)
    assert_like_regionprops(rng.integers(0, 3, size=(1, 50)))
    assert_like_regionprops(rng.integers(0, 3, size=(50, 1)))
    empty = measure_frame(np.zeros((10, 10), np.uint16))
    assert empty.label.size == 0 and empty.area.size == 0


def test_overlaps_equal_a_pixel_count(lapse):
    rng = np.random.default_rng(1)
    for t in (1, 2):
        previous, frame = lapse.labels[t - 1], lapse.labels[t]
        cells = measure_frame(frame, previous)
        found = dict(
            zip(
                zip(cells.overlap_label.tolist(), cells.overlap_previous.tolist()),
                cells.overlap_pixels.tolist(),
            )
        )
        assert found == naive_overlaps(previous, frame)
    a, b = rng.integers(0, 6, size=(2, 23, 19))
    a[0, 0], b[5, 5] = 10**9, 10**9  # sorting paths for ids and pair codes
    cells = measure_frame(b, a)
    found = dict(
        zip(zip(cells.overlap_label.tolist(), cells.overlap_previous.tolist()), cells.overlap_pixels.tolist())
    )
    assert found == naive_overlaps(a, b)


def test_cell_table_and_overlaps_over_a_stack(lapse):
    overlaps = Overlaps()
    table = cell_table(lapse.labels, overlaps=overlaps)
    assert list(table.columns) == ["t", "label", "y", "x", "area"]
    for t, frame in enumerate(lapse.labels):
        rows = table[table["t"] == t]
        props = regionprops_table(frame, properties=("label", "centroid", "area"))
        assert np.array_equal(rows["label"], props["label"])
        assert np.array_equal(rows["y"], props["centroid-0"])
    truth = naive_overlaps(lapse.labels[1], lapse.labels[2])
    label, previous = next(iter(truth))
    assert overlaps.shared(2, label, previous) == truth[(label, previous)]
    assert overlaps.of(2, label) == {p: c for (l_, p), c in truth.items() if l_ == label}
    assert overlaps.shared(0, label, previous) == 0  # frame 0 has no previous frame


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        measure_frame(np.zeros((2, 3, 4), np.int32))
    with pytest.raises(ValueError, match="differ in shape"):
        measure_frame(np.zeros((3, 4), np.int32), np.zeros((4, 3), np.int32))


def test_lazy_frames_come_block_by_block_in_order(lapse):
    da = pytest.importorskip("dask.array")
    from napari_livecell.core.tracking.track import iter_frames

    for chunks in ((1, -1, -1), (2, -1, -1), (2, 50, 60)):
        lazy = da.from_array(lapse.labels, chunks=chunks)
        frames = list(iter_frames(lazy))
        assert [t for t, _ in frames] == [0, 1, 2]
        assert all(np.array_equal(frame, lapse.labels[t]) for t, frame in frames)


def test_iter_track_cells_reports_every_frame(lapse):
    from napari_livecell.core.tracking.track import iter_track_cells, track_cells

    steps = iter_track_cells(lapse.labels)
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as done:
            result = done.value
            break
    assert [s for s in seen if s[0] == "measuring"] == [("measuring", t, 3) for t in (1, 2, 3)]
    assert [s for s in seen if s[0] == "relabelling"][-1] == ("relabelling", 3, 3)
    assert np.array_equal(result.labels, track_cells(lapse.labels).labels)


def test_read_ahead_gives_every_item_and_raises_the_readers_error():
    from napari_livecell.core.tracking.frame_cells import read_ahead

    assert list(read_ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise OSError("unreadable frame")

    items = read_ahead(failing())
    assert next(items) == 1
    with pytest.raises(OSError, match="unreadable frame"):
        next(items)


def test_closing_the_read_ahead_stops_its_thread():
    import threading

    from napari_livecell.core.tracking.frame_cells import read_ahead

    items = read_ahead(iter(range(1000)), depth=2)
    assert next(items) == 0
    items.close()  # what a cancelled tracking run does
    assert not any(thread.name == "napari-livecell-read-ahead" for thread in threading.enumerate())
