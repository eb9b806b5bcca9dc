"""Frames are resampled to the model's pixel size, and the cells come back on the frame's grid."""

import numpy as np
import pytest
import tifffile
from skimage.transform import downscale_local_mean, resize

from napari_livecell.core.analysis.matching import match_cells
from napari_livecell.core.inference.frame_input import InputError
from napari_livecell.core.inference.pixel_size import (
    Resampling,
    file_pixel_size,
    resample_frame,
    segmentation_to_grid,
)
from napari_livecell.core.inference.predict import segment_frame
from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment
from napari_livecell.core.models.model import DEFAULT_MODEL_PIXEL_SIZE_UM, load_model
from napari_livecell.core.segmentation import Segmentation
from napari_livecell.core.training.synthetic import synthesize_image

MODEL_UM = DEFAULT_MODEL_PIXEL_SIZE_UM


@pytest.fixture(scope="module")
def scene():
    """A LIVECell-like frame at the shipped model's own pixel size, with its true cells."""
    return synthesize_image(seed=3, n_cells=60, shape=(256, 320))


def taken_at(scene, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene as a camera with ``pixel_um`` pixels would show it, and the true cells on that grid."""
    factor = MODEL_UM / pixel_um  # new pixels per model pixel, per side
    image = scene.image.astype(float)
    if factor < 1:  # larger pixels: each one integrates a block of the scene (binning)
        image = downscale_local_mean(image, round(1 / factor))
    else:  # smaller pixels: a finer sampling of the same (optically blurred) scene
        image = resize(image, [round(n * factor) for n in image.shape], order=3, preserve_range=True)
    truth = resize(scene.labels, image.shape, order=0, anti_aliasing=False, preserve_range=True)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), truth.astype(np.int32)


def run(image, pixel_size=None) -> FrameResult:
    events = iter_segment(image, Backend(device="cpu"), pixel_size=pixel_size, pixel_size_source="test")
    (frame,) = [event for event in events if isinstance(event, FrameResult)]
    return frame


@pytest.mark.parametrize("times_model", [2.0, 0.5], ids=["cells-half-as-large", "cells-twice-as-large"])
def test_resampling_by_pixel_size_finds_the_cells_of_the_native_scale(scene, times_model):
    native = segment_frame(scene.image, load_model(None, device="cpu"))
    image, truth = taken_at(scene, times_model * MODEL_UM)

    frame = run(image, pixel_size=times_model * MODEL_UM)

    assert frame.resampling.applied
    assert frame.resampling.describe() == f"resampled {times_model * MODEL_UM:g} -> {MODEL_UM:g} um/px"
    labels = frame.segmentation.labels
    assert labels.shape == image.shape, "labels on the frame's own grid"
    n_truth = len(np.unique(truth)) - 1
    assert abs(frame.segmentation.n_cells - n_truth) <= 0.1 * n_truth
    assert abs(frame.segmentation.n_cells - native.n_cells) <= 0.1 * native.n_cells
    matched = match_cells(truth, labels)
    assert matched.n_matched >= 0.9 * n_truth
    assert matched.ious.mean() >= 0.8
    # the cell table describes the frame's cells: areas counted on its grid
    assert np.array_equal(frame.segmentation.areas, np.bincount(labels.ravel())[1:])


def test_without_a_pixel_size_nothing_is_resampled_and_the_report_says_so(scene):
    image, _ = taken_at(scene, 0.5 * MODEL_UM)
    direct = segment_frame(image, load_model(None, device="cpu"))

    unknown = run(image)
    close = run(image, pixel_size=MODEL_UM * 1.08)  # within the 10 % tolerance

    assert unknown.resampling.describe() == "pixel size unknown: not resampled"
    assert not close.resampling.applied
    assert "not resampled" in close.resampling.describe()
    for frame in (unknown, close):
        assert np.array_equal(frame.segmentation.labels, direct.labels)


def test_a_pixel_size_that_is_not_positive_is_refused_before_the_run(scene):
    with pytest.raises(ValueError, match="pixel size must be a positive number"):
        next(iter_segment(scene.image, Backend(device="cpu"), pixel_size=-1.0))


def test_a_model_without_a_pixel_size_resamples_nothing():
    plan = Resampling(image_um=0.3, model_um=None)
    assert not plan.applied and plan.zoom == 1.0
    assert plan.describe() == "pixel size 0.3 um/px, the model's is unknown: not resampled"
    assert Resampling.from_dict(Resampling(0.62, 1.24, "query").as_dict()) == Resampling(0.62, 1.24, "query")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, bool])
def test_resampled_frames_keep_their_dtype_and_range(dtype):
    rng = np.random.default_rng(0)
    frame = (rng.random((40, 60)) * (255 if dtype is not bool else 1)).astype(dtype)
    for zoom in (0.5, 2.5):
        resized = resample_frame(frame, zoom)
        assert resized.dtype == frame.dtype
        assert resized.shape == (round(40 * zoom), round(60 * zoom))
        assert resized.min() >= frame.min() and resized.max() <= frame.max()
    rgb = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    assert resample_frame(rgb, 0.5).shape == (20, 30, 3)


def test_a_frame_too_small_at_the_models_pixel_size_gets_one_clear_error():
    with pytest.raises(InputError, match="too small to segment"):
        resample_frame(np.zeros((20, 20), np.uint8), 0.25)


def test_labels_come_back_with_their_ids_scores_and_original_grid_areas():
    labels = np.zeros((8, 10), np.int32)
    labels[1:4, 1:5] = 1
    labels[5:8, 6:9] = 2
    on_fine_grid = np.repeat(np.repeat(labels, 2, axis=0), 2, axis=1)
    on_fine_grid[0, 0] = 3  # a one-pixel cell that covers no pixel centre of the frame's grid
    found = Segmentation.from_painted(on_fine_grid, np.array([0.9, 0.8, 0.7]), np.zeros(3), {0: "cell"})

    back = segmentation_to_grid(found, labels.shape)

    assert np.array_equal(back.labels, labels)
    assert back.scores.tolist() == pytest.approx([0.9, 0.8])
    assert back.areas.tolist() == [12, 9]
    assert len(back.polygons) == 2


def test_tiff_metadata_gives_the_pixel_size(tmp_path):
    frame = np.zeros((32, 32), np.uint16)
    files = {
        "imagej.tif": (
            {"imagej": True, "resolution": (1 / 0.65, 1 / 0.65), "metadata": {"unit": "um"}},
            0.65,
        ),
        "ome.ome.tif": ({"metadata": {"PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325}}, 0.325),
        "ome_nm.ome.tif": (
            {
                "metadata": {
                    "PhysicalSizeX": 650,
                    "PhysicalSizeXUnit": "nm",
                    "PhysicalSizeY": 650,
                    "PhysicalSizeYUnit": "nm",
                }
            },
            0.65,
        ),
        "cm.tif": ({"resolution": (1e4 / 1.24, 1e4 / 1.24), "resolutionunit": "CENTIMETER"}, 1.24),
        "plain.tif": ({}, None),
        "print_72dpi.tif": ({"resolution": (72, 72), "resolutionunit": "INCH"}, None),
        "not_square.tif": ({"resolution": (1e4 / 1.0, 1e4 / 2.0), "resolutionunit": "CENTIMETER"}, None),
    }
    for name, (kwargs, expected) in files.items():
        tifffile.imwrite(tmp_path / name, frame, **kwargs)
        size = file_pixel_size(tmp_path / name)
        assert size == (None if expected is None else pytest.approx(expected, rel=1e-6)), name
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    assert file_pixel_size(tmp_path / "broken.tif") is None
    assert file_pixel_size(tmp_path / "missing.png") is None


def test_a_fine_tuned_model_keeps_the_pixel_size_of_its_base(tmp_path):
    import torch

    from napari_livecell.core.models.model import DEFAULT_MODEL
    from napari_livecell.core.models.safe_load import load_checkpoint
    from napari_livecell.core.training.train import inherited_pixel_size

    assert inherited_pixel_size(str(DEFAULT_MODEL)) == {"pixel_size_um": MODEL_UM}
    assert inherited_pixel_size("yolov8n-seg.yaml") == {}
    checkpoint = load_checkpoint(DEFAULT_MODEL)
    checkpoint["napari_livecell"] = {"pixel_size_um": 0.65}
    torch.save(checkpoint, tmp_path / "base.pt")
    # what train_model writes into the fine-tuned checkpoint, from its base
    checkpoint["napari_livecell"] = {"metrics": {}, **inherited_pixel_size(str(tmp_path / "base.pt"))}
    torch.save(checkpoint, tmp_path / "tuned.pt")

    assert load_model(tmp_path / "tuned.pt", device="cpu").pixel_size_um == 0.65
    assert load_model(None, device="cpu").pixel_size_um == MODEL_UM


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64, bool])
def test_resampling_equals_opencvs_area_and_bilinear_resize(dtype):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    top = {np.uint8: 255, np.uint16: 4095, np.int16: 2000, np.int32: 70000, bool: 1}.get(dtype, 1.0)
    for shape in [(53, 71), (40, 60, 3), (37, 29, 1)]:
        frame = (rng.random(shape) * top).astype(dtype)
        for zoom in (0.25, 0.37, 0.5, 0.81, 1.3, 2.0, 2.55):
            size = (round(shape[1] * zoom), round(shape[0] * zoom))
            if min(size) < 8:
                continue
            work = frame.astype(np.float64) if dtype in (np.int32, bool) else frame
            method = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
            expected = cv2.resize(work, size, interpolation=method).reshape(size[1], size[0], *shape[2:])
            got = resample_frame(frame, zoom)
            assert got.dtype == frame.dtype and got.shape == expected.shape
            if dtype is bool:
                assert (got != (expected >= 0.5)).mean() < 0.01, (shape, zoom)
            elif dtype == np.uint8 and zoom > 1:
                np.testing.assert_array_equal(got, expected)
            elif np.issubdtype(np.dtype(dtype), np.integer):
                if dtype == np.int32:
                    expected = np.rint(expected)
                assert np.abs(got.astype(np.int64) - expected.astype(np.int64)).max() <= 1, (shape, zoom)
            else:
                # OpenCV sums float32 weights in float32: a few units of its last place apart
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{shape} {zoom}")
