"""Runtime openvino-int8: calibrated on the user's own frames, it finds the float32 model's cells."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main
from napari_livecell.core.analysis.matching import match_cells
from napari_livecell.core.inference.predict import segment_frame
from napari_livecell.core.inference.quantize import quantize_int8
from napari_livecell.core.models.model import DEFAULT_MODEL, ModelError, load_model
from napari_livecell.core.training.synthetic import synthesize_image

SHAPE = (256, 320)


def test_calibrated_int8_model_finds_the_float_cells(tmp_path, capsys):
    with pytest.raises(ModelError) as error:  # the session's cache holds no calibration yet
        load_model(DEFAULT_MODEL, device="cpu", runtime="openvino-int8")
    assert "\n" not in str(error.value) and "napari-livecell quantize" in str(error.value)

    own = tmp_path / "own"
    own.mkdir()
    stack = np.stack([synthesize_image(seed=700 + i, n_cells=60, shape=SHAPE).image for i in range(3)])
    tifffile.imwrite(own / "movie.tif", stack)
    tifffile.imwrite(own / "single.tif", synthesize_image(seed=710, n_cells=80, shape=SHAPE).image)
    assert main(["quantize", str(own), "--frames", "3"]) == 0
    assert "calibrated on 3 frame(s) of 1 file(s)" in capsys.readouterr().err  # a stack's frames count

    float32 = load_model(device="cpu", runtime="openvino")
    int8 = load_model(device="cpu", runtime="openvino-int8")
    assert int8.runtime == "openvino-int8" and int8.pixel_size_um == float32.pixel_size_um
    held_out = synthesize_image(seed=42, n_cells=70, shape=SHAPE)
    reference, quantized = segment_frame(held_out.image, float32), segment_frame(held_out.image, int8)
    # close to the float model's cells, not equal to them: judged against the truth, as mAP is
    n_true = len(np.unique(held_out.labels)) - 1
    found = {}
    for name, result in (("float32", reference), ("int8", quantized)):
        truth = match_cells(held_out.labels, result.labels)
        found[name] = (truth.n_matched / n_true, float(np.mean(truth.ious)))
    assert found["int8"][0] >= found["float32"][0] - 0.05, found
    assert found["int8"][1] >= found["float32"][1] - 0.03, found
    match = match_cells(reference.labels, quantized.labels)
    assert np.median(match.ious) >= 0.9

    out = tmp_path / "out"
    image = tmp_path / "held.tif"
    tifffile.imwrite(image, held_out.image)
    assert main(["segment", str(image), "--runtime", "openvino-int8", "--out", str(out)]) == 0
    assert np.array_equal(tifffile.imread(out / "held_labels.tif") > 0, quantized.labels > 0)


def test_calibrating_without_nncf_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(ModelError) as error:
        quantize_int8(None, [np.zeros(SHAPE, np.uint8)])
    assert "\n" not in str(error.value) and "napari-livecell[int8]" in str(error.value)
