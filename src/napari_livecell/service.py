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
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

# at module level: FastAPI resolves the endpoint's (string) annotations here
from fastapi import File, Query, UploadFile

MAX_UPLOAD_BYTES = 50 * 2**20
MAX_PIXELS = 40_000_000  # 40 megapixels per request
FORMATS = ("png", "json", "labels")


@dataclass
class ServiceSettings:
    """How the service runs (all settable from ``napari-livecell serve``)."""

    model: str | None = None
    device: str | None = "cpu"
    concurrency: int = 1  # inferences at once: one model, 2 cores
    queue: int = 8  # requests that may wait for a slot; more get 503
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS


class RequestError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_image(payload: bytes, filename: str, max_pixels: int) -> np.ndarray:
    """Decode an uploaded TIFF/PNG/JPEG into one 2-D gray or RGB(A) frame.

    Raises
    ------
    RequestError
        415 for a file that is not an image, 422 for a corrupt one or one that
        is not a single 2-D frame, 413 for too many pixels.
    """
    if not payload:
        raise RequestError(422, "the upload is empty")
    is_tiff = payload[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    is_png = payload[:8] == b"\x89PNG\r\n\x1a\n"
    is_jpeg = payload[:3] == b"\xff\xd8\xff"
    if not (is_tiff or is_png or is_jpeg):
        raise RequestError(415, f"{filename or 'the upload'} is not a TIFF, PNG or JPEG image")
    try:
        if is_tiff:
            import tifffile

            with tifffile.TiffFile(io.BytesIO(payload)) as tiff:
                shape = tiff.series[0].shape
                if int(np.prod(shape)) > max_pixels * 4:
                    raise RequestError(413, f"image of shape {shape} is too large")
                image = tiff.asarray()
        else:
            import imageio.v3 as iio

            properties = iio.improps(payload)
            if int(np.prod(properties.shape[:2])) > max_pixels:
                raise RequestError(
                    413, f"image of {properties.shape[1]} x {properties.shape[0]} px is too large"
                )
            image = iio.imread(payload)
    except RequestError:
        raise
    except Exception as error:  # decoders raise many types for corrupt data
        raise RequestError(422, f"cannot decode {filename or 'the upload'}: {type(error).__name__}") from None
    image = np.squeeze(np.asarray(image))
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
    if image.ndim != 2 and not rgb:
        raise RequestError(422, f"expected one 2-D gray or RGB image, got an array of shape {image.shape}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise RequestError(413, f"image of {image.shape[1]} x {image.shape[0]} px exceeds {max_pixels} px")
    if min(image.shape[:2]) < 8:
        raise RequestError(422, f"image of {image.shape[1]} x {image.shape[0]} px is too small")
    return image


def render_response(image: np.ndarray, segmentation: Any, response_format: str, filename: str):
    """Encode a result as PNG (outlined), COCO-style json, or a 16-bit label PNG."""
    from fastapi.responses import JSONResponse, Response

    if response_format == "json":
        from napari_livecell.core.coco import CocoImage, build_coco

        coco = build_coco([CocoImage(1, filename or "upload", segmentation)], with_scores=True)
        return JSONResponse(coco)
    from napari_livecell.core.render import draw_outlines, png_bytes

    if response_format == "labels":
        labels = segmentation.labels
        if labels.max() > 65535:
            raise RequestError(422, "more than 65,535 cells do not fit a 16-bit label PNG")
        return Response(png_bytes(labels.astype(np.uint16)), media_type="image/png")
    outlined = draw_outlines(image, segmentation.labels)
    return Response(
        png_bytes(outlined),
        media_type="image/png",
        headers={"X-Cell-Count": str(segmentation.n_cells)},
    )


def create_app(settings: ServiceSettings | None = None):
    """Build the FastAPI application (the model loads at start-up)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import PredictSettings, import_inference_modules, segment_frame

    settings = settings or ServiceSettings()
    state: dict[str, Any] = {"model": None}

    @asynccontextmanager
    async def lifespan(_app):
        import_inference_modules()
        state["model"] = await asyncio.to_thread(load_model, settings.model, settings.device)
        state["slots"] = asyncio.Semaphore(settings.concurrency)
        state["waiting"] = 0
        yield

    app = FastAPI(
        title="napari-livecell",
        description="Segment cells in phase-contrast images with a YOLO-seg model.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestError)
    async def request_error(_request, error: RequestError):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.get("/health")
    async def health():
        if state["model"] is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ok", "waiting": state["waiting"]}

    @app.get("/model")
    async def model_info():
        model = state["model"]
        return {
            "name": model.name,
            "task": "segment",
            "classes": {str(k): v for k, v in model.class_names.items()},
            "imgsz": model.imgsz,
            "device": model.device,
        }

    @app.post("/segment")
    async def segment_image(
        image: UploadFile = File(..., description="TIFF, PNG or JPEG; 8- or 16-bit; gray or RGB"),
        conf: float = Query(0.4, ge=0.0, le=1.0, description="confidence threshold"),
        iou: float = Query(0.6, ge=0.0, le=1.0, description="NMS IoU threshold"),
        imgsz: int = Query(704, ge=32, le=4096, description="network input size"),
        format: str = Query("png", pattern="^(png|json|labels)$", description="png, json or labels"),
    ):
        payload = await image.read(settings.max_upload_bytes + 1)
        if len(payload) > settings.max_upload_bytes:
            raise RequestError(413, f"upload larger than {settings.max_upload_bytes} bytes")
        frame = await asyncio.to_thread(decode_image, payload, image.filename or "", settings.max_pixels)
        if state["waiting"] >= settings.queue:
            raise RequestError(503, "busy: too many requests are waiting; retry shortly")
        state["waiting"] += 1
        try:
            await state["slots"].acquire()
        finally:
            state["waiting"] -= 1
        try:
            predict = PredictSettings(conf=conf, iou=iou, imgsz=imgsz)
            result = await asyncio.to_thread(segment_frame, frame, state["model"], predict)
        finally:
            state["slots"].release()
        return await asyncio.to_thread(render_response, frame, result, format, image.filename or "")

    return app


def serve(host: str = "127.0.0.1", port: int = 8000, settings: ServiceSettings | None = None) -> None:
    """Run the service with uvicorn (blocks)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "info"))
