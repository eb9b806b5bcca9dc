"""HTTP service: an image in, the image with every cell outlined (or COCO json, or labels) out.

A thin FastAPI adapter over the core: the model is loaded once at start-up,
inference runs in worker threads with bounded concurrency, and requests
beyond capacity wait in a short queue or get 503, never crash the worker.
Run it with ``napari-livecell serve`` (extra ``server``: fastapi, uvicorn,
python-multipart).
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

# at module level: FastAPI resolves the endpoint's (string) annotations here
from fastapi import File, Query, UploadFile

from napari_livecell.core.inference.predict import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU
from napari_livecell.service_limits import RequestLimits, count_tiff_pages

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_PIXELS = 40_000_000  # 40 megapixels per request
# decoded bytes of one upload (shape x itemsize): a 40 MP float32 or RGBA frame
MAX_IMAGE_BYTES = 160_000_000
REQUEST_TIMEOUT_S = 120.0
# the service segments one 2-D frame: a TIFF of more pages is refused from its first IFDs
MAX_TIFF_PAGES = 16
# multipart framing around the file: boundaries, part headers and the query's form fields
BODY_OVERHEAD_BYTES = 64 * 2**10
FORMATS = ("png", "json", "labels")


@dataclass
class ServiceSettings:
    """How the service runs (all settable from ``napari-livecell serve``).

    Attributes
    ----------
    runtime : str
        What runs the forward pass: ``auto`` (the fastest installed on a CPU),
        ``torch``, ``onnxruntime`` or ``openvino`` (:mod:`napari_livecell.core.models.runtime`).
    max_upload_bytes : int
        Largest upload accepted (413 beyond). The body is counted while it
        arrives: a larger declared ``Content-Length`` is refused before any
        of it is read, and a streamed body is cut off as soon as it passes
        the limit, so no more than this is ever spooled.
    max_tiff_pages : int
        Most pages a TIFF upload may hold, counted by walking its IFD chain
        (422 beyond; the work is bounded by this number, not the file).
    max_pixels : int
        Largest frame, in pixels (413 beyond).
    max_image_bytes : int
        Largest decoded image, in bytes (shape x bytes per value), read from
        the file's header before anything is decoded (413 beyond).
    request_timeout_s : float
        Time limit of one request, queueing included. The work stops at the
        next tile once it is over and the client gets a 504.
    read_timeout_s : float
        Time a client has to send a whole request (headers and body); a
        connection that stalls longer is closed.
    keep_alive_s : int
        How long an idle keep-alive connection stays open.
    max_requests : int
        Requests in progress at once (body still arriving, waiting or
        running), ``/health`` not counted; more get 503.
    max_connections : int
        Open connections at once, half-sent ones included; beyond it
        uvicorn answers 503 to everything, ``/health`` too.
    shutdown_timeout_s : int
        On SIGTERM, how long running requests may finish before they are cancelled.
    """

    model: str | None = None
    device: str | None = "cpu"
    runtime: str = "auto"
    concurrency: int = 1  # inferences at once: one model, 2 cores
    queue: int = 8  # requests that may wait for a slot; more get 503
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_tiff_pages: int = MAX_TIFF_PAGES
    max_pixels: int = MAX_PIXELS
    max_image_bytes: int = MAX_IMAGE_BYTES
    request_timeout_s: float = REQUEST_TIMEOUT_S
    read_timeout_s: float = 60.0
    keep_alive_s: int = 5
    shutdown_timeout_s: int = 5
    max_requests: int = 72
    max_connections: int = 512


class RequestError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageHeader:
    """What an upload's header says, read without decoding its pixels."""

    kind: str  # "tiff", "png" or "jpeg"
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Bytes the decoded image takes."""
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def _describe(header: ImageHeader) -> str:
    return f"{' x '.join(str(n) for n in header.shape)} {header.dtype}"


def read_header(payload: bytes, filename: str, max_pages: int = MAX_TIFF_PAGES) -> ImageHeader:
    """Shape and dtype of an uploaded TIFF/PNG/JPEG from its header (no pixels decoded).

    A TIFF's pages are counted first (:func:`count_tiff_pages`): one of more
    than ``max_pages`` pages is refused before tifffile looks at its series.

    Raises
    ------
    RequestError
        415 for a file that is not an image, 422 for an unreadable header or
        a TIFF of more than ``max_pages`` pages.
    """
    name = filename or "the upload"
    if not payload:
        raise RequestError(422, "the upload is empty")
    if payload[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        kind = "tiff"
    elif payload[:8] == b"\x89PNG\r\n\x1a\n":
        kind = "png"
    elif payload[:3] == b"\xff\xd8\xff":
        kind = "jpeg"
    else:
        raise RequestError(415, f"{name} is not a TIFF, PNG or JPEG image")
    if kind == "tiff" and count_tiff_pages(payload, max_pages) > max_pages:
        raise RequestError(
            422,
            f"{name} holds more than {max_pages} TIFF pages: send one 2-D frame "
            "(ServiceSettings.max_tiff_pages)",
        )
    try:
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(io.BytesIO(payload)) as tiff:
                series = tiff.series[0]
                return ImageHeader(kind, tuple(int(n) for n in series.shape), np.dtype(series.dtype))
        import imageio.v3 as iio

        properties = iio.improps(payload)
        return ImageHeader(kind, tuple(int(n) for n in properties.shape), np.dtype(properties.dtype))
    except Exception as error:  # decoders raise many types for corrupt data
        raise RequestError(422, f"cannot decode {name}: {type(error).__name__}") from None


def check_header(header: ImageHeader, settings: ServiceSettings) -> None:
    """Refuse what the header already shows to be too large or unusable, before decoding.

    Raises
    ------
    RequestError
        413 for more decoded bytes than ``max_image_bytes`` or more pixels
        than ``max_pixels``; 415 for complex or other non-real pixel types;
        422 for anything but one 2-D gray or RGB(A) frame.
    """
    if header.nbytes > settings.max_image_bytes:
        raise RequestError(
            413,
            f"image of {_describe(header)} would take {header.nbytes / 1e6:,.0f} MB decoded; the limit is "
            f"{settings.max_image_bytes / 1e6:,.0f} MB (ServiceSettings.max_image_bytes)",
        )
    if header.dtype.kind not in "buif":
        raise RequestError(
            415, f"images of type {header.dtype} are not supported: send integer or float pixels"
        )
    shape = tuple(n for n in header.shape if n != 1) or header.shape[-2:]
    rgb = len(shape) == 3 and shape[-1] in (3, 4)
    if len(shape) != 2 and not rgb:
        raise RequestError(422, f"expected one 2-D gray or RGB image, got an array of shape {header.shape}")
    if shape[0] * shape[1] > settings.max_pixels:
        raise RequestError(
            413,
            f"image of {shape[1]} x {shape[0]} px is too large: the limit is {settings.max_pixels:,} px "
            "(ServiceSettings.max_pixels)",
        )
    if min(shape[:2]) < 8:
        raise RequestError(422, f"image of {shape[1]} x {shape[0]} px is too small")


def decode_image(payload: bytes, filename: str, settings: ServiceSettings | int) -> np.ndarray:
    """Decode an uploaded TIFF/PNG/JPEG into one 2-D gray or RGB(A) frame.

    The header is checked first (:func:`check_header`): nothing is decoded
    that would exceed the limits.

    Parameters
    ----------
    payload : bytes
        The uploaded file.
    filename : str
        Its name, for messages.
    settings : ServiceSettings or int
        The limits (an int is ``max_pixels`` with the other limits at their defaults).

    Raises
    ------
    RequestError
        415 for a file that is not an image or has complex pixels, 422 for a
        corrupt one or one that is not a single 2-D frame, 413 beyond the limits.
    """
    if not isinstance(settings, ServiceSettings):
        settings = ServiceSettings(max_pixels=int(settings))
    header = read_header(payload, filename, settings.max_tiff_pages)
    check_header(header, settings)
    try:
        if header.kind == "tiff":
            import tifffile

            with tifffile.TiffFile(io.BytesIO(payload)) as tiff:
                image = tiff.series[0].asarray()
        else:
            import imageio.v3 as iio

            image = iio.imread(payload)
    except Exception as error:  # decoders raise many types for corrupt data
        raise RequestError(422, f"cannot decode {filename or 'the upload'}: {type(error).__name__}") from None
    image = np.squeeze(np.asarray(image))
    if image.nbytes > settings.max_image_bytes or image.ndim < 2:
        # a header that lied about its size
        raise RequestError(422, f"{filename or 'the upload'} decodes to {image.shape}, unlike its header")
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
    if image.ndim != 2 and not rgb:
        raise RequestError(422, f"expected one 2-D gray or RGB image, got an array of shape {image.shape}")
    if image.shape[0] * image.shape[1] > settings.max_pixels:
        size = f"{image.shape[1]} x {image.shape[0]}"
        raise RequestError(413, f"image of {size} px exceeds {settings.max_pixels} px")
    if min(image.shape[:2]) < 8:
        raise RequestError(422, f"image of {image.shape[1]} x {image.shape[0]} px is too small")
    return image


def render_response(
    image: np.ndarray,
    segmentation: Any,
    response_format: str,
    filename: str,
    should_stop: Callable[[], bool] | None = None,
    polarity: Any = None,
    resampling: Any = None,
    runtime: str | None = None,
):
    """Encode a result as PNG (outlined), COCO-style json, or a 16-bit label PNG.

    The json's ``info.settings`` says what the frame was taken to be
    (``modality``, ``modality_decided``, ``model_modality``, ``inverted``)
    and what was done about its pixel size (``pixel_size_um``,
    ``pixel_size_source``, ``model_pixel_size_um``, ``resampled``,
    ``resample_factor``) and what ran the network (``runtime``); the PNG
    answers say the pixel size in ``X-Pixel-Size``.
    Cells are always on the upload's own grid.
    """
    from fastapi.responses import JSONResponse, Response

    if response_format == "json":
        from napari_livecell.core.formats.coco import CocoImage, build_coco

        coco = build_coco(
            [CocoImage(1, filename or "upload", segmentation)], with_scores=True, should_stop=should_stop
        )
        said = coco["info"].get("settings", {})
        if polarity is not None:
            said = {**said, **polarity.as_dict()}
        if resampling is not None:
            said = {**said, **resampling.as_dict(), "pixel_size": resampling.describe()}
        if runtime is not None:
            said = {**said, "runtime": runtime}
        coco["info"]["settings"] = said
        return JSONResponse(coco)
    from napari_livecell.core.inference.render import draw_outlines, png_bytes

    headers = {"X-Pixel-Size": resampling.describe()} if resampling is not None else {}
    if response_format == "labels":
        labels = segmentation.labels
        if labels.max() > 65535:
            raise RequestError(422, "more than 65,535 cells do not fit a 16-bit label PNG")
        return Response(png_bytes(labels.astype(np.uint16)), media_type="image/png", headers=headers)
    outlined = draw_outlines(image, segmentation.labels)
    return Response(
        png_bytes(outlined),
        media_type="image/png",
        headers={"X-Cell-Count": str(segmentation.n_cells), **headers},
    )


def check_resampled_size(shape: tuple[int, int], zoom: float, settings: ServiceSettings) -> None:
    """Refuse a frame that resampling to the model's pixel size would take beyond the limits.

    Raises
    ------
    RequestError
        413 beyond ``max_pixels``, 422 for a frame too small to segment.
    """
    from napari_livecell.core.inference.pixel_size import resampled_shape

    height, width = resampled_shape(shape, zoom)
    if height * width > settings.max_pixels:
        raise RequestError(
            413,
            f"at the model's pixel size the image would be {width} x {height} px, over the limit of "
            f"{settings.max_pixels:,} px (ServiceSettings.max_pixels): check pixel_size",
        )
    if min(height, width) < 8:
        raise RequestError(
            422, f"at the model's pixel size the image would be {width} x {height} px: too small to segment"
        )


def _run_request(
    payload: bytes,
    filename: str,
    settings: ServiceSettings,
    model: Any,
    predict: Any,
    response_format: str,
    stop: threading.Event,
    pixel_size: float | None = None,
):
    """Decode, segment and encode one upload in a worker thread, stopping when ``stop`` is set.

    ``stop`` is checked between tiles of the frame and every 256 cells of the
    json, so a request over its time limit (or a server shutting down) frees
    its worker within one tile. The frame's pixel size is ``pixel_size``
    (the query), else what an uploaded TIFF's metadata says, else unknown.
    """
    from napari_livecell.core.errors import Cancelled
    from napari_livecell.core.inference.pixel_size import bytes_pixel_size
    from napari_livecell.core.inference.recipe import FrameRecipe

    frame = decode_image(payload, filename, settings)
    source = "query"
    if pixel_size is None:
        pixel_size, source = bytes_pixel_size(payload), "file metadata"
    recipe = FrameRecipe.plan(model, predict, pixel_size, source)
    if recipe.resampling.applied:
        check_resampled_size(frame.shape[:2], recipe.resampling.zoom, settings)
    steps = recipe.steps(frame, trace=response_format == "json")  # the PNGs draw from the labels
    while True:
        if stop.is_set():
            raise Cancelled("stopped between tiles")
        try:
            next(steps)
        except StopIteration as finished:
            done = finished.value
            break
    return render_response(
        frame,
        done.segmentation,
        response_format,
        filename,
        should_stop=stop.is_set,
        polarity=done.polarity,
        resampling=done.resampling,
        runtime=getattr(model, "runtime", None),
    )


def endpoints_page(schema: dict) -> str:
    """``/docs``: every endpoint with its parameters, as plain HTML (no scripts, works offline).

    Built from the app's OpenAPI schema (``/openapi.json`` has it whole).
    """
    from html import escape

    title = escape(str(schema.get("info", {}).get("title", "")))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} API</title></head><body>",
        f"<h1>{title} API</h1>",
        f"<p>{escape(str(schema.get('info', {}).get('description', '')))}</p>",
        "<p>The whole schema: <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            parts.append(f"<h2>{escape(method.upper())} {escape(path)}</h2>")
            if operation.get("summary"):
                parts.append(f"<p>{escape(str(operation['summary']))}</p>")
            rows = []
            for parameter in operation.get("parameters", []):
                default = parameter.get("schema", {}).get("default", "")
                rows.append(
                    (
                        parameter.get("name", ""),
                        parameter.get("in", ""),
                        default,
                        parameter.get("description", ""),
                    )
                )
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                reference = content.get("schema", {}).get("$ref", "")
                fields = _schema_at(schema, reference).get("properties", {}) if reference else {}
                for name, field in fields.items():
                    rows.append(
                        (name, f"body ({media})", field.get("default", ""), field.get("description", ""))
                    )
            if rows:
                parts.append(
                    "<table border='1'><tr><th>name</th><th>in</th><th>default</th><th>what</th></tr>"
                )
                parts += [
                    "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>"
                    for row in rows
                ]
                parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _schema_at(schema: dict, reference: str) -> dict:
    """The part of an OpenAPI schema a ``#/components/...`` reference names."""
    node: Any = schema
    for key in reference.removeprefix("#/").split("/"):
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def create_app(settings: ServiceSettings | None = None):
    """Build the FastAPI application (the model loads at start-up)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse

    from napari_livecell.core.errors import Cancelled
    from napari_livecell.core.inference.predict import PredictSettings, import_inference_modules
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.models.triton import TritonUnavailable

    settings = settings or ServiceSettings()
    state: dict[str, Any] = {"model": None, "running": set()}
    # headers are read off the event loop, in a pool of their own: inference threads cannot starve it
    header_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="livecell-header")

    @asynccontextmanager
    async def lifespan(_app):
        import_inference_modules()
        state["model"] = await asyncio.to_thread(
            load_model, settings.model, settings.device, settings.runtime
        )
        state["slots"] = asyncio.Semaphore(settings.concurrency)
        state["waiting"] = 0
        yield
        # shutting down: running inferences stop at their next tile, so the
        # process can exit (worker threads are joined at exit)
        for stop in list(state["running"]):
            stop.set()
        header_pool.shutdown(wait=False, cancel_futures=True)

    # no Swagger UI or ReDoc: both load their scripts from a CDN (a blank page offline);
    # /docs is a plain page built from the OpenAPI schema instead
    app = FastAPI(
        title="napari-livecell",
        description="Segment cells in microscopy images with a YOLO-seg model.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_upload_bytes + BODY_OVERHEAD_BYTES,
        max_requests=settings.max_requests,
    )

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        return HTMLResponse(endpoints_page(app.openapi()))

    @app.exception_handler(RequestError)
    async def request_error(_request, error: RequestError):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.get("/health")
    async def health():
        if state["model"] is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ok", "waiting": state["waiting"], "running": len(state["running"])}

    @app.get("/model")
    async def model_info():
        model = state["model"]
        return {
            "name": model.name,
            "task": "segment",
            "classes": {str(k): v for k, v in model.class_names.items()},
            # what a request uses unless it sends imgsz; the model's own (training) size beside it
            "imgsz": DEFAULT_IMGSZ,
            "trained_imgsz": model.imgsz,
            "device": model.device,
            "runtime": model.runtime,
            "pixel_size_um": model.pixel_size_um,
        }

    def too_slow() -> RequestError:
        return RequestError(
            504,
            f"the request took longer than its limit of {settings.request_timeout_s:g} s and was "
            "cancelled: send a smaller image, or raise ServiceSettings.request_timeout_s",
        )

    @app.post("/segment")
    async def segment_image(
        image: UploadFile = File(..., description="TIFF, PNG or JPEG; 8- or 16-bit; gray or RGB"),
        conf: float = Query(DEFAULT_CONF, ge=0.0, le=1.0, description="confidence threshold"),
        iou: float = Query(DEFAULT_IOU, ge=0.0, le=1.0, description="NMS IoU threshold"),
        imgsz: int = Query(DEFAULT_IMGSZ, ge=32, le=4096, description="network input size"),
        format: str = Query("png", pattern="^(png|json|labels)$", description="png, json or labels"),
        modality: str = Query(
            "auto",
            pattern="^(auto|phase|fluorescence)$",
            description="auto (decided from the pixels), phase or fluorescence",
        ),
        pixel_size: float | None = Query(
            None,
            gt=0.0,
            le=1e4,
            description="micrometres per pixel of the image (default: a TIFF's own metadata, else "
            "unknown); resampled to the model's pixel size when they differ by more than 10 %",
        ),
    ):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.request_timeout_s
        payload = await image.read(settings.max_upload_bytes + 1)
        if len(payload) > settings.max_upload_bytes:
            raise RequestError(413, f"upload larger than {settings.max_upload_bytes} bytes")
        filename = image.filename or ""
        # the header decides before any pixel is decoded (a small zlib TIFF can declare gigabytes)
        header = await loop.run_in_executor(
            header_pool, read_header, payload, filename, settings.max_tiff_pages
        )
        check_header(header, settings)
        if state["waiting"] >= settings.queue:
            raise RequestError(503, "busy: too many requests are waiting; retry shortly")
        state["waiting"] += 1
        try:
            await asyncio.wait_for(state["slots"].acquire(), max(deadline - loop.time(), 0.001))
        except TimeoutError:
            raise RequestError(503, "busy: no inference slot freed up in time; retry later") from None
        finally:
            state["waiting"] -= 1
        stop = threading.Event()
        state["running"].add(stop)
        predict = PredictSettings(conf=conf, iou=iou, imgsz=imgsz, modality=modality)
        arguments = (payload, filename, settings, state["model"], predict, format, stop, pixel_size)
        work = asyncio.ensure_future(asyncio.to_thread(_run_request, *arguments))

        def finished(_task) -> None:
            # the slot is free only when the thread is: a cancelled request keeps it until the next tile
            state["slots"].release()
            state["running"].discard(stop)

        work.add_done_callback(finished)
        try:
            return await asyncio.wait_for(asyncio.shield(work), max(deadline - loop.time(), 0.001))
        except TimeoutError:
            stop.set()
            raise too_slow() from None
        except Cancelled:
            raise too_slow() from None
        except TritonUnavailable as error:  # the model's server stopped answering: retry later
            raise RequestError(503, str(error)) from None
        except BaseException:
            stop.set()  # the client left or the server is stopping
            raise

    return app


def _protocol_with_read_timeout(seconds: float):
    """Uvicorn's h11 protocol, closing connections that do not send a whole request in time.

    uvicorn times out idle keep-alive connections but waits forever for the
    headers (and body) of a request that has begun: a client that sends half
    its headers and stalls would hold its connection open for good.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ReadTimeoutH11Protocol(H11Protocol):
        read_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self.read_timer is not None:
                self.read_timer.cancel()
            self.read_timer = self.loop.call_later(seconds, self._read_timed_out)

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this connection gets the same time

        def connection_lost(self, exc) -> None:
            if self.read_timer is not None:
                self.read_timer.cancel()
            super().connection_lost(exc)

        def _read_timed_out(self) -> None:
            cycle = self.cycle
            received = cycle is not None and not cycle.more_body and not cycle.response_complete
            if not received and not self.transport.is_closing():
                self.transport.close()  # the request never arrived whole

    return ReadTimeoutH11Protocol


def uvicorn_config(app, host: str = "127.0.0.1", port: int = 8000, settings: ServiceSettings | None = None):
    """The uvicorn configuration the service runs with: its timeouts and limits.

    Parameters
    ----------
    app : fastapi.FastAPI
        From :func:`create_app`.
    host : str
        ``127.0.0.1`` (default) answers this machine only; ``0.0.0.0`` the network.
    port : int
        TCP port (0: any free one).
    settings : ServiceSettings, optional
        Timeouts: ``read_timeout_s``, ``keep_alive_s``, ``shutdown_timeout_s``.

    Returns
    -------
    uvicorn.Config
    """
    import uvicorn

    settings = settings or ServiceSettings()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=os.environ.get("LOG_LEVEL", "info"),
        http=_protocol_with_read_timeout(settings.read_timeout_s),
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        h11_max_incomplete_event_size=16 * 1024,  # headers larger than 16 KiB are refused
        # connections beyond get 503 from uvicorn itself, /health included; requests in progress are
        # limited lower by RequestLimits, which lets /health through
        limit_concurrency=settings.max_connections,
    )


def serve(host: str = "127.0.0.1", port: int = 8000, settings: ServiceSettings | None = None) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM (blocks)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(create_app(settings), host, port, settings)).run()
