"""One frame recipe: a TIFF tagged at twice the model's pixel size gives the same cells everywhere.

``segment`` (CLI, here and on a Dask cluster), the service (real uvicorn) and
``evaluate --model`` each read the file's pixel size, resample to the model's
and map the cells back: the same labels, and the same AP against a ground truth.
"""

import io
import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("fastapi")
pytest.importorskip("distributed")

import httpx

from napari_livecell.cli import main
from tests.core.inference.test_pixel_size import MODEL_UM, taken_at


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, small_frame):
    """A folder with ``cells.tif`` at twice the model's pixel size (ImageJ metadata) and its truth."""
    from napari_livecell.core.formats.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.segmentation import Segmentation

    folder = tmp_path_factory.mktemp("tagged")
    image, truth = taken_at(small_frame, 2 * MODEL_UM)
    tifffile.imwrite(
        folder / "cells.tif",
        image,
        imagej=True,
        resolution=(1 / (2 * MODEL_UM),) * 2,
        metadata={"unit": "um"},
    )
    coco = build_coco([CocoImage(1, "cells.tif", Segmentation.from_labels(truth))])
    write_coco(folder / "truth.json", coco)
    return folder, image


@pytest.fixture(scope="module")
def segmented(tagged, tmp_path_factory):
    """``segment`` run here with torch: the labels and ``predictions.json`` the others must match."""
    folder, _ = tagged
    out = tmp_path_factory.mktemp("segment")
    command = ["segment", str(folder / "cells.tif"), "--out", str(out), "--device", "cpu"]
    assert main([*command, "--runtime", "torch"]) == 0
    settings = json.loads((out / "predictions.json").read_text())["info"]["settings"]
    assert settings["resampling"]["cells.tif"]["resampled"] is True
    return tifffile.imread(out / "cells_labels.tif"), out / "predictions.json"


def test_evaluate_model_finds_the_cells_segment_finds(tagged, segmented, capsys):
    from napari_livecell.core.analysis.evaluate import predict_dataset
    from napari_livecell.core.formats.coco import annotations_to_labels
    from napari_livecell.core.models.model import load_model

    folder, image = tagged
    labels, predictions = segmented
    results = predict_dataset(folder / "truth.json", folder, load_model(None, device="cpu"))
    expected = json.loads(predictions.read_text())["annotations"]
    assert len(results) == len(expected) == labels.max()
    found = annotations_to_labels(results, *image.shape)
    assert np.array_equal(found, annotations_to_labels(expected, *image.shape))

    common = ["evaluate", "--gt", str(folder / "truth.json"), "--json"]
    assert main([*common, "--pred", str(predictions)]) == 0
    from_segment = json.loads(capsys.readouterr().out)
    assert main([*common, "--images", str(folder), "--model", "default", "--device", "cpu"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert from_segment["segm"]["AP"] > 0.3
    assert row["segm"] == from_segment["segm"] and row["bbox"] == from_segment["bbox"]


def test_the_service_finds_the_cells_segment_finds(tagged, segmented):
    import imageio.v3 as iio

    from napari_livecell.service import ServiceSettings
    from tests.servers import start_service, stop_service

    folder, _ = tagged
    labels, _ = segmented
    instance, thread, url = start_service(ServiceSettings(device="cpu", runtime="torch", concurrency=1))
    try:
        response = httpx.post(
            f"{url}/segment",
            files={"image": ("cells.tif", (folder / "cells.tif").read_bytes())},
            params={"format": "labels"},
            timeout=120,
        )
    finally:
        stop_service(instance, thread)
    assert response.status_code == 200
    assert response.headers["X-Pixel-Size"] == f"resampled {2 * MODEL_UM:g} -> {MODEL_UM:g} um/px"
    assert np.array_equal(iio.imread(io.BytesIO(response.content)), labels)


def test_a_dask_run_finds_the_cells_segment_finds(tagged, segmented, tmp_path):
    from distributed import LocalCluster

    folder, _ = tagged
    labels, _ = segmented
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        command = ["segment", str(folder / "cells.tif"), "--out", str(tmp_path), "--scheduler"]
        assert main([*command, cluster.scheduler_address]) == 0
    assert np.array_equal(tifffile.imread(tmp_path / "cells_labels.tif"), labels)
