"""The service resamples by ``?pixel_size=`` (or an uploaded TIFF's metadata) and says so."""

import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
import httpx
import tifffile

from tests.core.inference.test_pixel_size import MODEL_UM, taken_at
from tests.test_service import png_bytes, post


def tiff_bytes(image: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, **kwargs)
    return buffer.getvalue()


def test_pixel_size_resamples_and_the_json_says_so(server, small_frame):
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment

    image, truth = taken_at(small_frame, 2 * MODEL_UM)  # cells half as large as the model's
    n_truth = len(np.unique(truth)) - 1
    assert httpx.get(f"{server}/model").json()["pixel_size_um"] == MODEL_UM

    queried = post(server, png_bytes(image), format="json", pixel_size=2 * MODEL_UM).json()
    said = queried["info"]["settings"]
    assert said["pixel_size"] == f"resampled {2 * MODEL_UM:g} -> {MODEL_UM:g} um/px"
    assert said["resampled"] is True and said["pixel_size_source"] == "query"
    assert (queried["images"][0]["height"], queried["images"][0]["width"]) == image.shape
    assert abs(len(queried["annotations"]) - n_truth) <= 0.1 * n_truth

    # an uploaded TIFF's own resolution tags are read when the query gives none
    tagged = tiff_bytes(image, resolution=(1e4 / (2 * MODEL_UM),) * 2, resolutionunit="CENTIMETER")
    from_file = post(server, tagged, name="cells.tif", format="json").json()["info"]["settings"]
    assert from_file["resampled"] is True and from_file["pixel_size_source"] == "file metadata"

    plain = post(server, png_bytes(image), format="json").json()["info"]["settings"]
    assert plain["pixel_size"] == "pixel size unknown: not resampled"
    outlined = post(server, png_bytes(image), pixel_size=2 * MODEL_UM)
    assert outlined.headers["X-Pixel-Size"] == said["pixel_size"]
    assert post(server, png_bytes(image), pixel_size=-1).status_code == 422
    tiny = post(server, png_bytes(image[:16, :16]), pixel_size=MODEL_UM / 4)
    assert tiny.status_code == 422 and "too small" in tiny.json()["detail"]

    # the client (Segment cells, the CLI) reads the decision back, with its own source
    events = iter_segment(image, Backend(weights=server), pixel_size=2 * MODEL_UM, pixel_size_source="typed")
    (frame,) = [e for e in events if isinstance(e, FrameResult)]
    assert frame.resampling.describe() == said["pixel_size"] and frame.resampling.source == "typed"
    assert frame.segmentation.labels.shape == image.shape
    assert frame.segmentation.n_cells == len(queried["annotations"])
