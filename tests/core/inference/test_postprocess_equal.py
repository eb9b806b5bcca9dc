"""The compiled post-processing gives exactly the cells, scores and outlines of the Python one.

``postprocess_reference.npz`` holds what ``segment`` returned for these frames
before post-processing moved to numba (commit cdef811, shipped model, PyTorch
on the CPU): labels, scores, classes, and a digest of every cell's outline
rings. Regenerate it only for a deliberate change of results:
``python tests/core/inference/test_postprocess_equal.py``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from napari_livecell.core.inference.predict import PredictSettings, segment, segment_frame
from napari_livecell.core.segmentation import Segmentation
from napari_livecell.core.training.synthetic import synthesize_image

REFERENCE = Path(__file__).with_name("postprocess_reference.npz")


@cache
def _image(seed: int, n_cells: int, shape: tuple[int, int] = (520, 704)) -> np.ndarray:
    return synthesize_image(seed=seed, n_cells=n_cells, shape=shape).image


CASES = {
    # name: (image seed(s), cells, frame shape, settings, tile)
    "cells_50": ((9050,), 50, (520, 704), PredictSettings(), None),
    "cells_500": ((9500,), 500, (520, 704), PredictSettings(), None),
    "cells_2000": ((9200,), 2000, (1040, 1408), PredictSettings(imgsz=1408), None),
    # larger than the network input and not tiled: Ultralytics scales it down, boxes scale back
    "downscaled": ((9500,), 500, (520, 704), PredictSettings(imgsz=352), False),
    # 2 x 3 overlapping 704-px tiles merged across the seams
    "tiled_2000": ((9200,), 2000, (1040, 1408), PredictSettings(), None),
    "stack": ((9300, 9301), 60, (256, 320), PredictSettings(), None),
}


def _outline_digest(result: Segmentation) -> str:
    """One digest of every ring's vertices, cell by cell (ring order and start vertex included)."""
    digest = hashlib.sha256()
    for rings in result.polygons:
        digest.update(len(rings).to_bytes(4, "little"))
        for ring in rings:
            digest.update(np.ascontiguousarray(ring, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _run(name: str, model) -> list[Segmentation]:
    seeds, n_cells, shape, settings, tile = CASES[name]
    if len(seeds) > 1:
        stack = np.stack([_image(seed, n_cells, shape) for seed in seeds])
        return segment(stack, model, settings, tile=tile)
    return [segment_frame(_image(seeds[0], n_cells, shape), model, settings, tile=tile)]


@pytest.mark.parametrize("name", list(CASES))
def test_postprocessing_gives_the_cells_and_outlines_of_before(name, default_model):
    expected = np.load(REFERENCE)
    for index, result in enumerate(_run(name, default_model)):
        key = f"{name}_{index}"
        differing = int(np.count_nonzero(result.labels != expected[f"{key}_labels"]))
        assert differing == 0, f"{key}: {differing} pixels differ from the reference labels"
        # the scores are the network's, passed through: PyTorch's forward pass differs by a few
        # float32 units in the last place between CPUs (an AMD EPYC against the Xeon that made the
        # reference: <= 6e-7 relative, same cells and outlines), so only they get a tolerance
        np.testing.assert_allclose(result.scores, expected[f"{key}_scores"], rtol=1e-5, atol=0)
        np.testing.assert_array_equal(result.classes, expected[f"{key}_classes"])
        assert _outline_digest(result) == str(expected[f"{key}_outlines"]), f"{key}: outlines differ"
        # areas measured while the ids were numbered: the label image's own pixel counts
        counts = np.bincount(result.labels.ravel(), minlength=result.n_cells + 1)[1:]
        np.testing.assert_array_equal(result.areas, counts)


def _regenerate() -> None:
    from napari_livecell.core.models.model import load_model

    model = load_model(device="cpu")
    arrays = {}
    for name in CASES:
        for index, result in enumerate(_run(name, model)):
            key = f"{name}_{index}"
            arrays[f"{key}_labels"] = result.labels
            arrays[f"{key}_scores"] = result.scores
            arrays[f"{key}_classes"] = result.classes
            arrays[f"{key}_outlines"] = np.array(_outline_digest(result))
            print(key, result.n_cells, "cells")
    np.savez_compressed(REFERENCE, **arrays)
    print(REFERENCE, REFERENCE.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    _regenerate()
