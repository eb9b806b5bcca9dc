"""Frames of a lazy (dask) stack come out in order, equal to the numpy stack's, however it is chunked."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_livecell.core.inference.predict import iter_frames


@pytest.mark.parametrize(
    ("shape", "chunks", "rgb"),
    [
        ((5, 32, 40), (1, 32, 40), False),  # napari's usual: one frame per block
        ((5, 32, 40), (2, 32, 40), False),  # several frames per block
        ((5, 32, 40), (1, 16, 40), False),  # frames in tiles
        ((3, 4, 32, 40), (2, 1, 32, 20), False),  # T and Z, blocks that are not in C order of frames
        ((4, 32, 40, 3), (3, 32, 40, 3), True),  # colour
    ],
)
def test_lazy_frames_equal_the_numpy_frames(shape, chunks, rgb):
    values = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    leading, eager = iter_frames(values, rgb)
    lazy_leading, lazy = iter_frames(da.from_array(values, chunks=chunks), rgb)
    assert lazy_leading == leading
    expected = list(eager)
    got = list(lazy)
    assert [index for index, _ in got] == [index for index, _ in expected]
    for (_, frame), (_, reference) in zip(got, expected):
        assert isinstance(frame, np.ndarray) and np.array_equal(frame, reference)


@pytest.mark.parametrize("start", [0, 1, 5, 11])
def test_a_resumed_run_reads_the_frames_after_start_of_a_t_and_z_stack(start):
    values = np.random.default_rng(1).integers(0, 255, (3, 4, 32, 40), dtype=np.uint8)
    _, eager = iter_frames(values, False)
    _, lazy = iter_frames(da.from_array(values, chunks=(2, 1, 32, 20)), False, start)
    expected = list(eager)[start:]
    got = list(lazy)
    assert [index for index, _ in got] == [index for index, _ in expected]
    for (_, frame), (_, reference) in zip(got, expected):
        assert np.array_equal(frame, reference)
