"""Large frames: results unchanged for normal frames, tiling cost linear, memory bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_livecell.core.inference.predict import segment_frame
from napari_livecell.core.training.synthetic import synthesize_image

# labels, scores and classes that segment_frame gave these frames at commit 0fe9f6c,
# before frames were converted and painted tile by tile (made with the shipped model on CPU)
REFERENCE = Path(__file__).with_name("segment_reference.npz")


def _reference_frames() -> dict[str, np.ndarray]:
    untiled = synthesize_image(seed=7001, n_cells=150).image
    tiled = synthesize_image(seed=7002, n_cells=1200, shape=(1500, 1500)).image
    twelve_bit = (tiled.astype(np.uint16) * 16 + 7).astype(np.uint16)
    gray = synthesize_image(seed=7003, n_cells=500, shape=(900, 1100)).image.astype(np.float32)
    gray[5, 7] = np.nan
    gray[100, 200] = np.inf
    rgb = np.stack([gray, gray * 0.9, gray * 0.8], axis=-1)
    return {
        "frame_704x520_uint8": untiled,
        "frame_1500x1500_uint16": twelve_bit,
        "frame_900x1100_float_rgb": rgb,
    }


@pytest.mark.parametrize("name", list(_reference_frames()))
def test_normal_frames_give_the_same_cells_as_before(name, default_model):
    expected = np.load(REFERENCE)
    result = segment_frame(_reference_frames()[name], default_model)
    differing = int(np.count_nonzero(result.labels != expected[f"{name}_labels"]))
    assert differing == 0, f"{differing} pixels differ from the reference labels"
    np.testing.assert_array_equal(result.scores, expected[f"{name}_scores"])
    np.testing.assert_array_equal(result.classes, expected[f"{name}_classes"])


def _mosaic(side: int) -> np.ndarray:
    """A 12-bit ``side`` x ``side`` frame tiled from one LIVECell-sized synthetic frame (cells everywhere)."""
    base = synthesize_image(seed=7100, n_cells=250).image
    repeats = (side // base.shape[0] + 1, side // base.shape[1] + 1)
    return (np.tile(base, repeats)[:side, :side].astype(np.uint16) * 16 + 7).astype(np.uint16)


def _run(frame: np.ndarray, model, settings) -> tuple[float, int, int, int]:
    """Seconds per tile, tiles, cells and the peak memory traced beyond the frame and its labels."""
    import time
    import tracemalloc

    from napari_livecell.core.inference.predict import segment_frame_steps

    tracemalloc.start()
    started = time.perf_counter()
    steps = segment_frame_steps(frame, model, settings, tile=True)
    while True:
        try:
            _, tiles = next(steps)
        except StopIteration as finished:
            result = finished.value
            break
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds / tiles, tiles, result.n_cells, peak - result.labels.nbytes


def test_tiling_cost_is_linear_and_memory_is_one_tile_beyond_the_labels(default_model, monkeypatch):
    from napari_livecell.core.inference import frame_input
    from napari_livecell.core.inference.predict import PredictSettings

    # 256-px tiles (64 px overlap) keep the test quick; the same code runs 704-px tiles.
    # 3 x 3 and 6 x 6 tiles exactly: 4x the tiles, 3.6x the pixels
    settings = PredictSettings(imgsz=256)
    small, large = _mosaic(64 + 3 * 192), _mosaic(64 + 6 * 192)
    # percentiles from a sample, as for frames above 16 Mpx (smaller ones copy themselves once for them)
    monkeypatch.setattr(frame_input, "PERCENTILE_SAMPLE_PIXELS", 128 * 128)
    _run(small[:200, :200], default_model, settings)  # warm up
    # interleaved, best of two: the machine may be shared
    runs = {"small": [], "large": []}
    for _ in range(2):
        runs["small"].append(_run(small, default_model, settings))
        runs["large"].append(_run(large, default_model, settings))
    small_per_tile, large_per_tile = (min(run[0] for run in runs[size]) for size in ("small", "large"))
    _, small_tiles, small_cells, small_extra = runs["small"][0]
    _, large_tiles, large_cells, large_extra = runs["large"][0]
    assert large_tiles == 4 * small_tiles and large_cells > 3.3 * small_cells
    assert large_per_tile < 1.5 * small_per_tile, (small_per_tile, large_per_tile)
    # a whole-frame conversion alone held an 8-bit BGR copy (3 bytes a pixel) and float copies
    assert large_extra < 1.5 * small_extra, (small_extra, large_extra)
    assert large_extra < large.nbytes, (large_extra, large.nbytes)


def test_outlines_drawn_in_bands_equal_the_whole_image_at_once(monkeypatch):
    from napari_livecell.core.inference import render

    labels = synthesize_image(seed=7200, n_cells=60, shape=(256, 320)).labels
    whole = render.outline_mask(labels)
    assert whole.sum() > 60 * 10  # every cell has a border
    monkeypatch.setattr(render, "OUTLINE_BLOCK_PIXELS", 7 * 320)  # bands of 7 rows
    np.testing.assert_array_equal(render.outline_mask(labels), whole)


def test_a_huge_frame_is_stretched_from_a_sample_as_the_whole_would_be(monkeypatch):
    from napari_livecell.core.inference import frame_input

    frame = _mosaic(1000)
    exact = frame_input.to_uint8(frame)
    # every 4th row and column; at the real 16 Mpx a 400 Mpx frame is sampled every 5th
    monkeypatch.setattr(frame_input, "PERCENTILE_SAMPLE_PIXELS", 300 * 300)
    difference = np.abs(frame_input.to_uint8(frame).astype(int) - exact)
    assert difference.max() <= 3 and difference.mean() < 1  # of 255 levels


def test_outlines_are_traced_in_chunks_with_progress_and_the_same_rings():
    """A huge frame's outlines come with progress every TRACE_CHUNK cells (a run can stop in between)."""
    from napari_livecell.core.segmentation import Segmentation, labels_to_polygons, trace_polygons_steps

    labels = np.zeros((60, 600), np.int32)
    for cell in range(250):  # 250 little squares
        row, col = divmod(cell, 50)
        labels[row * 12 + 1 : row * 12 + 9, col * 12 + 1 : col * 12 + 9] = cell + 1
    steps = trace_polygons_steps(labels, chunk=100)
    reports = []
    while True:
        try:
            reports.append(next(steps))
        except StopIteration as finished:
            rings = finished.value
            break
    assert reports == [(100, 250), (200, 250), (250, 250)]
    expected = labels_to_polygons(labels)
    assert len(rings) == len(expected) == 250
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(rings, expected))
    result = Segmentation.from_labels(labels)
    assert list(result.trace_steps())[-1] == (250, 250)
    assert len(result.polygons) == 250 and list(result.trace_steps()) == []  # traced once
