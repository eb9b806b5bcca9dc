"""The service's request limits: a TIFF's pages counted cheaply, request bodies and requests capped.

An ASGI middleware limits request bodies while they stream in and caps the
requests in progress; neither needs FastAPI.

Used by :mod:`napari_livecell.service`; see docs/service.md for the limits and how they were measured.
"""

from __future__ import annotations

import json
import struct


def count_tiff_pages(payload: bytes, limit: int) -> int:
    """Pages of a TIFF, counted by walking its IFD chain, stopping at ``limit + 1``.

    Each step reads one IFD's entry count and its next-IFD offset, so the
    cost is bounded by ``limit``, whatever the file holds (tifffile's series
    of a file of many separately written pages costs pages squared). A chain
    that loops or points outside the file ends the count: tifffile refuses
    such a file when it is read.
    """
    order = "<" if payload[:2] == b"II" else ">"
    big = payload[2:4] in (b"+\x00", b"\x00+")
    count_format, entry_size, offset_format = ("Q", 20, "Q") if big else ("H", 12, "I")
    try:
        (offset,) = struct.unpack_from(order + offset_format, payload, 8 if big else 4)
    except struct.error:
        return 0
    pages, seen = 0, set()
    while offset and offset not in seen and pages <= limit:
        seen.add(offset)
        try:
            (entries,) = struct.unpack_from(order + count_format, payload, offset)
            next_at = offset + struct.calcsize(count_format) + entries * entry_size
            (offset,) = struct.unpack_from(order + offset_format, payload, next_at)
        except struct.error:
            return pages + 1  # a truncated last IFD: tifffile says what is wrong with it
        pages += 1
    return pages


async def _refuse(send, status: int, detail: str) -> None:
    """A one-line json error that closes the connection (the rest of the body is never read)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: request bodies limited while they arrive, and a cap on requests in progress.

    A declared ``Content-Length`` over ``max_body_bytes`` gets its 413 before
    the body is read; a body sent without one (chunked) is counted as it
    arrives and gets its 413 as soon as it passes the limit, so the
    application never receives (or spools) more than the limit. Requests in
    progress beyond ``max_requests`` get a 503 at once; ``/health`` is not
    counted nor limited, so it answers while slow clients hold their
    connections (until the read timeout closes them).
    """

    def __init__(self, app, max_body_bytes: int, max_requests: int, exempt: tuple[str, ...] = ("/health",)):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_requests = max_requests
        self.exempt = exempt
        self.active = 0

    async def __call__(self, scope, receive, send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        too_large = f"request body larger than {limit:,} bytes (ServiceSettings.max_upload_bytes)"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, too_large)
            return
        if self.active >= self.max_requests:
            await _refuse(send, 503, "busy: too many requests in progress; retry shortly")
            return
        received, refused, started = 0, False, False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _refuse(send, 413, too_large)
                    # the application sees a client that left: it stops reading and answers nobody
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.active += 1
        try:
            await self.app(scope, limited_receive, guarded_send)
        finally:
            self.active -= 1
