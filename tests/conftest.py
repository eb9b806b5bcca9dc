"""Shared fixtures: synthetic frames with exact truth and the shipped model."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from napari_livecell.core.synthetic import SyntheticImage, synthesize_image

# the suite's own settings folder (recent models, Ultralytics config): a user's
# model picker must never list a test's temporary weights
os.environ["NAPARI_LIVECELL_HOME"] = tempfile.mkdtemp(prefix="napari-livecell-tests-")


@pytest.fixture(scope="session")
def synthetic_frame() -> SyntheticImage:
    """A fresh (not trained on) 704 x 520 frame with 120 cells."""
    return synthesize_image(seed=424242, n_cells=120)


@pytest.fixture(scope="session")
def small_frame() -> SyntheticImage:
    """A 256 x 320 frame: quick to segment."""
    return synthesize_image(seed=5151, n_cells=40, shape=(256, 320))


@pytest.fixture(scope="session")
def default_model():
    from napari_livecell.core.model import load_model

    return load_model(device="cpu")


def as_uint16(image: np.ndarray) -> np.ndarray:
    """A 12-bit camera's view of an 8-bit image (Ultralytics alone sees black)."""
    return (image.astype(np.uint16) * 16 + 7).astype(np.uint16)


@pytest.fixture(scope="session")
def server():
    from napari_livecell.service import ServiceSettings
    from tests.servers import start_service, stop_service

    instance, thread, url = start_service(ServiceSettings(device="cpu", concurrency=1, queue=4))
    yield url
    stop_service(instance, thread)
