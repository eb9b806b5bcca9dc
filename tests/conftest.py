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
    import threading
    import time

    import uvicorn

    from napari_livecell.service import ServiceSettings, create_app, uvicorn_config

    settings = ServiceSettings(device="cpu", concurrency=1, queue=4)
    app = create_app(settings)
    # the server production's serve() runs (its timeouts and limits); LOG_LEVEL, its log knob,
    # keeps the suite's output quiet unless set
    quiet = "LOG_LEVEL" not in os.environ
    if quiet:
        os.environ["LOG_LEVEL"] = "warning"
    try:
        config = uvicorn_config(app, "127.0.0.1", 0, settings)
    finally:
        if quiet:
            del os.environ["LOG_LEVEL"]
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    port = instance.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)
