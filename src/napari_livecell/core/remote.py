"""A napari-livecell HTTP service used as a model: frames go out, cells come back."""

from __future__ import annotations

import io

import numpy as np

from .coco import annotations_to_labels
from .segmentation import Segmentation


class RemoteError(ValueError):
    """The service could not be reached or refused the frame (message says why)."""


def is_service_url(model: object) -> bool:
    """Whether a model choice is a service address rather than a weights file."""
    return isinstance(model, str) and model.startswith(("http://", "https://"))


def segment_frame_remote(frame: np.ndarray, url: str, settings, timeout: float = 300.0) -> Segmentation:
    """Segment one frame through ``POST {url}/segment?format=json``.

    The frame travels as a TIFF, so 16-bit and float data reach the service
    unchanged and are scaled there exactly as locally.
    """
    return segment_remote(frame, url, settings, timeout)[0]


def segment_remote(frame: np.ndarray, url: str, settings, timeout: float = 300.0) -> tuple:
    """:func:`segment_frame_remote`, plus the service's polarity decision.

    Returns
    -------
    (Segmentation, Polarity or None)
        ``None`` when the service does not report one (an older version).
    """
    import httpx
    import tifffile

    from .predict import Polarity

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.asarray(frame))
    params = {
        "conf": settings.conf,
        "iou": settings.iou,
        "imgsz": settings.imgsz,
        "modality": settings.modality,
        "format": "json",
    }
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/segment",
            params=params,
            files={"image": ("frame.tif", buffer.getvalue(), "image/tiff")},
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise RemoteError(f"cannot reach the segmentation service at {url}: {error}") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RemoteError(f"the service at {url} answered {response.status_code}: {detail}")
    coco = response.json()
    (image,) = coco["images"]
    annotations = coco["annotations"]
    labels = annotations_to_labels(annotations, image["height"], image["width"])
    names = {int(c["id"]) - 1: str(c["name"]) for c in coco.get("categories", [])} or {0: "cell"}
    segmentation = Segmentation.from_labels(
        labels,
        scores=np.array([a.get("score", 1.0) for a in annotations], dtype=np.float32),
        classes=np.array([a["category_id"] - 1 for a in annotations], dtype=np.int32),
        class_names=names,
    )
    said = coco.get("info", {}).get("settings", {})
    polarity = None
    if "modality" in said and "model_modality" in said:
        polarity = Polarity(said["modality"], said["model_modality"], bool(said.get("modality_decided")))
    return segmentation, polarity
