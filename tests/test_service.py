"""The HTTP service, served by a real uvicorn on 127.0.0.1 (ephemeral port)."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.servers import start_service, stop_service

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
    from napari_livecell.core.inference.predict import segment_frame

    response = post(server, png_bytes(small_frame.image))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    outlined = iio.imread(response.content)
    assert outlined.shape == (*small_frame.image.shape, 3)
    expected = segment_frame(small_frame.image, default_model)
    assert int(response.headers["X-Cell-Count"]) == expected.n_cells
    yellow = (outlined[..., 0] == 255) & (outlined[..., 1] == 220) & (outlined[..., 2] == 0)
    assert yellow.sum() > 100 and (expected.labels[yellow] > 0).all()


def test_json_matches_the_core(server, small_frame, default_model):
    from napari_livecell.core.inference.predict import segment_frame

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


# --- hardening: bounded time and memory, timeouts (issue 15) ---------------------------------


@pytest.fixture(scope="module")
def strict_server():
    """Low limits so that each test stays short: 3 s per request, 1 s to send a request."""
    from napari_livecell.service import ServiceSettings

    settings = ServiceSettings(device="cpu", queue=8, request_timeout_s=3.0, read_timeout_s=1.0)
    instance, thread, url = start_service(settings)
    yield url
    stop_service(instance, thread)


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _large_frame_png(size: int = 6000) -> bytes:
    rng = np.random.default_rng(0)
    tile = (rng.random((500, 500)) * 60 + 100).astype(np.uint8)
    return png_bytes(np.tile(tile, (size // 500, size // 500)))


def test_a_6000px_json_request_is_cancelled_with_504_while_health_answers(strict_server, small_frame):
    """6000 x 6000 with ?format=json: over the 3 s limit, so 504 within seconds; the worker stops."""
    import time

    payload = _large_frame_png()
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.perf_counter()
        pending = pool.submit(post, strict_server, payload, "big.png", format="json")
        health_seconds = []
        while not pending.done():
            asked = time.perf_counter()
            assert httpx.get(f"{strict_server}/health", timeout=5).status_code == 200
            health_seconds.append(time.perf_counter() - asked)
            time.sleep(0.2)
        response = pending.result()
        seconds = time.perf_counter() - started
    assert response.status_code == 504, response.text
    assert "longer than its limit of 3 s" in response.json()["detail"]
    assert seconds < 15, seconds
    assert health_seconds and max(health_seconds) < 1.0
    # the cancelled work let go of the only inference slot: a small request goes through at once
    started = time.perf_counter()
    assert post(strict_server, png_bytes(small_frame.image)).status_code == 200
    assert time.perf_counter() - started < 8


def _bomb(dtype, side: int = 12288) -> bytes:
    """A ~1 MB zlib TIFF whose header declares side^2 pixels of ``dtype`` (1.2 GB as float64)."""
    import zlib

    import tifffile

    tile = zlib.compress(np.zeros((1024, 1024), dtype).tobytes())
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        data=(tile for _ in range((side // 1024) ** 2)),
        shape=(side, side),
        dtype=dtype,
        tile=(1024, 1024),
        compression="zlib",
    )
    return buffer.getvalue()


def test_six_concurrent_tiff_bombs_get_413_and_memory_stays_bounded(strict_server):
    import threading

    bombs = [_bomb(np.float64), _bomb(np.complex128), _bomb(np.complex64)] * 2
    assert max(len(b) for b in bombs) < 3_000_000
    before = _rss_mb()
    peak = [before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], _rss_mb())
            sampling.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(pool.map(lambda b: post(strict_server, b, name="bomb.tif"), bombs))
    finally:
        sampling.set()
        sampler.join()
    assert [r.status_code for r in responses] == [413] * 6
    assert all("MB decoded; the limit is" in r.json()["detail"] for r in responses)
    # the uploads themselves (6 x ~1.2 MB, held by client and server) and request handling only
    assert peak[0] - before < 150, f"RSS grew by {peak[0] - before:.0f} MB"


def test_complex_pixels_get_415_not_500(strict_server):
    response = post(strict_server, _tiff(np.ones((64, 64), np.complex64)), name="complex.tif")
    assert response.status_code == 415
    assert "complex64 are not supported" in response.json()["detail"]


def test_float64_is_counted_in_bytes():
    """A float64 frame's limit is its bytes: 8 per pixel, not 1."""
    from napari_livecell.service import RequestError, ServiceSettings, decode_image

    settings = ServiceSettings(max_image_bytes=1_000_000)
    decode_image(_tiff(np.zeros((400, 400), np.uint8)), "ok.tif", settings)  # 160 kB
    with pytest.raises(RequestError, match="400 x 400 float64 would take 1 MB decoded") as refused:
        decode_image(_tiff(np.zeros((400, 400), np.float64)), "f.tif", settings)  # 1.28 MB
    assert refused.value.status == 413


def test_a_client_that_stalls_in_its_headers_is_disconnected(strict_server):
    import socket
    import time

    host, port = strict_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Ty")  # and nothing more
        started = time.perf_counter()
        assert client.recv(1024) == b"", "the server closed the connection"
        assert time.perf_counter() - started < 5


def test_shutdown_finishes_within_seconds_during_a_long_request(small_frame):
    """should_exit (what SIGTERM sets) while a 6000^2 json request runs: the server is gone in seconds."""
    import time

    from napari_livecell.service import ServiceSettings

    settings = ServiceSettings(device="cpu", request_timeout_s=600, shutdown_timeout_s=2)
    instance, thread, url = start_service(settings)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(post, url, _large_frame_png(), "big.png", format="json")
        deadline = time.time() + 30
        while httpx.get(f"{url}/health").json()["running"] == 0 and time.time() < deadline:
            time.sleep(0.1)
        started = time.perf_counter()
        instance.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert time.perf_counter() - started < 8
        response = None
        try:
            response = pending.result(timeout=30)
        except httpx.HTTPError:
            pass  # the connection was closed: as good as an answer
        assert response is None or response.status_code >= 500


def test_modality_is_decided_and_said_in_the_json(server):
    """``?modality=`` reaches the model; the reply's settings say what was decided, and remote.py reads it."""
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment
    from napari_livecell.core.training.synthetic import synthesize_image

    nuclei = synthesize_image(21, n_cells=40, shape=(128, 160), look="fluorescence")
    auto = post(server, png_bytes(nuclei.image), format="json").json()
    assert auto["info"]["settings"] == {
        **auto["info"]["settings"],
        "modality": "fluorescence",
        "modality_decided": True,
        "model_modality": "phase",
        "inverted": True,
    }
    forced = post(server, png_bytes(nuclei.image), format="json", modality="phase").json()
    assert forced["info"]["settings"]["inverted"] is False
    assert len(auto["annotations"]) > 2 * len(forced["annotations"])
    assert post(server, png_bytes(nuclei.image), modality="dic").status_code == 422
    events = iter_segment(nuclei.image, Backend(weights=server), PredictSettings())
    (frame,) = [e for e in events if isinstance(e, FrameResult)]
    assert frame.polarity.describe() == "fluorescence (auto): inverted for a phase model"
    assert frame.segmentation.n_cells == len(auto["annotations"])
