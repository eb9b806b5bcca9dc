"""The service's request limits, against a real uvicorn on 127.0.0.1: pages, bytes, time, connections."""

import io
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.servers import start_service, stop_service

pytest.importorskip("fastapi")
import httpx


@pytest.fixture(scope="module")
def limited_server():
    """Default body and page limits; 4 s to send a request, so that half-sent ones end soon."""
    from napari_livecell.service import ServiceSettings

    settings = ServiceSettings(device="cpu", queue=8, request_timeout_s=20.0, read_timeout_s=4.0)
    instance, thread, url = start_service(settings)
    yield url
    stop_service(instance, thread)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _many_page_tiff(pages: int) -> bytes:
    """Pages written one by one (no shared series): tifffile's series of such a file costs pages^2."""
    import tifffile

    buffer = io.BytesIO()
    page = np.zeros((8, 8), np.uint8)
    with tifffile.TiffWriter(buffer) as tiff:
        for _ in range(pages):
            tiff.write(page)
    return buffer.getvalue()


def test_pages_are_counted_up_to_the_limit_only():
    from napari_livecell.service import count_tiff_pages

    payload = _many_page_tiff(40)
    assert count_tiff_pages(payload, 100) == 40
    assert count_tiff_pages(payload, 16) == 17  # stops one past the limit
    assert count_tiff_pages(_many_page_tiff(1), 16) == 1
    assert count_tiff_pages(payload[:20], 16) <= 1  # cut inside the first IFD: tifffile says what is wrong


def test_a_20000_page_tiff_gets_a_quick_422_while_health_answers(limited_server):
    payload = _many_page_tiff(20_000)  # 8 x 8 pages, ~6 MB
    assert len(payload) < 8 * 2**20
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.perf_counter()
        pending = pool.submit(
            httpx.post, f"{limited_server}/segment", files={"image": ("pages.tif", payload)}, timeout=60
        )
        health = [httpx.get(f"{limited_server}/health", timeout=5).status_code for _ in range(5)]
        response = pending.result()
    elapsed = time.perf_counter() - started
    assert health == [200] * 5
    assert response.status_code == 422
    assert "more than 16 TIFF pages" in response.json()["detail"]
    assert elapsed < 5, f"{elapsed:.1f} s"


PART = (
    b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.tif"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


def _send_until_answered(url: str, head: bytes, chunk: bytes, most: int) -> tuple[int, bytes]:
    """Send ``head``, then ``chunk`` after ``chunk`` until the server answers (or ``most`` bytes went)."""
    sent = 0
    with socket.create_connection(_address(url), timeout=30) as client:
        client.sendall(head)
        try:
            while sent < most:
                if select.select([client], [], [], 0)[0]:
                    break  # the server answered (or closed)
                client.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                part = client.recv(65536)
                if not part:
                    break
                answer += part
        except ConnectionResetError:
            pass
    return sent, answer


def test_a_declared_2_gib_upload_gets_413_before_its_body_is_read(limited_server):
    head = (
        b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 2147483648\r\n\r\n--b\r\n"
    )
    started = time.perf_counter()
    sent, answer = _send_until_answered(limited_server, head, b"\0" * 2**20, 2**31)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent <= 16 * 2**20, f"{sent / 2**20:.0f} MiB went before the answer"
    assert time.perf_counter() - started < 5


def test_a_streamed_2_gib_upload_is_cut_at_the_limit(limited_server):
    """Chunked, with no Content-Length: counted as it arrives; 413 once past 50 MiB, not after 2 GiB."""
    from napari_livecell.service import MAX_UPLOAD_BYTES

    head = (
        b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(PART):x}\r\n".encode() + PART + b"\r\n"
    )
    size = 2**20
    chunk = f"{size:x}\r\n".encode() + b"\0" * size + b"\r\n"
    started = time.perf_counter()
    sent, answer = _send_until_answered(limited_server, head, chunk, 2**31)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # what the server took in is at most the limit plus what sat in the sockets' buffers
    assert sent <= MAX_UPLOAD_BYTES + 48 * 2**20, f"{sent / 2**20:.0f} MiB sent"
    assert time.perf_counter() - started < 30


def test_health_answers_while_80_half_sent_requests_are_open(limited_server):
    clients = []
    try:
        for index in range(80):
            client = socket.create_connection(_address(limited_server), timeout=10)
            if index % 2:  # headers whole, body half-sent
                client.sendall(
                    b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: 100000\r\n\r\n--b\r\n"
                )
            else:  # headers half-sent
                client.sendall(b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Ty")
            clients.append(client)
            time.sleep(0.02)  # one at a time, as slow clients come: each is taken in before the next
        time.sleep(0.2)
        for _ in range(5):
            response = httpx.get(f"{limited_server}/health", timeout=5)
            assert response.status_code == 200, response.text
        # the read timeout (4 s) closes every half-sent request
        started = time.perf_counter()
        for client in clients:
            client.settimeout(10)
            try:
                while client.recv(65536):
                    pass  # a 4xx the server sent before closing
            except ConnectionResetError:
                pass
        assert time.perf_counter() - started < 8
    finally:
        for client in clients:
            client.close()
    assert httpx.get(f"{limited_server}/health", timeout=5).status_code == 200
