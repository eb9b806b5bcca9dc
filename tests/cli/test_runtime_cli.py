"""``--runtime`` for segment and serve: what ran is reported; a missing runtime is refused in one line."""

import json
import sys

import numpy as np
import tifffile

from napari_livecell.cli import main
from napari_livecell.core.analysis.matching import match_cells


def test_segment_runtime_is_reported_and_gives_torch_cells(tmp_path, small_frame, capsys):
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, small_frame.image)
    labels = {}
    for runtime in ("torch", "openvino"):
        out = tmp_path / runtime
        assert main(["segment", str(image), "--out", str(out), "--device", "cpu", "--runtime", runtime]) == 0
        assert f"with {runtime}" in capsys.readouterr().err
        assert json.loads((out / "predictions.json").read_text())["info"]["settings"]["runtime"] == runtime
        labels[runtime] = tifffile.imread(out / "frame_labels.tif")
    match = match_cells(labels["torch"], labels["openvino"])
    assert match.n_matched == labels["torch"].max() == labels["openvino"].max() > 20
    assert np.min(match.ious) >= 0.95


def test_segment_auto_runtime_is_the_default(tmp_path, small_frame, capsys):
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, small_frame.image)
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert "with onnxruntime" in capsys.readouterr().err


def test_missing_runtime_package_is_one_line(tmp_path, small_frame, capsys, monkeypatch):
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, small_frame.image)
    monkeypatch.setitem(sys.modules, "openvino", None)
    code = main(["segment", str(image), "--out", str(tmp_path / "out"), "--runtime", "openvino"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "needs the openvino package" in err and "napari-livecell[openvino]" in err
    assert main(["serve", "--runtime", "openvino", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "needs the openvino package" in err and len(err.strip().splitlines()) == 1


def test_serve_runtime_option_reaches_the_service_settings():
    from napari_livecell.cli import build_parser
    from napari_livecell.cli.serve import settings_from_args
    from napari_livecell.service import ServiceSettings

    parser = build_parser()
    assert settings_from_args(parser.parse_args(["serve"]), ServiceSettings).runtime == "auto"
    args = parser.parse_args(["serve", "--runtime", "onnxruntime"])
    assert settings_from_args(args, ServiceSettings).runtime == "onnxruntime"
