"""Widget test helpers: proofreading a known result, and napari's notifications as text."""

from __future__ import annotations

import numpy as np
import pytest

from napari_livecell.core.segmentation import Segmentation
from napari_livecell.layers import RESULT_KEY, result_layer_data


def add_result(viewer, labels: np.ndarray, name: str = "img", class_names=None, image=None):
    """Add ``<name>`` (image) and its result layers, as Segment cells would make them."""
    frames = labels.reshape(-1, *labels.shape[-2:])
    results = [
        Segmentation.from_labels(
            frame,
            scores=np.linspace(0.41, 0.99, max(int(frame.max()), 1)),
            class_names=class_names or {0: "cell"},
        )
        for frame in frames
    ]
    leading = labels.shape[:-2]
    viewer.add_image(image if image is not None else (labels > 0).astype(np.uint8) * 120, name=name)
    metadata = {RESULT_KEY: {"source": name, "edited": False}}
    for data, kwargs, kind in result_layer_data(results, name, leading, {"metadata": metadata}):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer.layers[f"{name} cells"]


@pytest.fixture
def notifications():
    """Messages napari shows from now on (``show_error``/``show_warning``), as a list of str."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)

    class Seen:
        @property
        def messages(self) -> list[str]:
            return [str(record.message) for record in notification_manager.records[start:]]

    return Seen()
