"""Blank frames hold no cells at any size; label images are recognised as such."""

import numpy as np
import pytest

from napari_livecell.core.images import looks_like_labels
from napari_livecell.core.inference.predict import segment_frame


@pytest.mark.parametrize(
    "shape", [(32, 32), (33, 100), (64, 64), (100, 300), (520, 704), (2000, 2000), (4000, 4000)]
)
@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_frame_gives_no_cells(shape, value, default_model):
    assert segment_frame(np.full(shape, value, np.uint8), default_model).n_cells == 0


@pytest.mark.parametrize("shape", [(32, 32), (16, 100), (40, 40), (64, 64), (520, 704)])
@pytest.mark.parametrize("value", [0, 255])
def test_nearly_blank_frame_gives_no_cells(shape, value, default_model):
    """One gray level of noise: the network runs, and the padding around a small frame is no edge.

    Before the frame was padded with its own background, a dark 32 x 32 frame
    gave a 947-px cell (score 0.71) and a dark 16 x 100 one a cell too.
    """
    rng = np.random.default_rng(0)
    frame = np.clip(value + rng.integers(-1, 2, size=shape), 0, 255).astype(np.uint8)
    assert segment_frame(frame, default_model).n_cells == 0


def test_small_frame_keeps_its_cells(small_frame, default_model):
    """Padding a small crop with its background still finds the cells in it (at their own size)."""
    crop = small_frame.image[:96, :120]
    truth = len(np.unique(small_frame.labels[8:88, 8:112])) - 1
    found = segment_frame(crop, default_model)
    assert found.labels.shape == crop.shape
    assert found.n_cells >= 0.6 * truth


def test_label_images_are_recognised(small_frame):
    labels = small_frame.labels
    assert looks_like_labels(labels.astype(np.uint16))
    assert looks_like_labels(labels.astype(np.int32))
    assert looks_like_labels((labels > 0).astype(np.uint8))
    assert looks_like_labels(np.stack([labels, labels]).astype(np.uint16))
    assert not looks_like_labels(small_frame.image)
    assert not looks_like_labels(small_frame.image.astype(np.uint16) * 16)
    assert not looks_like_labels(small_frame.image.astype(np.float32))
    assert not looks_like_labels(np.zeros((64, 64), np.uint16))  # blank, not labels
