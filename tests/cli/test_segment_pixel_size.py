"""``napari-livecell segment`` resamples by pixel size (``--pixel-size`` or TIFF metadata) and logs it."""

import json

import imageio.v3 as iio
import numpy as np
import tifffile

from napari_livecell.cli import main
from tests.cli.test_cli import run_cli
from tests.core.inference.test_pixel_size import MODEL_UM, taken_at


def test_tiff_metadata_and_pixel_size_option_resample_and_are_logged(tmp_path, small_frame, capsys):
    image, truth = taken_at(small_frame, MODEL_UM / 2)  # cells twice as large as the model's
    n_truth = len(np.unique(truth)) - 1
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(
        inputs / "tagged.tif",
        image,
        imagej=True,
        resolution=(2 / MODEL_UM, 2 / MODEL_UM),
        metadata={"unit": "um"},
    )
    iio.imwrite(inputs / "plain.png", image)

    assert main(["segment", str(inputs), "--out", str(tmp_path / "auto"), "--device", "cpu"]) == 0
    log = capsys.readouterr().err
    assert "tagged.tif: " in log and f"resampled {MODEL_UM / 2:g} -> {MODEL_UM:g} um/px" in log
    assert "plain.png: " in log and "pixel size unknown: not resampled" in log
    labels = tifffile.imread(tmp_path / "auto" / "tagged_labels.tif")
    assert labels.shape == image.shape
    assert abs(len(np.unique(labels)) - 1 - n_truth) <= 0.1 * n_truth
    settings = json.loads((tmp_path / "auto" / "predictions.json").read_text())["info"]["settings"]
    assert settings["resampling"]["tagged.tif"]["pixel_size_source"] == "file metadata"
    assert settings["resampling"]["plain.png"]["resampled"] is False

    # --pixel-size is every input's pixel size, over any metadata
    out = tmp_path / "given"
    assert (
        main(["segment", str(inputs / "plain.png"), "--pixel-size", str(MODEL_UM / 2), "--out", str(out)])
        == 0
    )
    assert f"resampled {MODEL_UM / 2:g} -> {MODEL_UM:g} um/px" in capsys.readouterr().err
    assert np.array_equal(tifffile.imread(out / "plain_labels.tif") > 0, labels > 0)


def test_a_pixel_size_that_is_not_positive_is_one_line_error(tmp_path, small_frame):
    iio.imwrite(tmp_path / "frame.png", small_frame.image)
    result = run_cli(
        "segment", str(tmp_path / "frame.png"), "--pixel-size", "0", "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2
    assert "--pixel-size: pixel size must be a positive number" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
