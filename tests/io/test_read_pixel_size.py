"""A COCO json opened with its TIFF image keeps the image's pixel size for Segment cells."""

import numpy as np
import pytest
import tifffile

from napari_livecell.io.read import read_coco_layers
from napari_livecell.io.write import write_labels_coco
from napari_livecell.layers import RESULT_KEY


@pytest.mark.parametrize(
    ("tiff_kwargs", "expected"), [({"imagej": True, "metadata": {"unit": "um"}}, 0.65), ({}, None)]
)
def test_the_image_beside_a_coco_json_brings_its_pixel_size(tmp_path, small_frame, tiff_kwargs, expected):
    if expected is not None:
        tiff_kwargs = {**tiff_kwargs, "resolution": (1 / expected, 1 / expected)}
    tifffile.imwrite(tmp_path / "frame.tif", small_frame.image, **tiff_kwargs)
    write_labels_coco(str(tmp_path / "frame.json"), small_frame.labels, {"name": "frame.tif"})

    image, kwargs, _ = next(
        layer for layer in read_coco_layers(str(tmp_path / "frame.json")) if layer[2] == "image"
    )

    assert np.array_equal(image, small_frame.image)
    assert kwargs["metadata"][RESULT_KEY].get("pixel_size_um") == (
        None if expected is None else pytest.approx(expected)
    )
    assert "scale" not in kwargs, "the labels beside it stay aligned: pixels, not micrometres"
