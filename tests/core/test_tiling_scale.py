"""Large frames: results unchanged for normal frames, tiling cost linear, memory bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_livecell.core.predict import segment_frame
from napari_livecell.core.synthetic import synthesize_image

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
