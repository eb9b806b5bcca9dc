"""The compiled linker step (numba) gives the numpy loop's links exactly, and scipy's assignments."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from napari_livecell.core import _compiled
from napari_livecell.core.tracking.linking import _IMPOSSIBLE
from napari_livecell.core.tracking.track import iter_frames, track_cells
from napari_livecell.core.training.synthetic import synthesize_timelapse

pytest.importorskip("numba")


def test_assignment_equals_scipy_with_ties_and_impossible_pairs():
    from napari_livecell.core.tracking._linking_kernel import assignment

    rng = np.random.default_rng(0)
    for _ in range(3000):
        shape = tuple(rng.integers(0, 8, size=2))
        # small integer costs tie often; the linker's impossible pairs are huge and tie too
        matrix = rng.integers(0, 4, size=shape).astype(float)
        if rng.random() < 0.5:
            matrix = rng.random(shape) * rng.choice([1.0, 1e3])
        matrix[rng.random(shape) < rng.random()] = _IMPOSSIBLE
        rows, columns = assignment(matrix)
        expected_rows, expected_columns = linear_sum_assignment(matrix)
        assert np.array_equal(rows, expected_rows) and np.array_equal(columns, expected_columns), matrix


def without_numba(monkeypatch, *names: str) -> None:
    """What an ImportError of numba leaves for these kernels: the numpy paths."""
    monkeypatch.setattr(_compiled, "_LOADED", {**_compiled._LOADED, **dict.fromkeys(names)})


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    """Played forwards and backwards (divisions, then merges), with a cell missed for a frame and for two."""
    lapse = synthesize_timelapse(seed=4, n_frames=12, n_cells=60, shape=(200, 240))
    assert len(lapse.lineage) > 60  # some cells divided
    labels = np.concatenate([lapse.labels, lapse.labels[-2:0:-1]]).astype(np.uint16)
    labels[5][labels[5] == 3] = 0  # a gap of one frame
    labels[15][labels[15] == 7] = 0  # and of two
    labels[16][labels[16] == 7] = 0
    return labels


@pytest.mark.parametrize("options", [{}, {"max_gap": 0}, {"max_gap": 2}, {"divisions": False}])
def test_compiled_linker_gives_the_numpy_links(movie, monkeypatch, options):
    compiled = track_cells(movie, **options)
    assert bool(compiled.graph) == options.get("divisions", True)  # divisions found, where asked for
    without_numba(monkeypatch, "tracking._linking_kernel")
    reference = track_cells(movie, **options)
    assert compiled.table.equals(reference.table) and compiled.graph == reference.graph
    assert compiled.lineage.equals(reference.lineage) and compiled.features.equals(reference.features)
    assert np.array_equal(compiled.labels, reference.labels)


def test_without_numba_everything_gives_the_same_tracks(movie, monkeypatch):
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(movie, chunks=(4, -1, -1))
    compiled = track_cells(lazy)
    assert len(compiled.graph) > 0  # divisions found
    without_numba(monkeypatch, "tracking._linking_kernel", "tracking._tracking_kernel")
    reference = track_cells(lazy)
    assert compiled.table.equals(reference.table) and compiled.graph == reference.graph
    assert compiled.lineage.equals(reference.lineage)
    for (_, ours), (_, theirs) in zip(iter_frames(compiled.labels), iter_frames(reference.labels)):
        assert np.array_equal(ours, theirs)
