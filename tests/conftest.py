"""Shared fixtures: synthetic frames with exact truth and the shipped model."""

from __future__ import annotations

import gc
import os
import tempfile
import time

import numpy as np
import pytest

from napari_livecell.core.training.synthetic import SyntheticImage, synthesize_image

# the suite's own settings folder (recent models, Ultralytics config): a user's
# model picker must never list a test's temporary weights
os.environ["NAPARI_LIVECELL_HOME"] = tempfile.mkdtemp(prefix="napari-livecell-tests-")


def pytest_configure(config) -> None:
    """Exempt the libraries' own objects from the suite's full garbage collections.

    napari runs a full collection at every layer removal and viewer close
    (``VispyCanvas._clean_and_update_scenegraph``): with torch, Ultralytics
    and napari imported that is ~650,000 objects and 0.3-0.5 s each time,
    about a fifth of the suite (py-spy; tests/_qt took 293 s, 205 s frozen). The objects of
    the imports live as long as the process, so freezing them (``gc.freeze``)
    changes nothing but the time; objects that tests make are collected as
    before. Tests of the product's own collector hold
    (:mod:`napari_livecell._qt.gc_hold`) take :func:`collector_unfrozen`.
    """
    from napari_livecell.core.models.offline import import_ultralytics

    import_ultralytics()  # torch and Ultralytics, kept offline
    import napari.layers  # noqa: F401  (napari itself, and its layer classes)

    gc.collect()
    gc.freeze()
    gc.callbacks.append(_watch_full_collections)


SLOW_FULL_COLLECTION_S = 0.05  # ~50,000 unfrozen objects; frozen, a full collection walks ~15,000
_full_collection = {"started": 0.0, "slow": False}


def _watch_full_collections(phase: str, info: dict) -> None:
    """Note a slow full collection: objects that live on (later imports, compiled kernels) piled up."""
    if info["generation"] != 2:
        return
    if phase == "start":
        _full_collection["started"] = time.perf_counter()
    elif time.perf_counter() - _full_collection["started"] > SLOW_FULL_COLLECTION_S:
        _full_collection["slow"] = True


@pytest.fixture(autouse=True)
def _startup_objects_frozen():
    """Freeze again after a test that ran unfrozen (:func:`collector_unfrozen`) or made collections slow.

    Between tests the previous test's viewers are closed and collected (napari's fixture), so what a
    collection keeps here lives as long as the session or a module's fixtures: modules imported since
    (``torch._dynamo``, ``distributed``...), numba's compiled kernels, loaded models. Freezing them
    keeps napari's collections at every layer removal short for the tests that follow.
    """
    if gc.get_freeze_count() == 0 or _full_collection["slow"]:
        gc.collect()  # so that no garbage is frozen with the rest
        gc.freeze()
        _full_collection["slow"] = False


@pytest.fixture
def collector_unfrozen():
    """Nothing frozen, as in a user's napari, for one test (see :func:`pytest_configure`).

    Frozen again before the next test, not at this one's teardown: napari's
    viewer fixture closes its viewers after this fixture's teardown may run,
    and a frozen viewer would never be collected (napari checks that it is).
    The full collection after unfreezing sets the collector's count of old
    objects to all of them, as in a user's process: left at the frozen
    session's count, the next automatic full collection (0.3-0.5 s of every
    thread) would come at once, at a random moment of the test.
    """
    gc.unfreeze()
    gc.collect()
    yield
    gc.unfreeze()  # whatever the test left frozen


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
    from napari_livecell.core.models.model import load_model

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
