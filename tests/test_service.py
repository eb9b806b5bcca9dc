"""The HTTP service, served by a real uvicorn on 127.0.0.1 (ephemeral port)."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
import httpx
import imageio.v3 as iio


def png_bytes(image: np.ndarray) -> bytes:
    return iio.imwrite("<bytes>", image, extension=".png")


def post(url, content: bytes, name="cells.png", **params):
    return httpx.post(f"{url}/segment", files={"image": (name, content)}, params=params, timeout=120)


def test_health_and_model(server):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    info = httpx.get(f"{server}/model").json()
    assert info["task"] == "segment" and info["classes"] == {"0": "cell"}
    assert httpx.get(f"{server}/openapi.json").status_code == 200


def test_png_has_outlines_where_the_cells_are(server, small_frame, default_model):
    from napari_livecell.core.predict import segment_frame

    response = post(server, png_bytes(small_frame.image))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    outlined = iio.imread(response.content)
    assert outlined.shape == (*small_frame.image.shape, 3)
    expected = segment_frame(small_frame.image, default_model)
    assert int(response.headers["X-Cell-Count"]) == expected.n_cells
    yellow = (outlined[..., 0] == 255) & (outlined[..., 1] == 220) & (outlined[..., 2] == 0)
    assert yellow.sum() > 100 and (expected.labels[yellow] > 0).all()


def test_json_matches_the_core(server, small_frame, default_model):
    from napari_livecell.core.predict import segment_frame

    deep = (small_frame.image.astype(np.uint16) * 16).astype(np.uint16)  # 12-bit data
    buffer = io.BytesIO()
    import tifffile

    tifffile.imwrite(buffer, deep)
    response = post(server, buffer.getvalue(), name="deep.tif", format="json")
    assert response.status_code == 200
    coco = response.json()
    expected = segment_frame(deep, default_model)
    assert len(coco["annotations"]) == expected.n_cells
    assert sorted(a["area"] for a in coco["annotations"]) == sorted(expected.areas.tolist())
    assert coco["images"][0]["width"] == 320 and coco["images"][0]["height"] == 256


def test_labels_format_is_a_16_bit_png(server, small_frame):
    response = post(server, png_bytes(small_frame.image), format="labels")
    labels = iio.imread(response.content)
    assert labels.dtype == np.uint16 and labels.shape == small_frame.image.shape and labels.max() > 10


@pytest.mark.parametrize(
    ("make", "name", "status", "message"),
    [
        (lambda: b"just some notes\n", "notes.txt", 415, "not a TIFF, PNG or JPEG"),
        (lambda: png_bytes(np.zeros((64, 64), np.uint8))[:60], "cut.png", 422, "cannot decode"),
        (lambda: png_bytes(np.zeros((10_000, 10_000), np.uint8)), "huge.png", 413, "too large"),
        (lambda: _tiff(np.zeros((2, 2, 3, 16, 16), np.uint8)), "stack.tif", 422, "2-D"),
    ],
    ids=["text", "truncated-png", "100-megapixel", "5d-tiff"],
)
def test_bad_uploads_get_clear_4xx(server, make, name, status, message):
    response = post(server, make(), name=name)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_bad_parameters_get_422(server, small_frame):
    assert post(server, png_bytes(small_frame.image), conf=2).status_code == 422
    assert post(server, png_bytes(small_frame.image), format="gif").status_code == 422


def test_twenty_concurrent_requests_succeed_or_get_503_and_the_server_survives(server, small_frame):
    payload = png_bytes(small_frame.image)
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: post(server, payload).status_code, range(20)))
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 5
    assert httpx.get(f"{server}/health").status_code == 200


def _tiff(array: np.ndarray) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, photometric="minisblack")
    return buffer.getvalue()
