"""A napari-livecell HTTP service used as a model: frames go out, cells come back."""

from __future__ import annotations

import io

import numpy as np

from napari_livecell.core.formats.coco import annotations_to_labels
from napari_livecell.core.segmentation import Segmentation


class RemoteError(ValueError):
    """The service could not be reached or refused the frame (message says why)."""


def is_service_url(model: object) -> bool:
    """Whether a model choice is a service address rather than a weights file (:class:`ModelSource`)."""
    from napari_livecell.core.models.source import ModelSource

    return isinstance(model, str | ModelSource) and ModelSource.parse(model).kind == "service"


def segment_frame_remote(frame: np.ndarray, url: str, settings, timeout: float = 300.0) -> Segmentation:
    """Segment one frame through ``POST {url}/segment?format=json``.

    The frame travels as a TIFF, so 16-bit and float data reach the service
    unchanged and are scaled there exactly as locally.
    """
    return segment_remote(frame, url, settings, timeout)[0]


def segment_remote(
    frame: np.ndarray,
    url: str,
    settings,
    timeout: float = 300.0,
    pixel_size: float | None = None,
    pixel_size_source: str = "",
) -> tuple:
    """:func:`segment_frame_remote`, plus the service's polarity and pixel-size decisions.

    Parameters
    ----------
    frame : numpy.ndarray
        The frame, sent as a TIFF.
    url : str
        The service's address.
    settings : PredictSettings
        Thresholds, image size, modality.
    timeout : float
        Seconds to wait for the answer.
    pixel_size : float, optional
        The frame's micrometres per pixel (query ``pixel_size``): the service
        resamples it to its model's and answers on the frame's grid.
    pixel_size_source : str
        Where ``pixel_size`` came from, kept in the returned decision.

    Returns
    -------
    (Segmentation, Polarity or None, Resampling or None)
        ``None`` where the service does not report a decision (an older version).
    """
    import dataclasses

    import httpx
    import tifffile

    from .frame_input import Polarity
    from .pixel_size import Resampling

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.asarray(frame))
    params = {
        "conf": settings.conf,
        "iou": settings.iou,
        "imgsz": settings.imgsz,
        "modality": settings.modality,
        "format": "json",
    }
    if pixel_size is not None:
        params["pixel_size"] = pixel_size
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
    resampling = Resampling.from_dict(said)
    if resampling is not None and pixel_size_source and resampling.image_um is not None:
        resampling = dataclasses.replace(resampling, source=pixel_size_source)
    return segmentation, polarity, resampling
